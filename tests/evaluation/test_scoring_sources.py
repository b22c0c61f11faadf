"""An old fusion sidecar knows its CLIP only through its sources' sidecars; the CLIP file those name is
found from the source's own folder, wherever the fusion and the working folder are."""
import json
import os

import numpy as np
import pytest

from mmovod.evaluation.crops_from_annotations import Category
from mmovod.evaluation.scoring import load_classifiers


def _old_fusion(tmp_path):
    """sources/text.npy names its CLIP as `../weights/clip.pt` relative to itself; the fusion lives in
    fused/deeper/ and names the source by a path relative to the fusion."""
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights/clip.pt").write_bytes(b"clip weights")
    (tmp_path / "sources").mkdir()
    (tmp_path / "fused/deeper").mkdir(parents=True)
    rows = np.eye(3, 8, dtype=np.float32)
    np.save(tmp_path / "sources/text.npy", rows)
    source = {"shape": [3, 8], "dtype": "float32", "clip_model": "ViT-B-32", "pretrained": "../weights/clip.pt",
              "category_ids": [1, 2, 3],
              "details": {"clip_files": {"pretrained": {"relative_to_sidecar": "../weights/clip.pt"}}}}
    (tmp_path / "sources/text.npy.json").write_text(json.dumps(source))
    np.save(tmp_path / "fused/deeper/fused.npy", rows)
    (tmp_path / "fused/deeper/fused.npy.json").write_text(json.dumps({
        "shape": [3, 8], "dtype": "float32", "kind": "multi-modal fusion",
        "sources": {"feat1": {"path": "../../sources/text.npy", "sidecar": source},
                    "feat2": {"path": "../../sources/text.npy", "sidecar": source}}}))
    return tmp_path / "fused/deeper/fused.npy"


@pytest.mark.parametrize("cwd", ["root", "elsewhere"])
def test_an_old_fusion_finds_its_sources_clip_from_the_sources_folder(tmp_path, monkeypatch, cwd):
    fused = _old_fusion(tmp_path)
    where = tmp_path if cwd == "root" else tmp_path / "fused/deeper"
    monkeypatch.chdir(where)
    categories = [Category(i, f"class {i}") for i in (1, 2, 3)]
    classifiers, clip = load_classifiers([os.path.relpath(fused, where)], categories)
    assert os.path.samefile(clip.pretrained, tmp_path / "weights/clip.pt")
    assert classifiers[0].category_ids == [1, 2, 3]
