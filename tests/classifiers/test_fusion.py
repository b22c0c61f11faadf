
import numpy as np

from mmovod.classifiers.sidecar import read_sidecar
from mmovod.classifiers.fusion import fuse_classifiers
from tools import norm_feat_sum_norm


def test_hand_worked_fusion():
    a = np.array([[3.0, 4.0], [0.0, 2.0]])
    b = np.array([[1.0, 0.0], [0.0, -5.0]])
    # row 0: (0.6, 0.8) + (1, 0) = (1.6, 0.8), norm sqrt(3.2); row 1: (0, 1) + (0, -1) would be zero,
    # so use the no-final-norm path for it and check row 0 of the normalised path only
    raw = fuse_classifiers(a, b, final_norm=False)
    np.testing.assert_allclose(raw, [[1.6, 0.8], [0.0, 0.0]], atol=1e-7)
    normed = fuse_classifiers(a[:1], b[:1])
    np.testing.assert_allclose(normed, [[1.6 / np.sqrt(3.2), 0.8 / np.sqrt(3.2)]], rtol=1e-6)
    assert normed.dtype == np.float32


def test_tool_writes_float32_and_a_sidecar(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 8)), rng.normal(size=(6, 8)).astype(np.float16)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    out = tmp_path / "out.npy"
    args = ["--feat1-path", str(tmp_path / "a.npy"), "--feat2-path", str(tmp_path / "b.npy"), "--out-path", str(out)]
    assert norm_feat_sum_norm.main(args) == 0
    fused = np.load(out)
    na = a / np.linalg.norm(a, axis=1, keepdims=True)
    bb = b.astype(np.float64)
    nb = bb / np.linalg.norm(bb, axis=1, keepdims=True)
    expected = (na + nb) / np.linalg.norm(na + nb, axis=1, keepdims=True)
    assert fused.dtype == np.float32 and fused.shape == (6, 8)
    np.testing.assert_allclose(fused, expected, rtol=1e-6)
    side = read_sidecar(tmp_path / "out.npy")
    assert side.kind == "multi-modal" and side.shape == (6, 8) and side.dtype == "float32"
    assert side.normalized and side.details["formula"] == "l2(l2(feat1) + l2(feat2))"

    assert norm_feat_sum_norm.main(args + ["--no-final-norm"]) == 0
    np.testing.assert_allclose(np.load(out), na + nb, rtol=1e-6)
