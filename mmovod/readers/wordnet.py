"""Read WordNet 3.0 noun files (Debian's `wordnet-base`: index.noun, data.noun) without nltk.

Only what the synset table needs: a synset name `lemma.n.NN` resolves to the NN-th synset offset on
the lemma's line of index.noun; its wnid is `n` + the 8-digit offset and its lemma names are the
words on the offset's line of data.noun.
"""
from __future__ import annotations

import os
from pathlib import Path

from mmovod.io.errors import InputError

DEFAULT_WORDNET_DIR = "/usr/share/wordnet"


def split_synset_name(name: str) -> tuple[str, str, int]:
    """'aerosol.n.02' -> ('aerosol', 'n', 2); raises InputError on anything else."""
    parts = name.rsplit(".", 2)
    if len(parts) != 3 or not parts[2].isdigit() or not parts[0]:
        raise InputError(f"{name!r} is not a synset name of the form lemma.pos.NN")
    return parts[0], parts[1], int(parts[2])


class WordNetNouns:
    """The noun index (lemma -> synset offsets) and, on demand, the lemma names of an offset."""

    def __init__(self, wordnet_dir: str | os.PathLike = DEFAULT_WORDNET_DIR):
        self.dir = Path(wordnet_dir)
        self.index: dict[str, list[str]] = {}
        self.words: dict[str, list[str]] = {}
        index_path, data_path = self.dir / "index.noun", self.dir / "data.noun"
        for path in (index_path, data_path):
            if not path.is_file():
                raise InputError(f"{path}: not found (install Debian's wordnet-base or pass its folder)")
        with open(index_path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("  "):  # licence header
                    continue
                fields = line.split()
                lemma, synset_cnt, pointer_cnt = fields[0], int(fields[2]), int(fields[3])
                # lemma pos synset_cnt p_cnt [ptr_symbol]*p_cnt sense_cnt tagsense_cnt offset*synset_cnt
                offsets = fields[4 + pointer_cnt + 2:]
                if len(offsets) != synset_cnt:
                    raise InputError(f"{index_path}: malformed line for {lemma!r}")
                self.index[lemma] = offsets
        with open(data_path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("  "):
                    continue
                fields = line.split(" ", 4 + 2 * int(line[14:16], 16))
                # offset lex_filenum ss_type w_cnt (word lex_id)*w_cnt ...
                word_count = int(fields[3], 16)
                self.words[fields[0]] = [fields[4 + 2 * i] for i in range(word_count)]

    def offset(self, name: str) -> str | None:
        """The 8-digit data.noun offset of synset `name`, or None when WordNet has no such noun sense."""
        lemma, pos, sense = split_synset_name(name)
        if pos != "n":
            return None
        offsets = self.index.get(lemma.lower())
        if offsets is None or not 1 <= sense <= len(offsets):
            return None
        return offsets[sense - 1]

    def lemma_names(self, offset: str) -> list[str]:
        return list(self.words[offset])


def wnid_of_offset(offset: str) -> str:
    return "n" + offset
