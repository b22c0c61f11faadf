"""The classifier-kinds table: every row is complete and what the build, the export and the tools derive from it."""
import numpy as np
import pytest

from mmovod.classifiers.kinds import (KINDS, SPACES, ClassifierKind, built, exportable, handoff_preference, judge_queries,
                                     register_kind, text_source, unregister_kind)
from mmovod.classifiers import text_ensemble
from mmovod.classifiers.vision import average_classifier


def test_every_row_is_complete_and_every_built_kind_resolves_its_rows_function():
    for name, kind in KINDS.items():
        assert kind.space in SPACES and kind.dtype in ("float32", "float16") and kind.computed, name
        if kind.built:
            assert callable(kind.compute()), name
            assert kind.family in ("text", "vision", "fusion")
    assert KINDS["vision-average"].compute() is average_classifier


def test_derived_lists():
    assert built() == ("text", "descriptions", "vision-average", "vision-aggregated", "multi-modal-average",
                     "multi-modal-aggregated", "text-ensemble")
    assert exportable() == built()  # the aggregated kinds too, when their aggregator was trained for CLIP's space
    aggregated, fused = KINDS["vision-aggregated"], KINDS["multi-modal-aggregated"]
    assert [aggregated.space_with(s) for s in (None, "clip", "aggregator")] == ["aggregator", "clip", "aggregator"]
    assert [fused.space_with(s) for s in (None, "clip", "aggregator")] == ["mixed", "clip", "mixed"]
    assert KINDS["multi-modal-average"].space_with("aggregator") == "clip"
    assert handoff_preference() == ("multi-modal-aggregated", "multi-modal-average", "descriptions", "text",
                                    "text-ensemble")
    assert {n: KINDS[n].fuses for n in built() if KINDS[n].family == "fusion"} == {
        "multi-modal-average": "vision-average", "multi-modal-aggregated": "vision-aggregated", "text-ensemble": None}
    assert KINDS["text-ensemble"].parts("descriptions") == {"text": "text", "descriptions": "descriptions"}
    assert KINDS["multi-modal-average"].parts("descriptions") == {"text": "descriptions", "vision": "vision-average"}
    assert text_source(["text", "descriptions", "text-ensemble"]) == "descriptions" and text_source(["text"]) == "text"
    assert judge_queries() == "vision-average"


def test_the_fusion_rows_function_against_a_hand_computation():
    text = np.array([[3.0, 4.0], [0.0, 2.0]])
    vision = np.array([[1.0, 0.0], [0.0, 0.0]])  # class 1 has no exemplars
    fused = KINDS["multi-modal-average"].compute()(text, vision)
    first = np.array([0.6 + 1.0, 0.8]) / np.hypot(1.6, 0.8)
    # class 1: its vision direction is l2(l2(text) + gap), gap = l2(v0) - l2(t0) = (0.4, -0.8)
    estimated = np.array([0.4, 0.2]) / np.hypot(0.4, 0.2)
    second = (np.array([0.0, 1.0]) + estimated) / np.linalg.norm(np.array([0.0, 1.0]) + estimated)
    np.testing.assert_allclose(fused, [first, second], rtol=1e-6)
    assert fused.dtype == np.float32
    only_text = KINDS["multi-modal-average"].compute()(text, np.zeros_like(vision))  # no class has exemplars
    np.testing.assert_allclose(only_text, [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)


def test_the_text_ensemble_rows_against_a_hand_computation():
    """text-ensemble is the mean of the unit class-name row and the unit descriptions row (not re-normalised)."""
    text = np.array([[3.0, 4.0], [0.0, 2.0]], dtype=np.float32)
    described = np.array([[0.0, 5.0], [1.0, 0.0]], dtype=np.float32)
    rows = KINDS["text-ensemble"].compute()(text, described)
    np.testing.assert_allclose(rows, [[0.3, 0.9], [0.5, 0.5]], rtol=1e-6)
    assert rows.dtype == np.float32
    assert KINDS["text-ensemble"].family == "fusion" and KINDS["text-ensemble"].spaces == ("clip",)
    with pytest.MonkeyPatch.context() as mp:  # the slip of averaging the raw rows is caught
        mp.setattr(text_ensemble, "l2_normalise_rows", lambda array: np.asarray(array, dtype=np.float64))
        assert not np.allclose(KINDS["text-ensemble"].compute()(text, described), [[0.3, 0.9], [0.5, 0.5]], rtol=1e-6)


def test_register_kind_refuses_what_the_table_cannot_hold():
    row = ClassifierKind("text-twice", "clip", "float32", ("prompts",), "twice", (), rows=lambda s, c, progress: s)
    with pytest.raises(ValueError, match="already in the table"):
        register_kind(ClassifierKind("text", "clip", "float32", ("prompts",), "again", ()))
    with pytest.raises(ValueError, match="space 'pixels'"):
        register_kind(ClassifierKind("x", "pixels", "float32", ("prompts",), "x", (), rows="m:f"))
    with pytest.raises(ValueError, match="needs 'audio', neither an input"):
        register_kind(ClassifierKind("x", "clip", "float32", ("audio",), "x", (), rows="m:f"))
    with pytest.raises(ValueError, match="a built kind needs `rows`"):
        register_kind(ClassifierKind("x", "clip", "float32", ("prompts",), "x", ()))
    assert register_kind(row) is row and built()[-1] == "text-twice" and KINDS["text-twice"].compute() is row.rows
    assert unregister_kind("text-twice") is row and "text-twice" not in KINDS
