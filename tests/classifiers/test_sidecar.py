"""The sidecar schema: versions 1 and 2 read to the same fields; kinds and spaces come from the kinds table."""
import json

import numpy as np
import pytest

from mmovod.classifiers.kinds import KINDS, sidecar_kinds
from mmovod.classifiers.sidecar import SCHEMA_VERSION, make_sidecar, parse_sidecar, read_sidecar, save_classifier
from mmovod.io.errors import InputError

CLIP = {"clip_model": "ViT-B/32", "pretrained": "openai", "embed_dim": 4}


def test_version_1_detail_spellings_read_as_version_2(tmp_path):
    array = np.ones((2, 4), dtype=np.float32)
    details = {"num_views": 5, "combine": "mean", "formula": "l2(l2(a) + l2(b))", "seed": 0}
    save_classifier(tmp_path / "new.npy", array, make_sidecar(array, "vision-average", CLIP, details=details))
    written = json.loads((tmp_path / "new.npy.json").read_text())
    assert written["schema_version"] == SCHEMA_VERSION == 2 and written["details"] == details
    v1 = {**written, "schema_version": 1,
          "details": {"num_augs": 5, "reduction": "mean", "normalisation": "l2(l2(a) + l2(b))", "seed": 0}}
    assert parse_sidecar(v1, "v1") == read_sidecar(tmp_path / "new.npy")


def test_a_current_key_wins_over_its_old_spelling():
    doc = {"schema_version": 1, "kind": "text", "shape": [1, 4], "dtype": "float32",
           "details": {"num_views": 3, "num_augs": 7}}
    assert parse_sidecar(doc, "x").details == {"num_views": 3, "num_augs": 7}


def test_kinds_and_spaces_come_from_the_table():
    assert set(sidecar_kinds()) == {k.sidecar_kind or k.name for k in KINDS.values()}
    assert "multi-modal-average" not in sidecar_kinds()  # the build's fusions are multi-modal files
    for kind in sidecar_kinds():
        doc = {"schema_version": 2, "kind": kind, "shape": [1, 4], "dtype": "float32", "space": "clip"}
        assert parse_sidecar(doc, "x").kind == kind
    with pytest.raises(InputError, match="'kind' must be one of text, descriptions"):
        parse_sidecar({"schema_version": 2, "kind": "banana", "shape": [1, 4]}, "x")
    with pytest.raises(InputError, match="schema_version 3 is not supported"):
        parse_sidecar({"schema_version": 3, "kind": "text", "shape": [1, 4]}, "x")
