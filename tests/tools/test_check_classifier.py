"""tools/check_classifier.py: each problem is one line, exit 2."""
import numpy as np
import pytest

from mmovod.classifiers.sidecar import make_sidecar, save_classifier
from mmovod.clip.factory import clip_embed_dim
from mmovod.demo.world_models import tiny_clip_config_path
from mmovod.io.errors import InputError
from tools import check_classifier

CLIP = {"clip_model": "ViT-B/32", "pretrained": "openai", "embed_dim": 512}
NAMES = ["cone", "hard hat", "digger", "barrow"]


def write(path, array, *, names=NAMES, clip=CLIP, normalized=False, kind="text", space="clip", details=None):
    save_classifier(path, array, make_sidecar(array, kind, clip, space=space, normalized=normalized,
                                              class_names=names, details=details))
    return path


def good(rows=4, dim=512, seed=0):
    return np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)


def run(capsys, *argv):
    code = check_classifier.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out.strip().splitlines(), captured.err.strip().splitlines()


def test_embed_dims_come_from_configs_without_weights():
    assert clip_embed_dim("ViT-B/32") == 512 and clip_embed_dim("ViT-L/14") == 768 and clip_embed_dim("RN50") == 1024
    assert clip_embed_dim(str(tiny_clip_config_path())) == 512
    with pytest.raises(InputError, match="unknown --clip_model"):
        clip_embed_dim("ViT-Q/99")


def test_a_good_classifier_passes(tmp_path, capsys):
    path = write(tmp_path / "x.npy", good())
    vocab = tmp_path / "v.txt"
    vocab.write_text("\n".join(NAMES))
    code, out, err = run(capsys, path, "--clip_model", "ViT-B-32", "--vocab", vocab)
    assert code == 0 and err == [] and out == [f"{path}: OK (4 x 512 float32, text, CLIP ViT-B/32); rows in CLIP's "
                                                         "space: a detector trained on text rows can use them as they are"]


def test_the_vocabulary_order_is_compared_as_the_vocabulary_reader_compares_names(tmp_path, capsys):
    path = write(tmp_path / "x.npy", good())
    vocab = tmp_path / "v.txt"
    vocab.write_text("Cone\nHard_Hat\nDIGGER\nbarrow\n")  # the same four classes, spelled otherwise
    code, out, err = run(capsys, path, "--vocab", vocab)
    assert code == 0 and err == [], err
    vocab.write_text("Cone\nHard_Hat\nbarrow\nDIGGER\n")
    code, out, err = run(capsys, path, "--vocab", vocab)
    assert code == 2 and "class order differs from the vocabulary from row 2 on ('digger' here, 'barrow' there)" in err[-1]


def test_every_problem_is_one_line(tmp_path, capsys):
    array = good()
    array[1] = np.nan
    array[2] = 0
    array[3] = array[0] * 3  # same direction as row 0
    path = write(tmp_path / "x.npy", array, names=["cone", "hard hat", "cone", "barrow"], normalized=True,
                 details={"classes_without_exemplars": ["cone"]})
    vocab = tmp_path / "v.txt"
    vocab.write_text("cone\nhard hat\ndigger\nbarrow\n")
    code, out, err = run(capsys, path, "--clip_model", str(tiny_clip_config_path()).replace(".json", "_x.json"),
                         "--vocab", vocab)
    assert code == 2 and out == [] and len(err) == 1
    assert err[0].endswith(f"error: {tiny_clip_config_path()}".replace(".json", "_x.json") + ": model config not found")
    code, out, err = run(capsys, path, "--clip_model", "RN50", "--vocab", vocab)
    norm0 = np.linalg.norm(array[0].astype(np.float64))
    assert code == 2 and out == []
    assert err == [f"{path}: {line}" for line in [
        "rows 1 (hard hat) hold NaN or inf",
        "rows 2 (cone) are all zeros (classes without exemplars: use the multi-modal classifier, whose rows fall back "
        "to text)",
        "1 pairs of identical rows (cosine > 1 - 1e-6): 0 and 3 (cone, barrow)",
        "rows are 512-d, RN50 gives 1024-d embeddings (Detic: MODEL.ROI_BOX_HEAD.ZEROSHOT_WEIGHT_DIM must be the "
        "detector's)",
        "made with CLIP ViT-B/32, not RN50: its rows mean nothing to a detector trained with RN50",
        "sidecar class names repeat: 'cone' (rows 0 and 2)",
        "class order differs from the vocabulary from row 2 on ('cone' here, 'digger' there)",
        f"sidecar says rows are L2-normalised, rows 0 (cone), 3 (barrow) are not (norm {norm0:.4f})",
    ]]


def test_a_sidecar_space_its_kind_cannot_have(tmp_path, capsys):
    """The kinds table fixes a built kind's spaces: text claiming the aggregator's space, or aggregated rows claiming
    a fusion's, is a problem (an export would trust it); aggregated rows are in CLIP's space or the aggregator's,
    as their checkpoint was trained, and a multi-modal file may be either."""
    path = write(tmp_path / "text.npy", good(), kind="text", space="aggregator")
    code, out, err = run(capsys, path)
    assert code == 2 and err == [f"{path}: sidecar says aggregator space, but a text classifier's rows are in clip space"]
    path = write(tmp_path / "agg.npy", good().astype(np.float16), kind="vision-aggregated", space="mixed")
    code, out, err = run(capsys, path)
    assert code == 2 and err == [f"{path}: sidecar says mixed space, but a vision-aggregated classifier's rows are "
                                 "in aggregator or clip space"]
    for kind, space in (("vision-aggregated", "aggregator"), ("vision-aggregated", "clip"), ("multi-modal", "mixed"),
                        ("multi-modal", "clip")):
        assert run(capsys, write(tmp_path / "ok.npy", good(), kind=kind, space=space))[0] == 0


def test_sidecar_that_no_longer_describes_the_array_and_bad_files(tmp_path, capsys):
    path = write(tmp_path / "x.npy", good())
    np.save(path, good(rows=5).astype(np.float16))
    (tmp_path / "ints.npy").write_bytes(b"")
    np.save(tmp_path / "ints.npy", np.ones((3, 4), dtype=np.int64))
    np.save(tmp_path / "flat.npy", np.ones(4, dtype=np.float32))
    code, out, err = run(capsys, path, tmp_path / "ints.npy", tmp_path / "flat.npy", tmp_path / "missing.npy")
    assert code == 2 and out == []
    assert err == [line for line in [
        f"{path}: sidecar says shape [4, 512], the array is [5, 512]",
        f"{path}: sidecar says dtype float32, the array is float16",
        f"{tmp_path / 'ints.npy'}: dtype int64 is not a float type (Detic loads float32)",
        f"{tmp_path / 'flat.npy'}: expected a 2-D array (classes x dim), found shape (4,)",
        f"{tmp_path / 'missing.npy'}: file not found",
    ]]


@pytest.mark.parametrize("first, again", [
    ("fish", "\ufb01sh"),  # the 'fi' ligature
    ("\u00c5land", "A\u030aland"),  # Å composed, and A + combining ring
    ("hard hat", "Hard_Hat"),
], ids=["ligature", "composed-vs-decomposed", "case-and-underscore"])
def test_sidecar_class_names_repeat_as_the_vocabulary_reader_compares_them(tmp_path, capsys, first, again):
    path = write(tmp_path / "x.npy", good(), names=[first, "cone", again, "barrow"])
    code, out, err = run(capsys, path)
    assert code == 2 and err == [f"{path}: sidecar class names repeat: {first!r} and {again!r} (rows 0 and 2: one "
                                 "name once case and Unicode forms are folded)"]
    vocab = tmp_path / "v.txt"
    vocab.write_text(f"{first}\n{again}\n", encoding="utf-8")
    code, out, err = run(capsys, "--vocab", vocab, write(tmp_path / "ok.npy", good(rows=2), names=[first, "cone"]))
    assert code == 2 and "repeats" in err[-1]  # the reader itself takes the two as one class
