"""The judge step of a vocabulary build (`--judge`): it makes sure the exemplar views are at hand
(kept by an earlier build, else encoded again) and judges every planned classifier leave-one-out
(`mmovod.vocabulary.judging`). Which stages have views, and which views are the photo queries, comes
from the kinds table (`mmovod.classifiers.kinds`: the vision kinds, `judge_queries()`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmovod.aggregator.model import VisualAggregator
from mmovod.classifiers.kinds import KINDS, judge_queries
from mmovod.clip.factory import resolve_device
from mmovod.clip.image_encoding import ExemplarEmbeddings
from mmovod.evaluation.leave_one_out import JudgedKind
from mmovod.vocabulary import judging
from mmovod.vocabulary.plan import Plan
from mmovod.vocabulary.settings import BuildInputs, BuildSettings


def can_judge(plan: Plan) -> bool:
    """Whether the plan has the vision stage whose views are the judge's photo queries."""
    return judge_queries() in plan.stages


def views_at_hand(plan: Plan, out: Path) -> bool:
    """Whether judging needs no image encoded beyond what the build encodes anyway: every vision stage
    is computed now or its views were kept by an earlier build."""
    kept = judging.stored_fingerprints(out)
    return all(not plan.stages[n].reused or kept.get(n) == plan.stages[n].fingerprint for n in plan.of("vision"))


def need_views(plan: Plan, out: Path) -> None:
    """Mark for encoding each vision stage whose views no earlier build kept under `out`: judging
    needs the view embeddings, not just the rows."""
    kept = judging.stored_fingerprints(out)
    for name in plan.of("vision"):
        if kept.get(name) != plan.stages[name].fingerprint:
            plan.stages[name].reused = False


def judge(plan: Plan, inputs: BuildInputs, settings: BuildSettings, encoded: dict[str, ExemplarEmbeddings],
          aggregator: VisualAggregator | None, out: Path, command: str | None) -> dict[str, Any]:
    """Leave-one-out judgement of every stage (`mmovod.vocabulary.judging`), from the views this build
    encoded or, for reused stages, the ones an earlier build kept."""
    vision = {n: plan.stages[n].fingerprint for n in plan.of("vision")}
    encoded = {**judging.load_embeddings(out, {n: f for n, f in vision.items() if n not in encoded}, len(inputs.vocab)),
               **encoded}
    if judging.stored_fingerprints(out) != vision:  # an unchanged rebuild leaves the file as it is
        judging.save_embeddings(out, encoded, vision)
    text = plan.stages[plan.text_source].array
    kinds = []
    for name, stage in plan.stages.items():
        kind = KINDS[name]
        vision_part = name if kind.family == "vision" else kind.fuses
        kinds.append(JudgedKind(name, stage.array, vision=vision_part, text=text if kind.fuses else None,
                                space=stage.sidecar.space))
    return judging.judge_build(out, inputs.vocab.names, inputs.exemplars.records, kinds, encoded,
                               queries=judge_queries(), aggregator=aggregator, num_views=settings.views.num_views,
                               device=resolve_device(settings.clip.device), command=command)
