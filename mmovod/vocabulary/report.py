"""The build report: an HTML page and one PNG contact sheet per class, to look at before training or detecting.

For each class the sheet shows every exemplar as the encoder sees it: the crop (box grown by the
context and made square, or the whole image) and view 0 of its TTA views (un-normalised back to
pixels, at the model's input size). The page lists each exemplar's source, the classes without
exemplars (their multi-modal rows are text only), the folders or categories that matched no class,
and per class its three nearest other classes by cosine of a classifier's rows: the likely
confusions, worth a synonym, a description or better photos. It holds no scripts.
"""
from __future__ import annotations

import html
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from mmovod.clip.crops import load_exemplar_crop
from mmovod.clip.exemplar_views import ViewPlan, exemplar_input
from mmovod.clip.image_encoding import view_plan
from mmovod.clip.specs import ViewSpec
from mmovod.io.atomic import atomic_open
from mmovod.readers.vocabulary import Vocabulary

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


def _tile(image: Image.Image) -> Image.Image:
    tile = Image.new("RGB", (TILE, TILE), BACKGROUND)
    fitted = ImageOps.contain(image, (TILE, TILE))
    tile.paste(fitted, ((TILE - fitted.width) // 2, (TILE - fitted.height) // 2))
    return tile


def sheet_view_plan(bundle: Any, view: ViewSpec) -> ViewPlan:
    """The encoding pipeline's plan for `view` (`view_plan`), made one exemplar at a time in this process.

    The fast order decodes at the reduction all of an exemplar's views allow, so it keeps them all;
    the original order makes each view alone, so view 0 needs no others.
    """
    plan = view_plan(bundle, view)
    return replace(plan, defer=False, num_views=1 if plan.order == "original" else plan.num_views)


def first_view(record: dict[str, Any], class_index: int, exemplar_index: int, plan: ViewPlan,
               context: float) -> Image.Image:
    """View 0 of an exemplar as the encoder sees it (`plan` from `sheet_view_plan`), at the model's input size."""
    pixels = exemplar_input(record, {}, context, plan, class_index, exemplar_index).views[0]
    return Image.fromarray(pixels.permute(1, 2, 0).numpy(), "RGB")


def contact_sheet(records: Sequence[dict[str, Any]], class_index: int, bundle: Any, view: ViewSpec) -> Image.Image:
    """Crop and TTA view 0 of each exemplar, side by side, PAIRS_PER_ROW pairs to a row, numbered from 1."""
    plan = sheet_view_plan(bundle, view)
    pair_w = 2 * TILE + GAP
    cols = min(len(records), PAIRS_PER_ROW)
    rows = -(-len(records) // PAIRS_PER_ROW)
    sheet = Image.new("RGB", (cols * pair_w + (cols + 1) * GAP * 2, rows * (TILE + 3 * GAP) + GAP), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for e, record in enumerate(records):
        crop = load_exemplar_crop(record, {}, view.context)
        x = 2 * GAP + (e % PAIRS_PER_ROW) * (pair_w + 2 * GAP)
        y = GAP + (e // PAIRS_PER_ROW) * (TILE + 3 * GAP) + 2 * GAP
        sheet.paste(_tile(crop), (x, y))
        sheet.paste(_tile(first_view(record, class_index, e, plan, view.context)), (x + TILE + GAP, y))
        draw.text((x, y - 2 * GAP + 1), f"{e + 1}", fill=(0, 0, 0))
    return sheet


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "class"


def _save_png(image: Image.Image, path: Path) -> None:
    with atomic_open(path, "wb") as handle:
        image.save(handle, format="PNG")


STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}h2{margin-top:1.6em;border-top:1px solid #ccc;
padding-top:.6em}table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:2px 6px;
text-align:left}.none{color:#a33}.near{color:#555}img{display:block;margin:.5em 0;max-width:100%}"""


def write_report(out_dir: str | os.PathLike, vocab: Vocabulary, records: Sequence[Sequence[dict[str, Any]]],
                 bundle: Any, view: ViewSpec, classifier: np.ndarray, classifier_name: str, *,
                 unmatched: Sequence[str] = (), skipped: Sequence[dict[str, str]] = ()) -> Path:
    """Write `out_dir/index.html` and `out_dir/sheets/<n>_<class>.png`; returns the page's path.

    `records`: per class, the exemplar records used; `view`: the crop context, TTA and seed the
    averaged classifier was made with; `classifier`: the `(C, D)` rows whose cosines give the nearest
    classes (named `classifier_name` on the page).
    """
    out = Path(out_dir)
    sheets = out / "sheets"
    sheets.mkdir(parents=True, exist_ok=True)
    names = vocab.names
    near = nearest_classes(classifier)
    without = [names[i] for i, rs in enumerate(records) if not rs]
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
             f"<title>Vocabulary report: {esc(vocab.path.name)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{esc(vocab.path.name)}: {len(names)} classes</h1>",
             f"<p>Each numbered pair on a sheet is an exemplar's crop (context {view.context}) and view 0 of its "
             f"{'TTA' if view.tta else 'plain'} views as the image encoder sees it. Nearest classes by cosine of "
             f"the {esc(classifier_name)} classifier.</p>"]
    if without:
        parts.append(f"<p class='none'>Classes without exemplars ({len(without)}; their multi-modal rows are text "
                     f"only): {esc(', '.join(without))}</p>")
    if unmatched:
        parts.append(f"<p class='none'>Exemplar folders or categories matching no class: {esc(', '.join(unmatched))}</p>")
    if skipped:
        parts.append("<p class='none'>Skipped unreadable images: "
                     + esc(", ".join(f"{s['path']} ({s['reason']})" for s in skipped)) + "</p>")
    written = set()
    for c, name in enumerate(names):
        nearest = ", ".join(f"{esc(names[j])} ({cos:.3f})" for j, cos in near[c]) or "none"
        parts.append(f"<h2 id='c{c}'>{c}. {esc(name)}</h2><p class='near'>nearest: {nearest}</p>")
        if not records[c]:
            parts.append("<p class='none'>no exemplars</p>")
            continue
        sheet = f"{c:04d}_{_slug(name)}.png"
        _save_png(contact_sheet(records[c], c, bundle, view), sheets / sheet)
        written.add(sheet)
        parts.append(f"<img src='sheets/{sheet}' alt='exemplars of {esc(name)}'>")
        rows = "".join(f"<tr><td>{e + 1}</td><td>{esc(r.get('source', ''))}</td><td>{esc(r['file_name'])}</td>"
                       f"<td>{esc(str(r.get('bbox', 'whole image')))}</td></tr>" for e, r in enumerate(records[c]))
        parts.append(f"<table><tr><th>#</th><th>source</th><th>image</th><th>box</th></tr>{rows}</table>")
    parts.append("</body></html>")
    for stale in sheets.glob("*.png"):
        if stale.name not in written:
            stale.unlink()
    page = out / "index.html"
    with atomic_open(page, "wb") as handle:
        handle.write("\n".join(parts).encode())
    return page
