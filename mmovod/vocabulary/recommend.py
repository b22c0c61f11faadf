"""Which classifier a build hands to the detector: the best-judged one, the one asked for, or the default.

Candidates are the kinds with a row for every class (a vision kind only when every class has a readable
exemplar: a zero row detects nothing). With a leave-one-out judgement the candidate with the highest
top-1 on the held-out photos (raw: photo embeddings compared with the rows, as a detector compares
regions) is chosen, ties going to the table's hand-off preference; `prefer` overrides; without a
judgement the most preferred candidate whose rows are in CLIP's space is chosen.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from mmovod.classifiers.kinds import KINDS, handoff_preference
from mmovod.io.errors import InputError


@dataclass(frozen=True)
class Recommendation:
    """The kind handed off, the one-line reason, and the leave-one-out top-1 (%) of each candidate judged."""

    kind: str
    reason: str
    scores: dict[str, float] | None = None

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "reason": self.reason, "leave_one_out_top1": self.scores}


def candidates(spaces: Mapping[str, str], every_class_has_vision: bool) -> list[str]:
    """The planned kinds (name -> space of its rows) that may be handed off, most preferred first."""
    order = [*handoff_preference(), *(n for n in KINDS if n not in handoff_preference())]
    return [n for n in order if n in spaces and (KINDS[n].family != "vision" or every_class_has_vision)]


def check_prefer(prefer: str | None, planned: Sequence[str], every_class_has_vision: bool) -> None:
    """InputError, before any work, for a `--prefer` kind this build cannot hand off."""
    if prefer is None:
        return
    if prefer not in planned:
        raise InputError(f"--prefer {prefer}: this build makes no {prefer} classifier (it makes {', '.join(planned)})")
    if KINDS[prefer].family == "vision" and not every_class_has_vision:
        raise InputError(f"--prefer {prefer}: some classes have no readable exemplar and so a zero row, which a "
                         "detector can never predict; prefer a text or multi-modal kind")


def recommend(spaces: Mapping[str, str], every_class_has_vision: bool, judged: Mapping[str, Any] | None,
              prefer: str | None) -> Recommendation:
    """The hand-off (see the module docstring); `judged` is the leave-one-out document, if any."""
    pool = candidates(spaces, every_class_has_vision)
    scores = None
    if judged is not None:
        scores = {n: judged["kinds"][n]["overall"]["top1"] for n in pool
                  if n in judged["kinds"] and judged["kinds"][n]["overall"]["top1"] is not None}
    if prefer is not None:
        measured = f" (leave-one-out top-1 {scores[prefer]:.1f}%)" if scores and prefer in scores else ""
        return Recommendation(prefer, f"asked for with --prefer{measured}", scores)
    if scores:
        ranked = sorted(scores, key=lambda n: (-scores[n], pool.index(n)))
        best = ranked[0]
        runner = ""
        if len(ranked) > 1:
            tie = ", a tie the default preference breaks" if scores[ranked[1]] == scores[best] else ""
            runner = f"; next {ranked[1]} {scores[ranked[1]]:.1f}%{tie}"
        zero_rows = [n for n in judged["kinds"] if n in spaces and n not in pool]  # vision kinds judged, not eligible
        left = f"; {', '.join(zero_rows)} left out: a class without photos has a zero row there" if zero_rows else ""
        return Recommendation(best, f"best leave-one-out top-1 of the {len(scores)} kinds judged on your photos "
                                    f"({scores[best]:.1f}%{runner}{left})", scores)
    in_clip = [n for n in pool if spaces[n] == "clip"]
    eligible = in_clip or pool
    chosen = eligible[0]
    order = ", then ".join(n for n in handoff_preference() if n in eligible)
    among = " among rows in CLIP's space" if in_clip else ""
    why = f"the default preference{among} ({order}); --judge measures every kind on your photos and hands off the best"
    if judged is not None:
        why = "no class has two readable photos to judge with, so " + why.split(";")[0]
    return Recommendation(chosen, why, scores)
