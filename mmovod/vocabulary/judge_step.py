"""The judge step of a vocabulary build (`--judge`): it makes sure the exemplar views are at hand
(kept by an earlier build, else encoded again) and judges every planned classifier leave-one-out
(`mmovod.vocabulary.judging`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmovod.aggregator.model import VisualAggregator
from mmovod.classifiers.kinds import KINDS
from mmovod.clip.factory import resolve_device
from mmovod.clip.image_encoding import ExemplarEmbeddings
from mmovod.evaluation.leave_one_out import JudgedKind
from mmovod.vocabulary import judging
from mmovod.vocabulary.plan import Plan
from mmovod.vocabulary.settings import BuildInputs, BuildSettings

AVERAGE, AGGREGATED = "vision-average", "vision-aggregated"
"""The two vision kinds leave-one-out judging treats as its averaged and aggregated roles."""


def views_at_hand(plan: Plan, out: Path) -> bool:
    """Whether judging needs no image encoded beyond what the build encodes anyway: every vision stage
    is computed now or its views were kept by an earlier build."""
    kept = judging.stored_fingerprints(out)
    return all(not plan.stages[n].reused or kept.get(n) == plan.stages[n].fingerprint
               for n in (AVERAGE, AGGREGATED) if n in plan.stages)


def need_views(plan: Plan, out: Path) -> None:
    """Mark for encoding each vision stage whose views no earlier build kept under `out`: judging
    needs the view embeddings, not just the rows."""
    kept = judging.stored_fingerprints(out)
    for name in (AVERAGE, AGGREGATED):
        if name in plan.stages and kept.get(name) != plan.stages[name].fingerprint:
            plan.stages[name].reused = False


def judge(plan: Plan, inputs: BuildInputs, settings: BuildSettings, encoded: dict[str, ExemplarEmbeddings],
          aggregator: VisualAggregator | None, out: Path, command: str | None) -> dict[str, Any]:
    """Leave-one-out judgement of every stage (`mmovod.vocabulary.judging`), from the views this build
    encoded or, for reused stages, the ones an earlier build kept."""
    vision = {n: plan.stages[n].fingerprint for n in (AVERAGE, AGGREGATED) if n in plan.stages}
    encoded = {**judging.load_embeddings(out, {n: f for n, f in vision.items() if n not in encoded}, len(inputs.vocab)),
               **encoded}
    if judging.stored_fingerprints(out) != vision:  # an unchanged rebuild leaves the file as it is
        judging.save_embeddings(out, encoded, vision)
    text = plan.stages[plan.text_source].array
    fusions = {n: KINDS[n].fuses for n in plan.of("fusion")}
    kinds = [JudgedKind(n, s.array, vision={AVERAGE: "average", AGGREGATED: "aggregated"}.get(fusions.get(n, n)),
                        text=text if n in fusions else None, space=s.sidecar.space)
             for n, s in plan.stages.items()]
    return judging.judge_build(out, inputs.vocab.names, inputs.exemplars.records, {n: s.array for n, s in plan.stages.items()},
                               kinds, encoded, average=AVERAGE, aggregated=AGGREGATED, aggregator=aggregator,
                               num_views=settings.views.num_views, device=resolve_device(settings.clip.device),
                               command=command)
