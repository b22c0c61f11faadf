"""The classifier-kinds table: every row is complete and what the build, the export and the tools derive from it."""
import numpy as np

from mmovod.classifiers.kinds import KINDS, SPACES, built, exportable, handoff_preference
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
                     "multi-modal-aggregated")
    assert exportable() == built()  # the aggregated kinds too, when their aggregator was trained for CLIP's space
    aggregated, fused = KINDS["vision-aggregated"], KINDS["multi-modal-aggregated"]
    assert [aggregated.space_with(s) for s in (None, "clip", "aggregator")] == ["aggregator", "clip", "aggregator"]
    assert [fused.space_with(s) for s in (None, "clip", "aggregator")] == ["mixed", "clip", "mixed"]
    assert KINDS["multi-modal-average"].space_with("aggregator") == "clip"
    assert handoff_preference() == ("multi-modal-aggregated", "multi-modal-average", "descriptions", "text")
    assert {n: KINDS[n].fuses for n in built() if KINDS[n].family == "fusion"} == {
        "multi-modal-average": "vision-average", "multi-modal-aggregated": "vision-aggregated"}


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
