"""What an evaluation writes: the table (terminal and Markdown), the JSON, PNG plots and the HTML report.

Plots use matplotlib's Agg backend (no display needed). The HTML page references only files next to
it (the plots and `report_files/*.jpg` thumbnails, by relative links) and has no external resources;
a small inline script reports any image that failed to load on the browser console.
"""
from __future__ import annotations

import html
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmovod.io.atomic import atomic_open

log = logging.getLogger(__name__)

GROUPS = ("r", "c", "f")
GROUP_NAMES = {"all": "all", "r": "rare", "c": "common", "f": "frequent"}
TABLE_COLUMNS = ("classifier", "kind", "scored", "crops", "top-1", "top-5", "mean acc", "mAP", "mAP_r", "mAP_c", "mAP_f")
RESULTS_JSON = "eval_results.json"
RESULTS_MD = "eval_results.md"
GROUPS_PNG = "eval_map_top1_by_frequency.png"
AP_PNG = "eval_ap_vs_frequency.png"
REPORT_HTML = "report.html"
REPORT_FILES = "report_files"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def table_columns(results: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """TABLE_COLUMNS, without the frequency groups' when no result has them (a file without r/c/f)."""
    return TABLE_COLUMNS if any("by_frequency" in r for r in results) else TABLE_COLUMNS[:-len(GROUPS)]


def table_rows(results: Sequence[dict[str, Any]]) -> list[list[str]]:
    """One row per classifier (percentages), in `table_columns` order."""
    rows = []
    grouped = len(table_columns(results)) == len(TABLE_COLUMNS)
    for r in results:
        groups = r.get("by_frequency", {})
        overall = r["overall"]
        rows.append([r["name"], r["kind"], r.get("scored", "raw"), str(overall["crops"]), _pct(overall["top1"]), _pct(overall["top5"]),
                     _pct(overall["mean_class_accuracy"]), _pct(overall["map"]),
                     *(_pct(groups.get(g, {}).get("map")) for g in GROUPS if grouped)])
    return rows


def terminal_table(results: Sequence[dict[str, Any]]) -> str:
    rows = [list(table_columns(results)), *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    rows = table_rows(results)
    columns = table_columns(results)
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" if i < 3 else "---:" for i in range(len(columns))) + "|"
    return "\n".join([head, rule, *("| " + " | ".join(row) + " |" for row in rows)]) + "\n"


def markdown_document(results: Sequence[dict[str, Any]], doc: dict[str, Any]) -> str:
    """The Markdown file: what was evaluated, then the table (all values in %)."""
    crops = doc["crops"]
    return (f"# Classifier evaluation on {doc['annotations']}\n\n"
            f"{crops['crops']} ground-truth crops of {crops['classes']} classes, CLIP {doc['clip']}; "
            f"values in %. Scored as a detector scores: the crop embeddings compared with the rows (`raw`); rows "
            f"not in CLIP's space also through a linear map fitted on the other classes' crops (`mapped`, what a "
            f"detector trained with them learns). Metric definitions: see `{RESULTS_JSON}` (`metrics`).\n\n"
            + markdown_table(results))


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


FONT_SIZE = 12
"""Points of every plot text (at 100 dpi, 17 pixels; still over 10 shown at the page's narrowest width)."""
SCATTER_ABOVE = 30
"""Classes above which per-class AP is a scatter against frequency; up to this many, one named bar per class."""
ZERO_MARK = 0.6
"""Height, in points of %, of the mark that stands for a bar of value 0 (a bar of no height is invisible)."""


def _pyplot() -> Any:
    """pyplot on the Agg backend, with every text literal (a `$` in a classifier's file name is not
    matplotlib mathtext, which would fail on an unbalanced `$` or render `a$b$` as math) and every
    text FONT_SIZE points."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update({"text.parse_math": False, "text.usetex": False, "font.size": FONT_SIZE,
                                "legend.fontsize": FONT_SIZE, "axes.titlesize": FONT_SIZE + 1})
    import matplotlib.pyplot as plt

    return plt


def _bars(axis: Any, positions: np.ndarray, values: Sequence[float | None], width: float, label: str,
          horizontal: bool = False, upright_labels: bool = False) -> None:
    """Bars of `values` (fractions, shown in %); a value of 0 is drawn as a thin mark of the bar's
    colour, so it reads as zero rather than missing, and a missing value (None) is left empty.
    `upright_labels`: the value labels run up the bar (side by side they would overlap on narrow bars)."""
    heights = [100 * v if v is not None else 0.0 for v in values]
    shown = [max(h, ZERO_MARK) if v is not None else 0.0 for h, v in zip(heights, values)]
    draw = axis.barh if horizontal else axis.bar
    bars = draw(positions, shown, width, label=label)
    axis.bar_label(bars, labels=[f"{h:.0f}" if v is not None else "" for h, v in zip(heights, values)],
                   padding=2, fontsize=FONT_SIZE - 2, rotation=90 if upright_labels else 0)


LEGEND_COLUMNS = 3
"""At most this many classifiers to a row of a legend under a plot."""
UPRIGHT_LABELS_ABOVE = 3
"""Classifiers above which the group plot's value labels run up their bars (side by side, "100" is wider than a bar)."""


def legend_columns(labels: Sequence[str], figure_width: float) -> int:
    """How many legend entries of `labels` fit side by side in `figure_width` inches (at most LEGEND_COLUMNS):
    an entry takes its marker and gaps (about 0.7 in) and about 0.6 em a character."""
    entry = 0.7 + 0.6 * FONT_SIZE / 72 * max((len(label) for label in labels), default=1)
    return int(max(1, min(LEGEND_COLUMNS, len(labels), figure_width // entry)))


def _legend(figure: Any, axis: Any) -> float:
    """The classifiers' legend under the plot, as many to a row as fit; returns the fraction of the height it takes."""
    handles, labels = axis.get_legend_handles_labels()
    columns = legend_columns(labels, figure.get_size_inches()[0])
    rows = -(-len(labels) // columns)
    figure.legend(handles, labels, loc="lower center", ncol=columns, frameon=False)
    return min(0.5, 0.45 * rows / figure.get_size_inches()[1])


def plot_groups(results: Sequence[dict[str, Any]]) -> bytes:
    """PNG of grouped bars: mAP (left) and top-1 (right) per frequency group, one bar per classifier,
    each labelled with its value."""
    plt = _pyplot()
    groups = ["all", *(g for g in GROUPS if any(g in r.get("by_frequency", {}) for r in results))]
    rows = -(-len(results) // legend_columns([r["name"] for r in results], 11))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.6 + 0.4 * rows))
    width = 0.8 / max(1, len(results))
    upright = len(results) > UPRIGHT_LABELS_ABOVE
    x = np.arange(len(groups))
    for axis, metric, title in zip(axes, ("map", "top1"), ("mAP over crops", "top-1 accuracy")):
        for i, r in enumerate(results):
            values = [(r["overall"] if g == "all" else r.get("by_frequency", {}).get(g, {})).get(metric) for g in groups]
            _bars(axis, x + (i - (len(results) - 1) / 2) * width, values, width, r["name"], upright_labels=upright)
        axis.set_xticks(x, [GROUP_NAMES[g] for g in groups])
        axis.set_ylabel(f"{title} (%)")
        axis.set_ylim(0, 118 if upright else 108)
        axis.set_title(title)
    bottom = _legend(figure, axes[0])
    figure.tight_layout(rect=(0, bottom, 1, 1))
    png = _png(figure)
    plt.close(figure)
    return png


def _ap_by_class(plt: Any, results: Sequence[dict[str, Any]]) -> Any:
    """Per-class AP as horizontal bars, one group per class named on the axis, one bar per classifier."""
    names = [c["name"] for c in results[0]["per_class"]]
    rows = -(-len(results) // legend_columns([r["name"] for r in results], 10))
    figure, axis = plt.subplots(figsize=(10, 1.6 + 0.32 * len(names) * max(1, len(results)) + 0.4 * rows))
    height = 0.8 / max(1, len(results))
    y = np.arange(len(names))
    for i, r in enumerate(results):
        ap = {c["name"]: c["ap"] for c in r["per_class"]}
        _bars(axis, y + (i - (len(results) - 1) / 2) * height, [ap.get(n) for n in names], height, r["name"],
              horizontal=True)
    axis.set_yticks(y, names)
    axis.invert_yaxis()  # the first class on top, as in the table
    axis.set_xlim(0, 108)
    axis.set_xlabel("per-class AP over crops (%)")
    axis.set_title("AP of each class")
    bottom = _legend(figure, axis)
    figure.tight_layout(rect=(0, bottom, 1, 1))
    return figure


def plot_ap_vs_frequency(results: Sequence[dict[str, Any]]) -> bytes:
    """PNG of per-class AP: up to SCATTER_ABOVE classes, a named bar per class and classifier; above,
    a scatter against the class's LVIS training image count (`image_count`), or against its number of
    evaluated crops when the file has no image counts."""
    plt = _pyplot()
    if max((len(r["per_class"]) for r in results), default=0) <= SCATTER_ABOVE:
        figure = _ap_by_class(plt, results)
        png = _png(figure)
        plt.close(figure)
        return png
    use_images = any(c.get("image_count") for r in results for c in r["per_class"])
    key, label = ("image_count", "training images of the class (LVIS image_count)") if use_images else \
        ("crops", "evaluated crops of the class")
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    figure, axis = plt.subplots(figsize=(10, 4.8))
    spread = []
    for r in results:
        points = [(c[key], c["ap"]) for c in r["per_class"] if c["ap"] is not None and c.get(key)]
        if points:
            xs, ys = zip(*points)
            spread += xs
            axis.scatter(xs, [100 * y for y in ys], s=14, alpha=0.6, label=r["name"])
    if spread and max(spread) >= 10 * min(spread):  # a log axis only over at least a decade, labelled as numbers
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())
    elif spread:  # counts: whole numbers, with room on both sides
        axis.set_xlim(min(spread) - 1, max(spread) + 1)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel(label)
    axis.set_ylabel("per-class AP over crops (%)")
    axis.set_title(f"AP of each of {max(len(r['per_class']) for r in results):,} classes against its frequency")
    axis.legend(markerscale=2, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    figure.tight_layout()
    png = _png(figure)
    plt.close(figure)
    return png


@dataclass
class Tile:
    """A thumbnail on the report page: its relative link, caption and kind (exemplar, wrong, correct)."""

    link: str
    caption: str
    kind: str


@dataclass
class WorstClass:
    """A class shown in the report: its per-class JSON entry and its tiles."""

    info: dict[str, Any]
    tiles: list[Tile]


_PAGE_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #bbb; padding: 3px 8px; text-align: right; }
td:first-child, td:nth-child(2), th { text-align: left; }
.crops { display: flex; flex-wrap: wrap; gap: 6px; margin-bottom: 1em; }
figure { margin: 0; width: 112px; font-size: 11px; text-align: center; }
figure.correct img { outline: 3px solid #2a2; }
figure.wrong img { outline: 3px solid #c22; }
figure.exemplar img { outline: 3px solid #36c; }
img.plot { display: block; width: 100%; max-width: 1100px; margin: 1em 0; border: 1px solid #ddd; }
"""

_IMAGE_CHECK = """
window.addEventListener("load", function () {
  for (const img of document.images) {
    if (!img.complete || img.naturalWidth === 0) { console.error("image failed to load: " + img.getAttribute("src")); }
  }
});
"""


def write_html(path: Path, results: Sequence[dict[str, Any]], doc: dict[str, Any],
               worst: dict[str, list[WorstClass]], plots: Sequence[str]) -> None:
    """The HTML report: the table, the plots, and per classifier its worst classes as rows of
    thumbnails: exemplars (blue), misclassified crops captioned with the predicted class (red) and a
    few correct crops (green)."""
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in table_columns(results))
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in table_rows(results))
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Classifier evaluation</title><style>{_PAGE_STYLE}</style></head><body>",
        "<h1>Classifier evaluation</h1>",
        f"<p>{doc['crops']['crops']} ground-truth crops of {doc['crops']['classes']} classes from "
        f"<code>{esc(doc['annotations'])}</code>, CLIP {esc(str(doc['clip']))}. Values in %. Blue: the "
        "classifier's exemplars of the class; red: misclassified crops, captioned with the predicted class; "
        "green: correctly classified crops.</p>",
        f"<table><tr>{head}</tr>{body}</table>",
        "".join(f"<img class='plot' src='{esc(p)}' alt='{esc(p)}'>" for p in plots),
    ]
    for r in results:
        parts.append(f"<h2>{esc(r['name'])}: worst classes by AP</h2>")
        for cls in worst.get(r["name"], []):
            info = cls.info
            frequency = GROUP_NAMES.get(str(info.get("frequency")))
            parts.append(f"<h3 title='category id {info['id']}'>{esc(info['name'])}"
                         f"{f' ({frequency})' if frequency else ''}: AP {_pct(info['ap'])}, "
                         f"top-1 {_pct(info['accuracy'])}, crops: {info['crops']}</h3>")
            figures = [f"<figure class='{esc(t.kind)}'><img src='{esc(t.link)}' width='112' height='112' "
                       f"alt='{esc(t.kind)}'><figcaption>{esc(t.caption)}</figcaption></figure>" for t in cls.tiles]
            parts.append("<div class='crops'>" + "".join(figures) + "</div>")
    parts.append(f"<script>{_IMAGE_CHECK}</script></body></html>")
    with atomic_open(path, "wb") as handle:
        handle.write("\n".join(parts).encode())
