"""Which classifier the build hands off: the best-judged candidate, ties to the default preference, --prefer over
both, the most preferred CLIP-space kind without a judgement, and never a vision kind that has zero rows."""
import pytest

from mmovod.io.errors import InputError
from mmovod.vocabulary.recommend import check_prefer, recommend

SPACES = {"text": "clip", "descriptions": "clip", "vision-average": "clip", "vision-aggregated": "aggregator",
          "multi-modal-average": "clip", "multi-modal-aggregated": "mixed"}


def judged(**top1):
    return {"kinds": {name.replace("_", "-"): {"overall": {"top1": value}} for name, value in top1.items()}}


def test_the_best_judged_candidate_is_handed_off_and_the_reason_names_the_runner_up():
    doc = judged(text=80.0, descriptions=85.0, vision_average=99.0, multi_modal_average=90.0,
                 multi_modal_aggregated=70.0)
    choice = recommend(SPACES, True, doc, None)
    assert choice.kind == "vision-average"
    assert choice.reason == ("best leave-one-out top-1 of the 5 kinds judged on your photos (99.0%; next "
                             "multi-modal-average 90.0%)")
    assert choice.scores == {"multi-modal-aggregated": 70.0, "multi-modal-average": 90.0, "descriptions": 85.0,
                             "text": 80.0, "vision-average": 99.0}


def test_a_vision_kind_with_zero_rows_is_never_handed_off_and_ties_go_to_the_preference():
    doc = judged(text=80.0, vision_average=100.0, multi_modal_average=95.0, multi_modal_aggregated=95.0)
    choice = recommend(SPACES, False, doc, None)  # some class has no photo: vision rows of zeros
    assert choice.kind == "multi-modal-aggregated"
    assert choice.reason == ("best leave-one-out top-1 of the 3 kinds judged on your photos (95.0%; next "
                             "multi-modal-average 95.0%, a tie the default preference breaks; vision-average left "
                             "out: a class without photos has a zero row there)")  # the judge's table shows 4 kinds
    assert "vision-average" not in choice.scores


def test_prefer_overrides_and_without_a_judgement_the_first_clip_space_kind_is_chosen():
    doc = judged(text=80.0, multi_modal_average=95.0)
    assert recommend(SPACES, True, doc, "text").kind == "text"
    assert recommend(SPACES, True, doc, "text").reason == "asked for with --prefer (leave-one-out top-1 80.0%)"
    unjudged = recommend(SPACES, True, None, None)
    assert unjudged.kind == "multi-modal-average"  # multi-modal-aggregated is first but not in CLIP's space
    assert unjudged.reason == ("the default preference among rows in CLIP's space (multi-modal-average, then "
                               "descriptions, then text); --judge measures every kind on your photos and hands off the best")
    assert recommend({**SPACES, "multi-modal-aggregated": "clip"}, True, None, None).kind == "multi-modal-aggregated"


def test_prefer_is_refused_before_any_work_for_a_kind_not_built_or_with_zero_rows():
    with pytest.raises(InputError, match="--prefer descriptions: this build makes no descriptions classifier"):
        check_prefer("descriptions", ["text", "vision-average"], True)
    with pytest.raises(InputError, match="--prefer vision-average: some classes have no readable exemplar"):
        check_prefer("vision-average", ["text", "vision-average"], False)
    check_prefer("vision-average", ["text", "vision-average"], True)
