"""`--clip_model world`: the CLIP shipped with mmovod, by name, from any folder, with no other flag."""
import json

import numpy as np
import pytest

from mmovod.cli.main import main as mmovod_main
from mmovod.clip import factory
from mmovod.clip.factory import load_clip
from mmovod.clip.identity import content_key
from mmovod.clip.shipped import world_clip_paths
from mmovod.io.errors import InputError
from tools import check_classifier, models


def test_world_loads_by_name_from_another_folder_and_records_only_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bundle = load_clip("world", device="cpu")
    assert (bundle.model_name, bundle.pretrained, bundle.embed_dim, bundle.image_size) == ("world", None, 128, 48)
    config, weights = map(str, world_clip_paths())
    explicit = load_clip(config, weights, device="cpu")
    for a, b in zip(bundle.model.state_dict().values(), explicit.model.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy())
    assert content_key("world", None) == content_key(config, weights)  # a sidecar saying `world` is that CLIP
    assert content_key("world", None)[0].startswith("sha256:")


def test_world_refuses_other_weights_but_takes_its_own(tmp_path):
    with pytest.raises(InputError, match="--clip_model world comes with its own weights"):
        load_clip("world", str(tmp_path / "x.pt"), device="cpu")
    assert factory.resolve_model_name("world", str(world_clip_paths()[1]))[1] == str(world_clip_paths()[1])


@pytest.mark.parametrize("clip_model", ["ViT-B/32", "ViT-B-32"])
def test_world_weights_without_their_config_name_the_config_in_one_line(clip_model, capsys):
    with pytest.raises(InputError) as err:
        load_clip(clip_model, str(world_clip_paths()[1]), device="cpu")
    message = str(err.value)
    assert "\n" not in message and "Half" not in message
    assert message.endswith("it is the shipped world CLIP: pass --clip_model world (without --pretrained)")


def test_other_weights_without_their_config_point_to_a_config_beside_them(tmp_path):
    weights = tmp_path / "mine.pt"
    weights.write_bytes(world_clip_paths()[1].read_bytes() + b"")  # same tensors, another file: not recognised by hash
    import torch
    state = torch.load(weights, weights_only=True)
    state["extra"] = torch.zeros(1)
    torch.save(state, weights)
    with pytest.raises(InputError, match="pass the model it was trained as with --clip_model"):
        load_clip("ViT-B-32", str(weights), device="cpu")
    (tmp_path / "mine.json").write_text(world_clip_paths()[0].read_text())
    with pytest.raises(InputError, match=f"pass its model config with --clip_model {tmp_path / 'mine.json'}"):
        load_clip("ViT-B-32", str(weights), device="cpu")


def test_a_corrupt_file_is_not_blamed_on_a_missing_config(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError) as err:
        load_clip("ViT-B-32", str(bad), device="cpu")
    assert "--clip_model" not in str(err.value)


def test_models_lists_world_first(capsys):
    assert models.main(["--model", "world"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("* world  shipped, works offline") and str(world_clip_paths()[1]) in out[0]


def test_check_classifier_takes_world_by_name(tmp_path, monkeypatch, capsys):
    """A classifier with 128-d rows checks against `--clip_model world`; a 512-d one is refused."""
    from mmovod.classifiers.sidecar import make_sidecar, save_classifier

    monkeypatch.chdir(tmp_path)
    for dim in (128, 512):
        rows = np.random.default_rng(0).standard_normal((3, dim)).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        save_classifier(f"c{dim}.npy", rows, make_sidecar(rows, "text", {"clip_model": "world", "pretrained": None,
                                                                          "embed_dim": dim}))
    assert json.loads((tmp_path / "c128.npy.json").read_text())["clip_model"] == "world"
    assert check_classifier.main(["c128.npy", "--clip_model", "world"]) == 0
    assert mmovod_main(["check_classifier", "c512.npy", "--clip_model", "world"]) != 0


def test_loading_says_so_before_the_wait(caplog):
    """The model load is a step of its own in the output, before any progress bar starts."""
    import logging

    with caplog.at_level(logging.INFO, logger="mmovod"):
        load_clip("world", device="cpu", tower="image")
    assert caplog.messages[0] == "loading CLIP world on cpu ..."
