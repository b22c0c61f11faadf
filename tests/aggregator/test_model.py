"""The aggregator against an independent einsum re-implementation of the published architecture."""
import pytest
import torch

from mmovod.aggregator.model import VisualAggregator
from mmovod.io.errors import InputError

from tests.references import reference_forward


def random_state_dict(num_layers, dim=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = {"mapper.linear.weight": (dim, dim), "mapper.linear.bias": (dim,), "mapper.cls_token": (1, dim)}
    for i in range(num_layers):
        p = f"mapper.transformer.layers.{i}."
        shapes.update({
            p + "norm1.weight": (dim,), p + "norm1.bias": (dim,),
            p + "attn.to_queries.weight": (dim, dim), p + "attn.to_keys_values.weight": (2 * dim, dim),
            p + "attn.project.weight": (dim, dim), p + "attn.project.bias": (dim,),
            p + "norm2.weight": (dim,), p + "norm2.bias": (dim,),
            p + "mlp.fc1.weight": (4 * dim, dim), p + "mlp.fc1.bias": (4 * dim,),
            p + "mlp.fc2.weight": (dim, 4 * dim), p + "mlp.fc2.bias": (dim,),
        })
    return {k: torch.randn(s, generator=g) * 0.05 for k, s in shapes.items()}


@pytest.mark.slow
@pytest.mark.parametrize("wrapped", [True, False])
def test_checkpoint_on_disk_matches_reference(tmp_path, wrapped):
    sd = random_state_dict(4)
    path = tmp_path / "agg.pth"
    torch.save({"state_dict": sd, "epoch": 4} if wrapped else sd, path)
    model = VisualAggregator.from_checkpoint(path, num_layers=4)
    x = torch.randn(3, 7, 512, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ours = model(x)
    ref = reference_forward(sd, x, 4)
    assert ours.shape == (3, 512)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_padding_mask_equals_one_set_at_a_time():
    torch.manual_seed(0)
    model = VisualAggregator(num_layers=2).eval()
    sets = [torch.randn(k, 512) for k in (1, 5, 3)]
    batch = torch.zeros(3, 5, 512)
    valid = torch.zeros(3, 5, dtype=torch.bool)
    for i, s in enumerate(sets):
        batch[i, : len(s)] = s
        valid[i, : len(s)] = True
    with torch.inference_mode():
        together = model(batch, valid)
        alone = torch.cat([model(s[None]) for s in sets])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_wrong_layer_count_names_the_first_bad_key(tmp_path):
    path = tmp_path / "agg.pth"
    torch.save(random_state_dict(2), path)
    with pytest.raises(InputError, match="missing key mapper.transformer.layers.2"):
        VisualAggregator.from_checkpoint(path, num_layers=4)
    with pytest.raises(InputError, match="unexpected key mapper.transformer.layers.1"):
        VisualAggregator.from_checkpoint(path, num_layers=1)


def test_output_space_follows_the_objective_the_checkpoint_records(tmp_path):
    """Our checkpoints trained for CLIP's space say so; the authors' weights (no objective) and any other
    objective give rows in a space of their own."""
    from mmovod.aggregator.model import CLIP_SPACE_OBJECTIVE, output_space

    state = VisualAggregator(dim=16, num_layers=1, num_heads=2).state_dict()
    for name, extra, space in (("ours", {"objective": CLIP_SPACE_OBJECTIVE}, "clip"), ("authors", {}, "aggregator"),
                               ("other", {"objective": "set-against-set"}, "aggregator")):
        torch.save({"state_dict": state, **extra}, tmp_path / f"{name}.pth")
        assert output_space(tmp_path / f"{name}.pth") == space, name
        assert VisualAggregator.from_checkpoint(tmp_path / f"{name}.pth", num_layers=1).space == space, name
    torch.save(state, tmp_path / "bare.pth")  # a bare state dict
    assert output_space(tmp_path / "bare.pth") == "aggregator"
