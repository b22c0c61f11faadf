"""How a classifier check names the rows it finds wrong: by index and class name, the first few only.

Apart from `mmovod.classifiers.check` (which reads CLIP configs) so that light tools, such as the
export, word a problem the same way without importing open_clip."""
from __future__ import annotations

from typing import Sequence

from mmovod.classifiers.sidecar import ClassifierSidecar

SHOWN = 5
"""How many rows a message names before it says 'and N more'."""


def named_rows(indices: Sequence[int], names: Sequence[str] | None) -> str:
    """'3 (wheelbarrow), 7 (tent)': the first SHOWN rows of `indices`, with their class names when known."""
    shown = [f"{i} ({names[i]})" if names else str(i) for i in indices[:SHOWN]]
    more = f" and {len(indices) - SHOWN} more" if len(indices) > SHOWN else ""
    return ", ".join(shown) + more


def zero_rows_problem(zero_rows: Sequence[int], names: Sequence[str] | None, sidecar: ClassifierSidecar | None) -> str:
    """'rows 3 (wheelbarrow) are all zeros', with the fix when they are classes the sidecar lists without exemplars."""
    without = set((sidecar.details.get("classes_without_exemplars") or []) if sidecar else [])
    note = " (classes without exemplars: use the multi-modal classifier, whose rows fall back to text)" \
        if names and all(names[i] in without for i in zero_rows) else ""
    return f"rows {named_rows(zero_rows, names)} are all zeros{note}"
