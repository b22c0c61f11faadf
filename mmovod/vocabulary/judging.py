"""The build's leave-one-out judgement (`mmovod.evaluation.leave_one_out`) of every classifier it made.

The exemplar view embeddings the build encodes are kept in `OUT/exemplar-embeddings.npz` (float32,
per vision classifier, once when both share their views, with the fingerprint of the rows they made), so a later `--judge` run whose
vision classifiers are reused judges them without encoding a single image again. The result goes
to `OUT/leave-one-out.json` and into the build report.
"""
from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import orjson
import torch

from mmovod.aggregator.model import VisualAggregator
from mmovod.clip.image_encoding import ExemplarEmbeddings
from mmovod.evaluation.leave_one_out import JudgedKind, leave_one_out, result_document
from mmovod.io.atomic import atomic_open
from mmovod.io.json_files import dumps_json
from mmovod.io.wording import plural
from mmovod.vocabulary.output_folder import EMBEDDINGS_FILE, RESULT_FILE, write_if_changed

log = logging.getLogger(__name__)

RESULT_FORMAT = "mmovod-leave-one-out"
RESULT_VERSION = 1


def _read_stage(data: Any, stage: str, num_classes: int | None) -> ExemplarEmbeddings | None:
    """One stage's kept views from the open npz `data`, or None when they are missing or malformed."""
    try:
        valid, class_of = data[f"{stage}/valid"], data[f"{stage}/class_of"]
        if f"{stage}/views_of" in data.files:
            views = data[f"{str(data[f'{stage}/views_of'][0])}/embeddings"][:, :int(data[f"{stage}/views"])]
        else:
            views = data[f"{stage}/embeddings"]
    except (KeyError, ValueError, IndexError, TypeError, OSError):
        return None
    if (views.ndim != 3 or views.dtype != np.float32 or valid.shape != views.shape[:1] or valid.dtype != bool
            or class_of.shape != views.shape[:1] or not np.issubdtype(class_of.dtype, np.integer)
            or (len(class_of) and class_of.min() < 0)
            or (num_classes is not None and len(class_of) and class_of.max() >= num_classes)):
        return None
    return ExemplarEmbeddings(torch.from_numpy(views), torch.from_numpy(valid), torch.from_numpy(class_of.astype(np.int64)),
                              num_classes if num_classes is not None else int(class_of.max(initial=-1)) + 1)


def stored_fingerprints(out_dir: Path) -> dict[str, str]:
    """The fingerprints of the view embeddings kept readable in `out_dir` ({} when there are none)."""
    try:
        with np.load(out_dir / EMBEDDINGS_FILE, allow_pickle=False) as data:
            found = orjson.loads(str(data["fingerprints"]))
            if not isinstance(found, dict):
                return {}
            return {k: v for k, v in found.items()
                    if isinstance(k, str) and isinstance(v, str) and _read_stage(data, k, None) is not None}
    except (OSError, ValueError, KeyError, orjson.JSONDecodeError, zipfile.BadZipFile):
        return {}


def load_embeddings(out_dir: Path, fingerprints: Mapping[str, str], num_classes: int) -> dict[str, ExemplarEmbeddings]:
    """The kept view embeddings of the stages whose fingerprint is `fingerprints[stage]`, checked for shape."""
    stored = stored_fingerprints(out_dir)
    wanted = [stage for stage, fingerprint in fingerprints.items() if stored.get(stage) == fingerprint]
    if not wanted:
        return {}
    out = {}
    with np.load(out_dir / EMBEDDINGS_FILE, allow_pickle=False) as data:
        for stage in wanted:
            emb = _read_stage(data, stage, num_classes)
            if emb is not None:
                out[stage] = emb
    return out


def save_embeddings(out_dir: Path, encoded: Mapping[str, ExemplarEmbeddings], fingerprints: Mapping[str, str]) -> None:
    """Keep `encoded` (by stage) in `out_dir/exemplar-embeddings.npz`, atomically."""
    arrays: dict[str, np.ndarray] = {"fingerprints": np.array(orjson.dumps(dict(fingerprints)).decode())}
    kept: dict[str, ExemplarEmbeddings] = {}
    for stage, emb in sorted(encoded.items(), key=lambda item: -item[1].embeddings.shape[1]):
        views = emb.embeddings.shape[1]
        twin = next((name for name, other in kept.items() if torch.equal(other.valid, emb.valid)
                     and torch.equal(other.embeddings[:, :views], emb.embeddings)), None)
        if twin is not None:  # views shared by both vision classifiers (whole images): kept once
            arrays[f"{stage}/views_of"] = np.array([twin])
            arrays[f"{stage}/views"] = np.array(views)
        else:
            arrays[f"{stage}/embeddings"] = emb.embeddings.float().numpy()
            kept[stage] = emb
        arrays[f"{stage}/valid"] = emb.valid.numpy()
        arrays[f"{stage}/class_of"] = emb.class_of.numpy()
    with atomic_open(out_dir / EMBEDDINGS_FILE, "wb") as handle:
        np.savez(handle, **arrays)


def judge_build(out_dir: Path, class_names: Sequence[str], records: Sequence[Sequence[dict[str, Any]]],
                kinds: Sequence[JudgedKind], encoded: Mapping[str, ExemplarEmbeddings], *, queries: str,
                aggregator: VisualAggregator | None, num_views: int, device: torch.device | str,
                command: str | None) -> dict[str, Any]:
    """Judge `kinds` by leave-one-out on `encoded` (the view embeddings by vision stage; `queries` names the
    stage whose views are the photo queries), write `out_dir/leave-one-out.json` and return its document."""
    flat = [r for class_records in records for r in class_records]
    result = leave_one_out(class_names, encoded[queries], kinds, views=encoded, aggregator=aggregator,
                           num_views=num_views, device=device, progress=True)
    doc = {"format": RESULT_FORMAT, "version": RESULT_VERSION, "command": command,
           **result_document(result, flat, queries)}
    write_if_changed(out_dir / RESULT_FILE, dumps_json(doc, indent=True))
    return doc


def summary_lines(doc: Mapping[str, Any], shown: int = 5) -> list[str]:
    """What the build prints: per kind top-1/top-5 over the held-out photos, the classes not judged
    and the first photos that look like another class."""
    photos = next(iter(doc["kinds"].values()))["overall"]["photos"] if doc["kinds"] else 0
    lines = [f"leave-one-out on {plural(photos, 'photo', 'photos')}, each classified against rows made without it "
             "(every class's from one photo fewer) by its raw CLIP embedding, as a detector scores a region, %:"]
    width = max(len(k) for k in doc["kinds"]) if doc["kinds"] else 0
    for kind, d in doc["kinds"].items():
        o = d["overall"]
        lines.append(f"  {kind:<{width}}  top-1 {_fmt(o['top1'])}  top-5 {_fmt(o['top5'])}  "
                     f"mean class top-1 {_fmt(o['mean_class_top1'])}")
    if doc["not_judgeable"]:
        lines.append(f"not judgeable (one photo): {', '.join(doc['not_judgeable'])}")
    looks = doc["look_like_another_class"]
    if looks:
        lines.append(f"{plural(len(looks), 'photo looks', 'photos look')} more like another class by "
                     f"{doc['lookalike_kind']}, e.g.: "
                     + "; ".join(f"{x['class']} {Path(x['image']).name} -> {x['looks_like']}"
                                 for x in looks[:shown]))
    return lines


def _fmt(x: float | None) -> str:
    return "  n/a" if x is None else f"{x:5.1f}"
