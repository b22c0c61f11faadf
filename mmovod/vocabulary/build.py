"""One step from a vocabulary (and photos) to every classifier: CLIP loaded once, images decoded once, resumable.

Writes into an output folder, rows in vocabulary order, each `.npy` with its sidecar
(`mmovod.classifiers.sidecar`):
  text.npy                    class-name prompts, Detic's recipe (prompt, fix_space, use_underscore,
                              avg_synonyms as in dump_clip_features.py), float32, not normalised
  descriptions.npy            mean embedding of each class's descriptions (when there are any), float32
  vision-average.npy          mean raw CLIP embedding of each class's exemplars x num_views TTA views
                              (context 0.4, as get_exemplars_tta.py), float32
  vision-aggregated.npy       the visual aggregator over each class's views (context 0.2, as
                              generate_vision_classifier_agg.py), float16; with an aggregator checkpoint
  multi-modal-average.npy     l2(l2(descriptions, else text) + l2(vision-average)), float32
  multi-modal-aggregated.npy  the same with vision-aggregated
  text-ensemble.npy           (l2(text) + l2(descriptions)) / 2 (when there are descriptions), float32
  vocabulary.json             the class order and, per class, what went into each row (`mmovod.vocabulary.document`)
  exemplars.json              the exemplar list used (get_exemplars_tta.py reads it when every class has exemplars)
  .mmovod-build.json          the files this build wrote (`mmovod.vocabulary.output_folder`: a rebuild removes
                              what an earlier build wrote and this one did not; other files are refused)
Which of these a build makes, and how each is computed, is the table of classifier kinds
(`mmovod.classifiers.kinds`, the rows with `built`); the build's plan (`mmovod.vocabulary.plan`)
picks the ones its inputs allow, and each is computed in table order by its family's step
(`mmovod.vocabulary.stage_rows`). A class without exemplars has a zero row in the vision classifiers
(the sidecar lists it) and a text-only row, l2(text), in the multi-modal ones. With `judge`, the
judge step (`mmovod.vocabulary.judge_step`) adds leave-one-out.json; with `report`, the report
(`mmovod.vocabulary.build_report`) adds report/.

Both vision classifiers come from one pass over the images (`mmovod.vocabulary.view_sets`): each
image is decoded once, and when the two crops of an exemplar coincide (whole images) and both use
TTA views, those views are made and encoded once for both.

Resumable: each sidecar's `details.fingerprint` hashes what its rows depend on
(`mmovod.vocabulary.fingerprints`). A re-run recomputes only the stages whose fingerprint changed
and loads CLIP only when one of them needs it. Everything is computed before anything is written, so
a failed run leaves earlier outputs as they were.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmovod.aggregator.model import VisualAggregator
from mmovod.classifiers.kinds import judge_queries
from mmovod.classifiers.sidecar import make_sidecar, save_classifier, sidecar_path
from mmovod.classifiers.vision import check_aggregator_fits
from mmovod.clip.factory import clip_embed_dim
from mmovod.handoff.detic import detic_config_lines
from mmovod.handoff.formats import FORMATS, export_rows
from mmovod.io.atomic import make_output_dir
from mmovod.io.errors import interruption_keeps
from mmovod.io.json_files import dumps_json
from mmovod.vocabulary import judge_step, judging, output_folder
from mmovod.vocabulary.document import classes_without_vision, vocabulary_doc
from mmovod.vocabulary.fingerprints import clip_description
from mmovod.vocabulary.output_folder import prepare_out_dir, write_if_changed
from mmovod.vocabulary.plan import Plan, check_request
from mmovod.vocabulary.recommend import check_prefer, recommend
from mmovod.vocabulary.build_report import write_report
from mmovod.vocabulary.settings import BuildInputs, BuildSettings
from mmovod.vocabulary.stage_rows import BuildContext, stage_rows

log = logging.getLogger(__name__)


@dataclass
class BuildResult:
    """What a build wrote (`files` by stage), which stages it computed and which it reused."""

    out_dir: Path
    files: dict[str, Path]
    spaces: dict[str, str]
    computed: list[str]
    reused: list[str]
    without_exemplars: list[str]
    handoff: str
    detic_lines: list[str]
    handoff_reason: str
    exports: dict[str, Path] = field(default_factory=dict)
    export_notes: list[str] = field(default_factory=list)
    """What the user should know about the exported files (`Handoff.notes`, each once)."""
    report: Path | None = None
    judged: dict[str, Any] | None = None
    not_judged: str | None = None
    """Why the build did not judge, when it could have with --judge."""
    removed: list[str] = field(default_factory=list)
    """What an earlier build had written into the folder and this one did not: removed (`output_folder.settle`)."""


def _load_aggregator(settings: BuildSettings) -> VisualAggregator | None:
    if settings.aggregator is None:
        return None
    aggregator = VisualAggregator.from_checkpoint(settings.aggregator.path, num_layers=settings.aggregator.num_layers)
    check_aggregator_fits(aggregator, settings.clip.model, clip_embed_dim(settings.clip.model), settings.aggregator.path)
    return aggregator


def build_classifiers(inputs: BuildInputs, settings: BuildSettings, out_dir: str | os.PathLike,
                      command: str | None = None) -> BuildResult:
    """Build (or reuse) every classifier of the module docstring for `inputs` into `out_dir`."""
    out = prepare_out_dir(out_dir, create=False)  # created only once there is something to write
    earlier = output_folder.claim(out)  # refuses a folder holding files no build wrote
    aggregator = _load_aggregator(settings)
    plan = Plan(inputs, settings, out, aggregator)
    judge = settings.judge if settings.judge is not None else judge_step.views_at_hand(plan, out)
    if judge:  # judging needs the view embeddings: kept from an earlier build, else encoded again
        judge_step.need_views(plan, out)
    aggregator_space = aggregator.space if aggregator is not None else None
    check_request(inputs, settings, list(plan.stages), aggregator_space)
    every_class_has_vision = not inputs.exemplars.classes_without()
    check_prefer(settings.prefer, list(plan.stages), every_class_has_vision)
    vocab, exemplars = inputs.vocab, inputs.exemplars
    stale_text = plan.stale(*plan.of("text"))
    stale_vision = plan.stale(*plan.of("vision"))
    bundle = None
    if stale_text or stale_vision or settings.report:
        tower = "both" if stale_text and stale_vision else ("image" if stale_vision else "text")
        bundle = settings.clip.load(tower)
        log.info("loaded %s on %s (%s tower%s) for %s", settings.clip.model, bundle.device, tower,
                 "s" if tower == "both" else "", ", ".join(stale_text + stale_vision) or "the report")
    clip = clip_description(settings.clip)
    ids = [c.category_id for c in vocab.classes]
    category_ids = ids if any(i is not None for i in ids) else None
    names = vocab.names
    synonyms = [list(c.synonyms) for c in vocab.classes]  # the evaluation matches rows to categories by these too
    named = {"class_synonyms": synonyms} if any(synonyms) else {}

    def finish(name: str, array: np.ndarray, details: dict[str, Any]) -> None:
        stage = plan.stages[name]
        kind = stage.kind
        stage.array = array.astype(kind.dtype)
        stage.sidecar = make_sidecar(stage.array, kind.sidecar_kind or name, clip, space=kind.space_with(aggregator_space),
                                     normalized=kind.normalized, details={"fingerprint": stage.fingerprint, **named, **details},
                                     class_names=names, category_ids=category_ids, command=command)

    context = BuildContext(plan, inputs, settings, bundle, aggregator)
    for name in plan.stale(*plan.stages):  # table order: text, vision (encoded together), then fusions
        finish(name, *stage_rows(plan.stages[name].kind, context))
    encoded = context.encoded
    computed = [s.name for s in plan.stages.values() if not s.reused]
    saved: list[str] = []  # an interrupted build names the classifiers it wrote: the next run reuses them
    with interruption_keeps(lambda: f"{', '.join(saved)} ({len(saved)} of {len(computed)} classifiers, each with its "
                                    f"sidecar) {'is' if len(saved) == 1 else 'are'} written to {out}" if saved else None,
                            "run the same command again to reuse them and finish the build"):
        prepare_out_dir(out)
        written = [out / "vocabulary.json", *output_folder.descriptions_read(out, inputs.descriptions_source),
                   *[p for s in plan.stages.values() for p in (s.path, sidecar_path(s.path))]]
        if any(exemplars.records):  # first: the vision and multi-modal sidecars record where it is
            write_if_changed(out / "exemplars.json", dumps_json(exemplars.records, indent=True))
            written.append(out / "exemplars.json")
        for stage in plan.stages.values():
            if not stage.reused:
                save_classifier(stage.path, stage.array, stage.sidecar)
                saved.append(stage.path.name)
        without = classes_without_vision(plan, names, exemplars)
        judged = None
        if judge and judge_step.can_judge(plan):
            judged = judge_step.judge(plan, inputs, settings, encoded, aggregator, out, command)
            written += [out / judging.RESULT_FILE, out / judging.EMBEDDINGS_FILE]
        choice = recommend({n: s.sidecar.space for n, s in plan.stages.items()}, every_class_has_vision and not without,
                           judged, settings.prefer)
        write_if_changed(out / "vocabulary.json",
                         dumps_json(vocabulary_doc(inputs, settings, plan, without, choice.as_json()), indent=True))
        main = plan.stages[choice.kind]
        lines = detic_config_lines(main.path, len(vocab), main.array.shape[1])
        result = BuildResult(out, {n: s.path for n, s in plan.stages.items()},
                             {n: s.sidecar.space for n, s in plan.stages.items()}, computed,
                             [s.name for s in plan.stages.values() if s.reused], without, choice.kind,
                             lines if main.sidecar.space == "clip" else lines[:1], choice.reason, judged=judged,
                             not_judged=None if judge or not judge_step.can_judge(plan) else
                             "its vision classifiers were reused and their views not kept; --judge encodes them again")
        for name in settings.export:
            make_output_dir(out / "export")
            stage = plan.stages[name]
            result.exports[name] = out / "export" / f"{name}{FORMATS[settings.export_format].suffix}"
            handoff = export_rows(stage.array, stage.sidecar, settings.export_format, result.exports[name],
                                  source=str(stage.path), space=stage.sidecar.space, command=command)
            written += handoff.files
            result.export_notes += [n for n in handoff.notes if n not in result.export_notes]
        if settings.report:
            queries = plan.stages.get(judge_queries())
            skipped = queries.sidecar.details["skipped_images"] if queries is not None else exemplars.skipped
            shown = {"vocabulary": f"{vocab.path} ({vocab.format})", **clip_description(settings.clip),
                     "views": settings.views.provenance(), "aggregator": settings.aggregator and settings.aggregator.path,
                     "command": command, "built": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
            result.report = write_report(out / "report", vocab, exemplars.records, bundle, settings.views, main.array,
                                         choice.kind, unmatched=exemplars.unmatched, skipped=skipped, judged=result.judged,
                                         handoff=(choice.kind, choice.reason), settings=shown)
            written.append(result.report)
        result.removed = output_folder.settle(out, earlier, written)
    return result
