"""The build report: an HTML page and one JPEG contact sheet per class, to look at before training or detecting.

For each class the sheet shows every exemplar as the encoder sees it: the crop (box grown by the
context and made square, or the whole image) and view 0 of its TTA views (un-normalised back to
pixels, at the model's input size). The page lists each exemplar's source, the classes without
exemplars (their multi-modal rows come from their text), the classifier handed to the detector and
why, the folders or categories that matched no class,
the images skipped as unreadable, and per class its three nearest other classes by cosine of a
classifier's rows: the likely confusions, worth a synonym, a description or better photos. A summary
table, the build settings and the leave-one-out results (when judged) come first; the page layout
is `mmovod.vocabulary.report_pages`.
"""
from __future__ import annotations

import html
import os
import re
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps
from tqdm import tqdm

from mmovod.clip.crops import decode_image
from mmovod.clip.exemplar_views import ViewPlan, draft_reduction, exemplar_input
from mmovod.clip.image_encoding import view_plan
from mmovod.clip.specs import ViewSpec
from mmovod.clip.view_ops import ViewRecipe, fast_views
from mmovod.io.atomic import atomic_open, make_output_dir
from mmovod.readers.exemplar_records import exemplar_crop_box
from mmovod.readers.image_roots import record_image_path
from mmovod.readers.vocabulary_file import Vocabulary
from mmovod.vocabulary import report_pages

TILE = 128
GAP = 6
PAIRS_PER_ROW = 4
NEIGHBOURS = 3
BACKGROUND = (255, 255, 255)


def nearest_classes(array: np.ndarray, k: int = NEIGHBOURS, chunk: int = 1024) -> list[list[tuple[int, float]]]:
    """Per row, the `k` other rows of highest cosine, best first, as (row, cosine); zero rows have none."""
    norms = np.linalg.norm(array.astype(np.float64), axis=1)
    usable = np.flatnonzero(norms > 0)
    unit = array[usable].astype(np.float64) / norms[usable, None]
    out: list[list[tuple[int, float]]] = [[] for _ in range(len(array))]
    for start in range(0, len(usable), chunk):
        cos = unit[start:start + chunk] @ unit.T
        for a in range(len(cos)):
            cos[a, start + a] = -np.inf
            order = np.argsort(-cos[a], kind="stable")[:k]
            out[int(usable[start + a])] = [(int(usable[j]), float(cos[a, j])) for j in order if np.isfinite(cos[a, j])]
    return out


def sheet_crop(record: Mapping[str, Any], context: float) -> Image.Image:
    """An exemplar's crop (`mmovod.clip.crops.load_exemplar_crop`) decoded no larger than its tile needs:
    a JPEG at the largest DCT reduction (`Image.draft`) that keeps the crop's short side at least TILE
    pixels, so a phone photo is never decoded at full size for a 128-pixel tile."""
    found: dict[str, tuple[int, int, int, int]] = {}

    def reduction(width: int, height: int) -> int:
        found["box"] = left, upper, right, lower = exemplar_crop_box(record, width, height, context)
        return draft_reduction(min(right - left, lower - upper), TILE)

    decoded = decode_image(record_image_path(record, {}), reduction)
    left, upper, right, lower = found.get("box") or exemplar_crop_box(record, *decoded.full_size, context)
    r, (ox, oy), image = decoded.reduction, decoded.origin, decoded.image
    return image.crop(((left - ox) // r, (upper - oy) // r,
                       min(-(-(right - ox) // r), image.width), min(-(-(lower - oy) // r), image.height)))


def _tile(image: Image.Image) -> Image.Image:
    tile = Image.new("RGB", (TILE, TILE), BACKGROUND)
    fitted = ImageOps.contain(image, (TILE, TILE))
    tile.paste(fitted, ((TILE - fitted.width) // 2, (TILE - fitted.height) // 2))
    return tile


def sheet_view_plan(bundle: Any, view: ViewSpec) -> ViewPlan:
    """The encoding pipeline's plan for `view` (`view_plan`), made one exemplar at a time in this process.

    The fast order decodes at the reduction all of an exemplar's views allow, so it draws them all
    (and stays deferred: `sheet_pair` makes view 0 alone from the decoded crop); the original order
    makes each view alone, so view 0 needs no others.
    """
    plan = view_plan(bundle, view)
    return replace(plan, num_views=1 if plan.order == "original" else plan.num_views)


def _image(pixels: torch.Tensor) -> Image.Image:
    return Image.fromarray(pixels.permute(1, 2, 0).numpy(), "RGB")


def sheet_pair(record: dict[str, Any], class_index: int, exemplar_index: int, plan: ViewPlan,
               context: float) -> tuple[Image.Image, Image.Image]:
    """An exemplar's crop and its view 0 as the encoder sees it (`plan` from `sheet_view_plan`, view 0
    at the model's input size). In the fast order both come from one decode, reduced as the encoder
    reduces it; otherwise the views need the full-size decode and the crop is decoded reduced (`sheet_crop`)."""
    item = exemplar_input(record, {}, context, plan, class_index, exemplar_index)
    if item.views is not None:
        return sheet_crop(record, context), _image(item.views[0])
    first = ViewRecipe(*(getattr(item.recipe, f.name)[:1] for f in fields(ViewRecipe)))
    return _image(item.crop), _image(fast_views(item.crop, first, plan.prep.size)[0])


def first_view(record: dict[str, Any], class_index: int, exemplar_index: int, plan: ViewPlan,
               context: float) -> Image.Image:
    """View 0 of an exemplar as the encoder sees it (`sheet_pair`)."""
    return sheet_pair(record, class_index, exemplar_index, plan, context)[1]


def contact_sheet(records: Sequence[dict[str, Any]], class_index: int, bundle: Any, view: ViewSpec,
                  numbers: Sequence[int] | None = None) -> Image.Image:
    """Crop and TTA view 0 of each exemplar, side by side, PAIRS_PER_ROW pairs to a row, numbered from 1
    (or by `numbers`: each record's exemplar number, when some of the class's exemplars are left out)."""
    plan = sheet_view_plan(bundle, view)
    pair_w = 2 * TILE + GAP
    cols = min(len(records), PAIRS_PER_ROW)
    rows = -(-len(records) // PAIRS_PER_ROW)
    sheet = Image.new("RGB", (cols * pair_w + (cols + 1) * GAP * 2, rows * (TILE + 3 * GAP) + GAP), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for e, record in enumerate(records):
        number = numbers[e] - 1 if numbers else e  # the view's seed is the exemplar's own number
        crop, first = sheet_pair(record, class_index, number, plan, view.context)
        x = 2 * GAP + (e % PAIRS_PER_ROW) * (pair_w + 2 * GAP)
        y = GAP + (e // PAIRS_PER_ROW) * (TILE + 3 * GAP) + 2 * GAP
        sheet.paste(_tile(crop), (x, y))
        sheet.paste(_tile(first), (x + TILE + GAP, y))
        draw.text((x, y - 2 * GAP + 1), f"{numbers[e] if numbers else e + 1}", fill=(0, 0, 0))
    return sheet


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "class"


def _save_jpeg(image: Image.Image, path: Path) -> None:
    """Sheets of photos as JPEG: a sixth of the bytes of PNG and a fortieth of its encoding time."""
    with atomic_open(path, "wb") as handle:
        image.save(handle, format="JPEG", quality=90)


def write_report(out_dir: str | os.PathLike, vocab: Vocabulary, records: Sequence[Sequence[dict[str, Any]]],
                 bundle: Any, view: ViewSpec, classifier: np.ndarray, classifier_name: str, *,
                 unmatched: Sequence[str] = (), skipped: Sequence[dict[str, Any]] = (),
                 judged: Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None,
                 handoff: tuple[str, str] | None = None, progress: bool = True) -> Path:
    """Write `out_dir/index.html` (`mmovod.vocabulary.report_pages`) and `out_dir/sheets/<n>_<class>.jpg`;
    returns the page's path.

    `records`: per class, the exemplar records used; `view`: the crop context, TTA and seed the
    averaged classifier was made with; `classifier`: the `(C, D)` rows whose cosines give the nearest
    classes (named `classifier_name` on the page); `skipped`: unreadable images (`class` name, `path`,
    `reason`), left off the sheets; `judged`: the build's leave-one-out document; `settings`: the
    build settings to show (label -> value); `handoff`: the kind handed to the detector and why;
    `progress`: a progress bar over the photos.
    """
    out = Path(out_dir)
    sheets = out / "sheets"
    make_output_dir(sheets, parents=True)
    names = vocab.names
    near = nearest_classes(classifier)
    without = [names[i] for i, rs in enumerate(records) if not rs]
    skipped_by_class: dict[str, list[dict[str, Any]]] = {}
    for item in skipped:
        skipped_by_class.setdefault(str(item.get("class")), []).append(item)
    loo = judged["kinds"].get(classifier_name) if judged is not None else None
    esc = html.escape
    notes = []
    if handoff is not None:
        notes.append(f"<p>Handed to the detector: <b>{esc(handoff[0])}</b>, {esc(handoff[1])}.</p>")
    if without:
        notes.append(f"<p class='none'>Classes without exemplars ({len(without)}; their multi-modal rows come from "
                     f"their text, its vision direction estimated from the other classes): {esc(', '.join(without))}</p>")
    if unmatched:
        notes.append(f"<p class='none'>Exemplar folders or categories matching no class: {esc(', '.join(unmatched))}</p>")
    if skipped:
        notes.append("<p class='none'>Skipped unreadable images: "
                     + esc(", ".join(f"{s['path']} ({s['reason']})" for s in skipped)) + "</p>")
    sections, written = [], set()
    bar = tqdm(total=sum(map(len, records)), unit="photo", desc="report", disable=not progress)
    for c, name in enumerate(names):
        bad = {str(s["path"]) for s in skipped_by_class.get(name, [])}
        kept = [(e, r) for e, r in enumerate(records[c]) if str(r["file_name"]) not in bad]
        section = report_pages.ClassSection(
            c, name, len(kept), skipped_by_class.get(name, []), [(names[j], cos) for j, cos in near[c]],
            loo["per_class"][c]["top1"] if loo is not None and loo["per_class"][c] is not None else None,
            rows=[(e + 1, str(r.get("source", "")), str(r["file_name"]), str(r.get("bbox", "whole image")))
                  for e, r in enumerate(records[c])])
        if kept:
            sheet = f"{c:04d}_{_slug(name)}.jpg"
            image = contact_sheet([r for _, r in kept], c, bundle, view, numbers=[e + 1 for e, _ in kept])
            _save_jpeg(image, sheets / sheet)
            section.sheet = (sheet, image.width, image.height)
            written.add(sheet)
        bar.update(len(records[c]))
        sections.append(section)
    bar.close()
    for stale in [*sheets.glob("*.jpg"), *sheets.glob("*.png")]:  # .png: sheets of earlier versions
        if stale.name not in written:
            stale.unlink()
    intro = (f"<p>Each numbered pair on a sheet is an exemplar's crop (context {view.context}) and view 0 of its "
             f"{'TTA' if view.tta else 'plain'} views as the image encoder sees it. Nearest classes by cosine of "
             f"the {esc(classifier_name)} classifier.</p>")
    pages = report_pages.write_pages(out, f"{vocab.path.name}: {len(names)} classes", intro, settings or {}, notes,
                                     sections, judged, classifier_name)
    return pages[0]
