"""Both vision-classifier tools end to end on the demo dataset (tiny CLIP, embed dim 512)."""
import json

import numpy as np
import pytest
import torch

from tests.exemplar_fixtures import build_demo, load_tiny, naive_view_embeddings
from mmovod.classifiers.sidecar import read_sidecar
from mmovod.aggregator.model import read_state_dict
from mmovod.clip.crops import AGGREGATOR_CONTEXT, TTA_CONTEXT
from tests.references import reference_forward
from tools import generate_vision_classifier_agg as agg_tool
from tools import get_exemplars_tta as avg_tool


@pytest.fixture(scope="module")
def demo(tmp_path_factory, demo_dataset):
    return build_demo(demo_dataset, tmp_path_factory.mktemp("demo"), num_classes=4, per_class=2)


@pytest.fixture(scope="module")
def bundle(demo):
    return load_tiny(demo)


def avg_args(demo, ann, out, *extra):
    return ["--ann-path", str(ann), "--output-path", str(out), "--num-augs", "2", "--seed", "3", "--nw", "0",
            *demo["root_args"], *demo["clip_args"], *extra]


def agg_args(demo, ann, out, *extra):
    return ["--exemplar-list", str(ann), "--out-path", str(out), "--num-augs", "2", "--seed", "3", "--nw", "0",
            "--load-path", str(demo["aggregator"]), *demo["root_args"], *demo["clip_args"], *extra]


def cosines(a, b):
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    return torch.nn.functional.cosine_similarity(a, b)


@pytest.mark.slow
def test_average_tool_equals_naive_mean(demo, bundle, tmp_path):
    out = tmp_path / "avg.npy"
    assert avg_tool.main(avg_args(demo, demo["path"], out, "--view-order", "original")) == 0
    got = np.load(out)
    assert got.dtype == np.float32 and got.shape == (4, 512)
    naive = naive_view_embeddings(bundle, demo["exemplars"], demo["roots"], TTA_CONTEXT, 2, 3)
    np.testing.assert_allclose(got, torch.stack([r.mean(0) for r in naive]).numpy(), rtol=1e-5, atol=1e-6)
    side = read_sidecar(tmp_path / "avg.npy")
    assert side.kind == "vision-average" and side.category_ids == [r[0]["category_id"] for r in demo["exemplars"]]
    assert side.normalized is False and side.details["num_views"] == 2 and side.details["context"] == TTA_CONTEXT
    assert side.details["view_order"] == "original"
    # the default fast order makes the same views at the model size: rows nearly the same, still distinct
    assert avg_tool.main(avg_args(demo, demo["path"], tmp_path / "fast.npy")) == 0
    fast = np.load(tmp_path / "fast.npy")
    assert read_sidecar(tmp_path / "fast.npy").details["view_order"] == "fast"
    assert float(cosines(fast, got).min()) > 0.999 and not np.array_equal(fast, got)


@pytest.mark.slow
@pytest.mark.parametrize("tta", [True, False])
def test_aggregator_tool_equals_reference(demo, bundle, tmp_path, tta):
    out = tmp_path / "agg.npy"
    assert agg_tool.main(agg_args(demo, demo["path"], out, "--view-order", "original",
                                  *(["--tta"] if tta else []))) == 0
    got = np.load(out)
    assert got.dtype == np.float16 and got.shape == (4, 512)
    sd = read_state_dict(demo["aggregator"])
    naive = naive_view_embeddings(bundle, demo["exemplars"], demo["roots"], AGGREGATOR_CONTEXT, 2 if tta else 1,
                                  3, tta=tta)
    sets = naive if tta else [r.repeat_interleave(2, dim=0) for r in naive]  # plain crop repeated num_augs times
    expected = torch.cat([reference_forward(sd, s[None], 4) for s in sets]).half().numpy()
    np.testing.assert_allclose(got.astype(np.float32), expected.astype(np.float32), rtol=2e-3, atol=2e-3)


@pytest.mark.slow
def test_aggregator_output_independent_of_workers_and_batch_size(demo, tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert agg_tool.main(agg_args(demo, demo["path"], a, "--tta", "--batch-size", "3")) == 0
    argv = agg_args(demo, demo["path"], b, "--tta", "--batch-size", "64")
    argv[argv.index("--nw") + 1] = "2"
    assert agg_tool.main(argv) == 0
    # views are bit-identical (test_exemplar_encoding); batched matmuls may round differently: <= 1 fp16 ulp
    np.testing.assert_allclose(np.load(a).astype(np.float32), np.load(b).astype(np.float32), rtol=1e-3, atol=1e-3)


def one_error_line(capsys, *needles):
    """The error is one line, the last on stderr (open_clip's own INFO log lines may precede it)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and err.endswith(errors[0]), err
    for needle in needles:
        assert needle in errors[0], err


@pytest.mark.parametrize("doc, needle", [
    ({"person": []}, "found a JSON object"),
    ([{"dataset": "lvis"}], "class 0 is a dict, expected a list"),
    ([[{"dataset": "o365", "file_name": "a.jpg"}]], "unknown dataset 'o365'"),
    ([[]], "class 0 has no exemplars"),
])
def test_bad_exemplar_lists_exit_2(demo, tmp_path, capsys, doc, needle):
    ann = tmp_path / "bad.json"
    ann.write_text(json.dumps(doc))
    out = tmp_path / "out.npy"
    assert avg_tool.main(avg_args(demo, ann, out)) == 2
    one_error_line(capsys, "bad.json", needle)
    assert not out.exists()


@pytest.mark.slow
def test_missing_image_exits_2_or_is_skipped(demo, tmp_path, capsys):
    exemplars = [list(r) for r in demo["exemplars"]]
    exemplars[2].append({"dataset": "lvis", "file_name": "val2017/gone.jpg", "bbox": [1, 1, 5, 5]})
    ann = tmp_path / "ex.json"
    ann.write_text(json.dumps(exemplars))
    out = tmp_path / "agg.npy"
    assert agg_tool.main(agg_args(demo, ann, out)) == 2
    one_error_line(capsys, "image not found, the first of 1 missing exemplar image;", "gone.jpg", "--skip-bad")
    assert not out.exists()
    assert agg_tool.main(agg_args(demo, ann, out, "--skip-bad")) == 0
    skipped = read_sidecar(tmp_path / "agg.npy").details["skipped_images"]
    assert [(s["class"], s["path"].endswith("gone.jpg")) for s in skipped] == [(2, True)]


@pytest.mark.slow
def test_corrupt_image_exits_2_naming_it(demo, tmp_path, capsys):
    (demo["roots"]["lvis"] / "val2017/corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    exemplars = [list(r) for r in demo["exemplars"]]
    exemplars[3].append({"dataset": "lvis", "file_name": "val2017/corrupt.jpg", "bbox": [1, 1, 5, 5]})
    ann = tmp_path / "ex.json"
    ann.write_text(json.dumps(exemplars))
    out = tmp_path / "avg.npy"
    assert avg_tool.main(avg_args(demo, ann, out)) == 2
    one_error_line(capsys, "corrupt.jpg: cannot read image")
    assert not out.exists()


def test_wrong_checkpoint_and_missing_folder_exit_2(demo, tmp_path, capsys):
    out = tmp_path / "agg.npy"
    assert agg_tool.main(agg_args(demo, demo["path"], out, "--num-layers", "2")) == 2
    one_error_line(capsys, "visual_aggregator_demo.pth", "unexpected key mapper.transformer.layers.2")
    assert agg_tool.main(agg_args(demo, demo["path"], tmp_path / "no/dir/agg.npy")) == 2
    one_error_line(capsys, "does not exist")
    assert not out.exists()
