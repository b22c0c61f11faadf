"""The build report's HTML: a summary page and, for large vocabularies, class pages of `PAGE_SIZE` classes.

`index.html` holds what needs a look (classes without exemplars, folders matching no class, skipped
images), one summary row per class (photos, skipped, nearest class and cosine, leave-one-out top-1)
linking to the class's section, the leave-one-out results when the build judged its classifiers, and
the build settings. Up to `PAGE_SIZE` classes the sections follow on the same page; beyond, they go to
`classes-<n>.html`, so a 1,203-class vocabulary opens as a table, not as 1,203 contact sheets. Every
sheet is lazy-loaded with its size given, and the pages hold no scripts.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmovod.io.atomic import atomic_open

PAGE_SIZE = 100
LOOKALIKES_SHOWN = 50

STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}h2{margin-top:1.6em;border-top:1px solid #ccc;
padding-top:.6em}table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:2px 6px;
text-align:left}td.n{text-align:right}.none{color:#a33}.near{color:#555}img{display:block;margin:.5em 0;
max-width:100%;height:auto}nav{margin:.8em 0}"""


@dataclass
class ClassSection:
    """One class of the report: its summary-row values and its section's contents."""

    index: int
    name: str
    photos: int
    skipped: list[dict[str, str]] = field(default_factory=list)
    nearest: list[tuple[str, float]] = field(default_factory=list)
    loo_top1: float | None = None
    sheet: tuple[str, int, int] | None = None  # file under sheets/, width, height
    rows: list[tuple[int, str, str, str]] = field(default_factory=list)  # number, source, image, box


def page_of(index: int, classes: int) -> str:
    """The file holding class `index`'s section."""
    return "index.html" if classes <= PAGE_SIZE else f"classes-{index // PAGE_SIZE + 1}.html"


def _head(title: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>")


def _link(section: ClassSection, classes: int, here: str) -> str:
    page = page_of(section.index, classes)
    return f"{'' if page == here else page}#c{section.index}"


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}"


def _settings_table(settings: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in settings.items() if v not in (None, ""))
    return f"<h2 id='settings'>Build settings</h2><table>{rows}</table>"


def _summary_table(sections: Sequence[ClassSection], judged_kind: str | None) -> str:
    n = len(sections)
    loo_head = f"<th>leave-one-out top-1 % ({html.escape(judged_kind)})</th>" if judged_kind else ""
    rows = []
    by_name = {s.name: s for s in sections}
    for s in sections:
        near = (f"<a href='{_link(by_name[s.nearest[0][0]], n, 'index.html')}'>{html.escape(s.nearest[0][0])}</a>"
                f"</td><td class='n'>{s.nearest[0][1]:.3f}") if s.nearest else "</td><td>"
        loo = f"<td class='n'>{_pct(s.loo_top1) if s.photos > 1 else 'one photo' if s.photos else ''}</td>" \
            if judged_kind else ""
        rows.append(f"<tr><td class='n'>{s.index}</td><td><a href='{_link(s, n, 'index.html')}'>{html.escape(s.name)}"
                    f"</a></td><td class='n'>{s.photos}</td><td class='n'>{len(s.skipped) or ''}</td>"
                    f"<td>{near}</td>{loo}</tr>")
    return ("<h2 id='classes'>Classes</h2><table><tr><th>#</th><th>class</th><th>photos</th><th>skipped</th><th>nearest class</th>"
            f"<th>cosine</th>{loo_head}</tr>{''.join(rows)}</table>")


def _judged(judged: Mapping[str, Any], sections: Sequence[ClassSection]) -> str:
    """Leave-one-out: every kind's overall numbers, the confusions of the first kind, and the look-alike photos."""
    by_name = {s.name: s for s in sections}
    n = len(sections)
    esc = html.escape

    def link(name: str) -> str:
        s = by_name.get(name)
        return esc(name) if s is None else f"<a href='{_link(s, n, 'index.html')}'>{esc(name)}</a>"

    kinds = judged["kinds"]
    rows = "".join(f"<tr><td>{esc(k)}</td><td class='n'>{d['overall']['photos']}</td><td class='n'>"
                   f"{_pct(d['overall']['top1'])}</td><td class='n'>{_pct(d['overall']['top5'])}</td><td class='n'>"
                   f"{_pct(d['overall']['mean_class_top1'])}</td></tr>" for k, d in kinds.items())
    parts = ["<h2 id='judged'>Leave-one-out: your photos, judged</h2>",
             "<p>Each photo of a class with at least two photos is classified with its class's rows rebuilt "
             "without it (text kinds: against the text rows), as a detector would score a perfect box. "
             "Details: <code>leave-one-out.json</code>.</p>",
             "<table><tr><th>classifier</th><th>photos</th><th>top-1 %</th><th>top-5 %</th>"
             f"<th>mean class top-1 %</th></tr>{rows}</table>"]
    if judged["not_judgeable"]:
        parts.append(f"<p class='none'>Not judgeable (one photo): {esc(', '.join(judged['not_judgeable']))}</p>")
    for kind, d in kinds.items():
        if d["confusions"]:
            items = ", ".join(f"{link(c['true'])} &rarr; {link(c['predicted'])} ({c['photos']})"
                              for c in d["confusions"][:5])
            parts.append(f"<p class='near'>Most confused ({esc(kind)}): {items}</p>")
    looks = judged["look_like_another_class"][:LOOKALIKES_SHOWN]
    if looks:
        rows = "".join(f"<tr><td>{link(x['class'])}</td><td class='n'>{x['exemplar']}</td><td>{esc(x['image'])}</td>"
                       f"<td>{link(x['looks_like'])}</td><td class='n'>{x['cosine_own']:.3f}</td><td class='n'>"
                       f"{x['cosine_other']:.3f}</td></tr>" for x in looks)
        parts.append(f"<h3>Photos that look like another class ({esc(judged['lookalike_kind'])})</h3>"
                     "<p>Likely mislabelled or ambiguous: worth a look, a better photo or a crop.</p>"
                     "<table><tr><th>class</th><th>photo #</th><th>image</th><th>looks like</th>"
                     f"<th>cosine to own class</th><th>to that class</th></tr>{rows}</table>")
    return "".join(parts)


def _section(s: ClassSection, sections: Sequence[ClassSection], here: str) -> str:
    esc = html.escape
    n = len(sections)
    by_name = {x.name: x for x in sections}
    near = ", ".join(f"<a href='{_link(by_name[name], n, here)}'>{esc(name)}</a> ({cos:.3f})"
                     for name, cos in s.nearest) or "none"
    parts = [f"<h2 id='c{s.index}'>{s.index}. {esc(s.name)}</h2><p class='near'>nearest: {near}</p>"]
    if s.sheet is not None:
        name, width, height = s.sheet
        parts.append(f"<img src='sheets/{name}' width='{width}' height='{height}' loading='lazy' "
                     f"alt='exemplars of {esc(s.name)}'>")
    elif not s.photos:
        parts.append("<p class='none'>no exemplars</p>")
    if s.rows:
        rows = "".join(f"<tr><td>{num}</td><td>{esc(src)}</td><td>{esc(img)}</td><td>{esc(box)}</td></tr>"
                       for num, src, img, box in s.rows)
        parts.append(f"<table><tr><th>#</th><th>source</th><th>image</th><th>box</th></tr>{rows}</table>")
    if s.skipped:
        parts.append("<p class='none'>skipped: " + esc(", ".join(f"{x['path']} ({x['reason']})" for x in s.skipped))
                     + "</p>")
    return "".join(parts)


def _write(path: Path, parts: Sequence[str]) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write("\n".join(parts).encode())


def write_pages(out: Path, title: str, intro: str, settings: Mapping[str, Any], notes: Sequence[str],
                sections: Sequence[ClassSection], judged: Mapping[str, Any] | None, judged_kind: str | None) -> list[Path]:
    """Write index.html (and the class pages a large vocabulary needs); returns the pages, index first.
    `notes`: HTML paragraphs of what needs a look; `judged_kind`: the kind whose per-class leave-one-out
    top-1 the summary shows."""
    n = len(sections)
    pages = sorted({page_of(s.index, n) for s in sections} - {"index.html"}, key=lambda p: int(p[8:-5]))
    contents = ["<a href='#classes'>classes</a>", "<a href='#judged'>leave-one-out</a>" if judged else "",
                "<a href='#settings'>build settings</a>",
                "class pages: " + " ".join(f"<a href='{p}'>{p[8:-5]}</a>" for p in pages) if pages else ""]
    index = [_head(title), f"<h1>{html.escape(title)}</h1>", intro, *notes,
             "<nav>" + " | ".join(c for c in contents if c) + "</nav>",
             _summary_table(sections, judged_kind if judged is not None else None)]
    if judged is not None:
        index.append(_judged(judged, sections))
    index.append(_settings_table(settings))
    written = [out / "index.html"]
    if not pages:
        index += [_section(s, sections, "index.html") for s in sections]
    else:
        for k, page in enumerate(pages):
            chunk = sections[k * PAGE_SIZE:(k + 1) * PAGE_SIZE]
            nav = ("<nav><a href='index.html'>summary</a> | "
                   + (f"<a href='{pages[k - 1]}'>previous</a> | " if k else "")
                   + (f"<a href='{pages[k + 1]}'>next</a>" if k + 1 < len(pages) else "") + "</nav>")
            _write(out / page, [_head(f"{title}: classes {chunk[0].index}-{chunk[-1].index}"),
                                f"<h1>{html.escape(title)}: classes {chunk[0].index}-{chunk[-1].index}</h1>", nav,
                                *[_section(s, sections, page) for s in chunk], nav, "</body></html>"])
            written.append(out / page)
    index.append("</body></html>")
    _write(out / "index.html", index)
    for stale in out.glob("classes-*.html"):
        if stale not in written:
            stale.unlink()
    return written
