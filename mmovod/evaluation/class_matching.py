"""Which category of the evaluated file each classifier row is: by category id, by order, or by name.

A classifier's rows are matched to the annotation file's categories
1. by the sidecar's `category_ids` when every one of them is a category of the file and, where the
   sidecar names its classes, the names agree (the LVIS case);
2. else, when the sidecar names its classes, by name: a row matches the category whose name equals
   the row's class name, else (for rows still unmatched) the one category sharing any name or
   synonym with it (names compared case-folded, with `_` as a space; synonyms: the file's category
   `synonyms` and the classifier's `class_synonyms`);
3. else by order: one row per category in ascending id order (classifiers without a sidecar).
Rows matching no category stay candidates in the scores (a detector would have them too) but have
no crops; they get ids that no category has.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from mmovod.evaluation.crops_from_annotations import Category
from mmovod.io.errors import InputError
from mmovod.readers.vocabulary_file import normalise_name

SHOWN = 10


@dataclass
class RowMatch:
    """Each row's category id and how it was found; `by`: "category_id", "order" or "name"."""

    category_ids: list[int]
    by: str
    unmatched_rows: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (row name, category name) matched by a synonym

    def describe(self, rows: int) -> str:
        """One line: how the rows were matched and which did not match."""
        if self.by != "name":
            return f"rows matched to categories by {'category id' if self.by == 'category_id' else 'order'}"
        line = f"{rows - len(self.unmatched_rows)} of {rows} rows matched to categories by name"
        if self.renamed:
            line += " (by synonym: " + ", ".join(f"{a} = {b}" for a, b in self.renamed[:SHOWN]) + ")"
        if self.unmatched_rows:
            line += "; no category for: " + ", ".join(self.unmatched_rows[:SHOWN]) + \
                (" ..." if len(self.unmatched_rows) > SHOWN else "")
        return line


def _names_of(name: str, synonyms: Sequence[str]) -> set[str]:
    return {normalise_name(n) for n in (name, *synonyms) if isinstance(n, str)}


def _ids_line_up(ids: Sequence[int], names: Sequence[str] | None, categories: Sequence[Category]) -> bool:
    by_id = {c.id: c for c in categories}
    if not all(i in by_id for i in ids):
        return False
    return names is None or all(normalise_name(n) in _names_of(by_id[i].name, by_id[i].synonyms)
                                for i, n in zip(ids, names))


def _by_name(names: Sequence[str], synonyms: Sequence[Sequence[str]], categories: Sequence[Category]) -> RowMatch:
    primary: dict[str, int] = {}
    for c in categories:
        primary.setdefault(normalise_name(c.name), c.id)
    chosen: list[int | None] = [primary.get(normalise_name(n)) for n in names]
    taken = {i for i in chosen if i is not None}
    renamed = []
    for r, name in enumerate(names):
        if chosen[r] is not None:
            continue
        mine = _names_of(name, synonyms[r])
        hits = [c for c in categories if c.id not in taken and mine & _names_of(c.name, c.synonyms)]
        if len(hits) == 1:
            chosen[r] = hits[0].id
            taken.add(hits[0].id)
            renamed.append((name, hits[0].name))
    free = iter(range(-1, -len(names) - 2, -1))
    unused = {c.id for c in categories}
    ids = [i if i is not None else next(j for j in free if j not in unused) for i in chosen]
    return RowMatch(ids, "name", [n for n, i in zip(names, chosen) if i is None], renamed)


def match_rows(rows: int, categories: Sequence[Category], where: str, *, ids: Sequence[int] | None = None,
               names: Sequence[str] | None = None, synonyms: Sequence[Sequence[str]] | None = None,
               ann: str = "--ann") -> RowMatch:
    """The category of each of `rows` rows (see the module docstring); InputError when nothing matches."""
    names = list(names) if names is not None and len(names) == rows else None
    if ids is not None and _ids_line_up(ids, names, categories):
        return RowMatch(list(ids), "category_id")
    if names is None:
        if ids is not None:
            raise InputError(f"{where}: its category_ids are not the categories of {ann} and its sidecar names no "
                             "classes to match them by")
        if rows != len(categories):
            raise InputError(f"{where}: {rows} rows match no class list: {ann} has {len(categories)} categories and "
                             "the classifier has no sidecar naming its classes")
        return RowMatch([c.id for c in categories], "order")
    if ids is None and rows == len(categories) and \
            all(normalise_name(n) == normalise_name(c.name) for n, c in zip(names, categories)):
        return RowMatch([c.id for c in categories], "order")
    match = _by_name(names, synonyms if synonyms is not None and len(synonyms) == rows else [[]] * rows, categories)
    if len(match.unmatched_rows) == rows:
        raise InputError(f"{where}: none of its {rows} classes ({', '.join(names[:5])}{' ...' if rows > 5 else ''}) "
                         f"is a category of {ann} by name or synonym (its categories: "
                         f"{', '.join(c.name for c in categories[:5])}{' ...' if len(categories) > 5 else ''}); "
                         "evaluate on a COCO-format file whose categories are these classes")
    return match
