"""The shipped synset tables: LVIS (and cousin) synset -> WordNet 3.0 wnid and lemma names, and the
cousin table (LVIS synsets whose exemplars are topped up from substitute synsets).

`data/lvis_synset_wordnet.json` is generated once by `scripts/build_synset_table.py` from WordNet 3.0;
nothing here needs WordNet or the network at run time.
"""
from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass
from functools import lru_cache

from mmovod.io.errors import InputError
from mmovod.readers.wordnet import WordNetNouns, wnid_of_offset

SYNSET_TABLE_FILE = "lvis_synset_wordnet.json"
COUSIN_TABLE_FILE = "exemplar_cousin_synsets.json"

# LVIS synsets that are not WordNet nouns, and the WordNet synset that stands in where one is needed.
STAND_INS = {"stop_sign.n.01": "street_sign.n.01"}


@dataclass(frozen=True)
class SynsetEntry:
    wnid: str | None  # ImageNet folder name; None when the synset has no WordNet offset of its own
    wordnet: str  # the WordNet synset name used for matching (itself, or its stand-in)
    lemmas: tuple[str, ...]


def _read_data(name: str) -> dict:
    return json.loads(importlib.resources.files("mmovod.data").joinpath(name).read_text())


@lru_cache(maxsize=1)
def synset_table() -> dict[str, SynsetEntry]:
    raw = _read_data(SYNSET_TABLE_FILE)["synsets"]
    return {name: SynsetEntry(e["wnid"], e["wordnet"], tuple(e["lemmas"])) for name, e in raw.items()}


@lru_cache(maxsize=1)
def cousin_table() -> dict[str, list[str]]:
    """LVIS synset -> its substitute ("cousin") synsets, in the order they are used."""
    return _read_data(COUSIN_TABLE_FILE)


def lookup(synset: str, where: str) -> SynsetEntry:
    """The table entry of `synset`; InputError naming `where` (the file that asked) when it is absent."""
    entry = synset_table().get(synset)
    if entry is None:
        raise InputError(f"{where}: synset {synset!r} is not in mmovod's synset table "
                         f"(mmovod/data/{SYNSET_TABLE_FILE}; regenerate with scripts/build_synset_table.py)")
    return entry


def build_synset_table(wordnet: WordNetNouns, synsets: list[str]) -> dict[str, dict]:
    """Table rows for `synsets` (sorted by name): wnid, matching WordNet name and lemma names.

    A synset WordNet lacks must have a stand-in in STAND_INS: it gets wnid None and the stand-in's
    name and lemmas. Anything else missing is an InputError.
    """
    rows = {}
    for name in sorted(set(synsets)):
        offset = wordnet.offset(name)
        if offset is not None:
            rows[name] = {"wnid": wnid_of_offset(offset), "wordnet": name, "lemmas": wordnet.lemma_names(offset)}
            continue
        stand_in = STAND_INS.get(name)
        stand_in_offset = wordnet.offset(stand_in) if stand_in else None
        if stand_in_offset is None:
            raise InputError(f"synset {name!r} is not a WordNet 3.0 noun and has no stand-in")
        rows[name] = {"wnid": None, "wordnet": stand_in, "lemmas": wordnet.lemma_names(stand_in_offset)}
    return rows
