"""Every path a sidecar holds is found again from the sidecar's folder: the exemplar list, the aggregator,
the photos and image roots relative to where the command ran, after the whole tree moved."""
import json
import shutil

import numpy as np

from mmovod.classifiers.sidecar import make_sidecar, read_sidecar, save_classifier
from mmovod.classifiers.sidecar_files import from_working_folder, located_input
from mmovod.clip.identity import file_digest


def _tree(root):
    (root / "photos").mkdir(parents=True)
    (root / "photos/a.jpg").write_bytes(b"jpg")
    (root / "out").mkdir()
    (root / "out/exemplars.json").write_text(json.dumps([[{"dataset": "file", "file_name": "photos/a.jpg"}]]))
    (root / "agg.pth").write_bytes(b"weights")


def test_paths_typed_relative_to_the_command_are_found_from_the_sidecar_after_a_move(tmp_path, monkeypatch):
    project = tmp_path / "project"
    _tree(project)
    monkeypatch.chdir(project)
    rows = np.ones((1, 4), np.float32)
    save_classifier("out/v.npy", rows, make_sidecar(rows, "vision-aggregated", None, space="aggregator", details={
        "exemplar_list": "out/exemplars.json", "aggregator": "agg.pth", "image_roots": {"mine": "photos"}}))
    details = read_sidecar("out/v.npy").details
    assert details["input_files"]["aggregator"] == {"relative_to_sidecar": "../agg.pth",
                                                    "absolute": str(project / "agg.pth"),
                                                    "sha256": file_digest(project / "agg.pth")}
    assert details["working_folder"] == {"relative_to_sidecar": "..", "absolute": str(project)}
    moved = tmp_path / "moved"
    shutil.move(project, moved)
    monkeypatch.chdir(tmp_path)
    details = read_sidecar(moved / "out/v.npy").details
    assert details["exemplar_list"] == "out/exemplars.json"  # one spelling: the value as typed, found beside it
    assert located_input(details, "exemplar_list", moved / "out") == str(moved / "out/exemplars.json")
    assert located_input(details, "aggregator", moved / "out") == str(moved / "agg.pth")
    assert from_working_folder("photos/a.jpg", details, moved / "out") == moved / "photos/a.jpg"
    assert from_working_folder("photos", details, moved / "out") == moved / "photos"


def test_old_sidecars_without_locations_resolve_as_typed(tmp_path):
    side = {"schema_version": 2, "kind": "vision-average", "shape": [1, 4], "dtype": "float32", "clip_model": None,
            "pretrained": None, "embed_dim": None, "details": {"exemplar_list": "gone/exemplars.json"}}
    np.save(tmp_path / "v.npy", np.ones((1, 4), np.float32))
    (tmp_path / "v.npy.json").write_text(json.dumps(side))
    details = read_sidecar(tmp_path / "v.npy").details
    assert located_input(details, "exemplar_list", tmp_path) == "gone/exemplars.json"
    assert located_input(details, "aggregator", tmp_path) is None
    assert from_working_folder("photos/a.jpg", details, tmp_path).as_posix() == "photos/a.jpg"
