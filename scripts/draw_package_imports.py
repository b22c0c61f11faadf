"""Maintenance: draw which mmovod package imports which (docs/images/package_imports.png).

A matrix of mmovod's packages: a mark in row A, column B says a module of A imports one of B
(imports inside functions included). Packages are ordered by their longest chain of imports, the
top layer first, so with no upward import every mark sits right of the diagonal (the shaded side
would hold one that goes up). The edge list is stored in the PNG's text chunk "edges" (JSON), which
tests/test_layering.py compares with the code: re-run this script when a package starts or stops
importing another.

Example:
  python scripts/draw_package_imports.py --out docs/images/package_imports.png
"""
from __future__ import annotations

import argparse
import ast
import io
import json
import sys
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image, PngImagePlugin  # noqa: E402

from mmovod.cli.flags import make_parser  # noqa: E402
from mmovod.cli.tool_runner import run_tool  # noqa: E402
from mmovod.io.atomic import write_bytes_atomic  # noqa: E402
from mmovod.io.errors import InputError  # noqa: E402

PACKAGE = Path(__file__).resolve().parents[1] / "mmovod"


def package_of(module: str) -> str | None:
    """`mmovod.clip.factory` -> `clip`; None for modules directly in mmovod/ (the lazy API, __main__)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else None


def package_edges(root: Path = PACKAGE) -> list[list[str]]:
    """Sorted [importer, imported] pairs of mmovod's packages, from every import statement of every module."""
    edges = set()
    for path in root.rglob("*.py"):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        source = package_of(module)
        if source is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module + "." + alias.name for alias in node.names] + [node.module]
            else:
                continue
            for target in targets:
                if target.startswith("mmovod."):
                    imported = target.split(".")[1]
                    if imported != source and (root / imported).is_dir():
                        edges.add((source, imported))
    return sorted([list(e) for e in edges])


def levels(packages: Sequence[str], edges: Sequence[Sequence[str]]) -> dict[str, int]:
    """Each package's longest chain of imports below it (0: imports no other package); InputError on a cycle."""
    below = {p: sorted(b for a, b in edges if a == p) for p in packages}
    level: dict[str, int] = {}

    def visit(package: str, path: tuple[str, ...]) -> int:
        if package in path:
            raise InputError("import cycle: " + " -> ".join(path[path.index(package):] + (package,)))
        if package not in level:
            level[package] = 1 + max((visit(b, path + (package,)) for b in below[package]), default=-1)
        return level[package]

    for package in packages:
        visit(package, ())
    return level


def draw(edges: Sequence[Sequence[str]]) -> bytes:
    """The drawing as PNG bytes, with `edges` in its "edges" text chunk: a matrix with a package's imports
    along its row, packages ordered from the top layer down, so every mark sits right of the diagonal."""
    packages = sorted({p for e in edges for p in e})
    level = levels(packages, edges)
    order = sorted(packages, key=lambda p: (-level[p], p))
    at = {p: i for i, p in enumerate(order)}
    n = len(order)
    fig, ax = plt.subplots(figsize=(0.5 * n + 2.6, 0.5 * n + 1.6), dpi=110)
    ax.fill_between([-0.5, n - 0.5], [-0.5, n - 0.5], [n - 0.5, n - 0.5], color="#fbe9e7")  # where an upward import would sit
    ax.plot([-0.5, n - 0.5], [-0.5, n - 0.5], color="#c0392b", lw=0.8)
    ax.scatter([at[b] for _, b in edges], [at[a] for a, _ in edges], s=90, color="#2c3e50", zorder=3)
    ax.set_xticks(range(n), order, rotation=60, ha="right")
    ax.set_yticks(range(n), order)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xticks([i + 0.5 for i in range(n - 1)], minor=True)
    ax.set_yticks([i + 0.5 for i in range(n - 1)], minor=True)
    ax.grid(which="minor", color="#dddddd", lw=0.6)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("imported package")
    ax.set_ylabel("importing package (top layer first)")
    ax.set_title(f"mmovod: {len(edges)} imports between packages;\nall right of the diagonal: none goes up a layer",
                 fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    info = PngImagePlugin.PngInfo()
    info.add_text("edges", json.dumps(edges))
    with Image.open(io.BytesIO(buffer.getvalue())) as image:
        out = io.BytesIO()
        image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--out", default=str(PACKAGE.parent / "docs/images/package_imports.png"),
                        help="PNG to write (default: docs/images/package_imports.png of this repository)")
    return parser


def run(args: argparse.Namespace) -> None:
    edges = package_edges()
    write_bytes_atomic(args.out, draw(edges))
    print(f"{len(edges)} imports between packages drawn in {args.out}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(get_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
