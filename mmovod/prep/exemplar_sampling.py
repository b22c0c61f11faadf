"""Draw K exemplars per LVIS class from the collated exemplar dict (the authors' sampling procedure).

For each category in ascending id, with a fresh `numpy.random.default_rng(seed)`: weights are the
records' areas (ImageNet images count as 100*100, LVIS records bbox w*h, Visual Genome w*h),
probabilities are `np.array(weights) / sum(weights)`, and `rng.choice(n, size=K, p=..., replace=False)`
picks the records; each chosen record gains its `area` (the weight). Drawing indices picks exactly
what drawing from the list of records does, since numpy's choice computes the same indices.

The exemplar dict is decoded lazily: per class only the fields the weights need, and the chosen
records in full.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import orjson
from tqdm import tqdm

from mmovod.io.atomic import check_output_path
from mmovod.io.errors import InputError
from mmovod.io.json_files import check_utf8, describe_json_error, read_bytes, save_json
from mmovod.readers.exemplar_list import check_exemplar_record
from mmovod.readers.lvis_json import SYNTAX_ERRORS, LvisFile, decode_checked
from mmovod.io.wording import plural

log = logging.getLogger(__name__)

IMAGENET_SIDE = 100.0  # an ImageNet image weighs as a 100 x 100 box
DEFAULT_SEED = 42


class WeightRef(msgspec.Struct):
    dataset: str
    bbox: list[float] | None = None
    w: float | None = None
    h: float | None = None


_classes_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_weights_decoder = msgspec.json.Decoder(list[WeightRef])
_raws_decoder = msgspec.json.Decoder(list[msgspec.Raw])


def box_size(ref: WeightRef) -> tuple[float, float] | None:
    """(w, h) of a record's box: 100 x 100 for ImageNet (a whole image), bbox[2:] for LVIS, w, h for
    Visual Genome; None when the record lacks what its dataset needs."""
    if ref.dataset == "imagenet21k":
        return IMAGENET_SIDE, IMAGENET_SIDE
    if ref.dataset == "lvis":
        return (ref.bbox[2], ref.bbox[3]) if ref.bbox is not None and len(ref.bbox) == 4 else None
    if ref.dataset == "visual_genome":
        return (ref.w, ref.h) if ref.w is not None and ref.h is not None else None
    return None


def exemplar_weight(ref: WeightRef) -> float | None:
    """The sampling weight of one record (its box area), or None when the record lacks what its dataset needs."""
    size = box_size(ref)
    return None if size is None else float(size[0] * size[1])


def weighted_choice(weights: list[float], k: int, seed: int) -> list[int]:
    """The authors' draw of one class: `k` indices without replacement from a fresh
    `default_rng(seed)`, with probabilities `weights / sum(weights)` (needs k non-zero weights)."""
    rng = np.random.default_rng(seed)
    probs = np.array(weights) / sum(weights)
    return rng.choice(len(weights), size=k, p=probs, replace=False).tolist()


@dataclass
class Sampling:
    chosen: list[list[dict]]
    short: list[tuple[str, int]]  # (synset, usable candidates) of classes with fewer than K


def sample_exemplars(
    lvis_ann_path: str | os.PathLike,
    exemplar_dict_path: str | os.PathLike,
    k: int,
    seed: int = DEFAULT_SEED,
    allow_fewer: bool = False,
    progress: bool = True,
) -> Sampling:
    """K records per LVIS category (ascending id). A class with fewer than K records of non-zero
    weight is an InputError naming the classes, unless `allow_fewer` (then it keeps all of those)."""
    if k <= 0:
        raise InputError(f"-K must be positive, got {k}")
    if seed < 0:
        raise InputError(f"--seed must not be negative, got {seed}")
    cats = sorted(LvisFile(lvis_ann_path, required=("categories",)).categories(), key=lambda c: c["id"])
    if not cats:
        raise InputError(f"{lvis_ann_path}: 'categories' is empty")
    path = str(exemplar_dict_path)
    try:
        data = read_bytes(path, "exemplar dict")
        check_utf8(data, path)
        classes = _classes_decoder.decode(data)
    except msgspec.ValidationError:
        raise InputError(f"{path}: expected a JSON object (synset -> list of exemplars)") from None
    except SYNTAX_ERRORS as exc:
        raise describe_json_error(path, exc) from None
    missing = [c.get("synset") for c in cats if c.get("synset") not in classes]
    if missing:
        raise InputError(f"{path}: no exemplars for {len(missing)} LVIS classes "
                         f"({', '.join(map(str, missing[:10]))}{' ...' if len(missing) > 10 else ''})")
    chosen, short = [], []
    for cat in tqdm(cats, desc="sampling", unit="class", disable=not progress):
        synset = cat["synset"]
        refs = decode_checked(_weights_decoder, classes[synset], path, f"exemplars of {synset}")
        raws = decode_checked(_raws_decoder, classes[synset], path, f"exemplars of {synset}")
        weights = []
        for index, ref in enumerate(refs):
            weight = exemplar_weight(ref)
            where = f"{path}: exemplar #{index} of {synset} (dataset {ref.dataset!r})"
            if weight is None:
                raise InputError(f"{where} has no usable bbox / w, h")
            w, h = box_size(ref)
            if w < 0 or h < 0 or not math.isfinite(weight):
                raise InputError(f"{where} has box width {w} and height {h}: the sizes must not be negative "
                                 "and the area must be finite")
            weights.append(weight)
        usable = sum(1 for w in weights if w > 0)
        if usable < k:
            short.append((synset, usable))
            picked = [i for i, w in enumerate(weights) if w > 0]
        else:
            picked = weighted_choice(weights, k, seed)
        records = []
        for i in picked:
            try:
                record = orjson.loads(memoryview(raws[i]))
            except orjson.JSONDecodeError as exc:
                raise InputError(f"{path}: exemplar #{i} of {synset}: not valid JSON ({exc})") from None
            check_exemplar_record(record, f"{path}: exemplar #{i} of {synset}")
            record["area"] = weights[i]
            records.append(record)
        chosen.append(records)
    if short and not allow_fewer:
        names = ", ".join(f"{s} ({n})" for s, n in short[:10]) + (" ..." if len(short) > 10 else "")
        raise InputError(f"{path}: {plural(len(short), 'class has', 'classes have')} fewer than K={k} exemplars: {names} "
                         "(use --allow-fewer to keep all they have)")
    return Sampling(chosen, short)


def write_sampled_exemplars(
    lvis_ann_path: str | os.PathLike,
    exemplar_dict_path: str | os.PathLike,
    out_path: str | os.PathLike,
    k: int,
    seed: int = DEFAULT_SEED,
    allow_fewer: bool = False,
) -> tuple[Sampling, Path]:
    """`sample_exemplars` saved as the exemplar list at `out_path`; returns the sampling and the path."""
    out = check_output_path(out_path, [lvis_ann_path, exemplar_dict_path])
    result = sample_exemplars(lvis_ann_path, exemplar_dict_path, k, seed, allow_fewer)
    save_json(out, result.chosen)
    return result, out
