r"""Maintenance script: regenerate mmovod/data/lvis_synset_lemmas.json from Princeton WordNet 3.0.

`dump_clip_features.py --use_wn_name` needs the lemma names of every LVIS category's synset (what
`nltk.corpus.wordnet.synset(s).lemmas()` gives). Rather than ship NLTK and its corpus, the repo keeps
this small generated table. Run it on a machine with Debian/Ubuntu's `wordnet-base` package
(`apt-get install wordnet-base`, WordNet 3.0 as LVIS used), e.g.:

  python scripts/make_lvis_synset_lemmas.py --categories lvis_v1_categories.json \
      --out mmovod/data/lvis_synset_lemmas.json

`--categories` is an LVIS annotation file or a bare list of its categories. A synset `lemma.n.NN`
is the NN-th offset on the lemma's line of index.noun; its lemma names are on that offset's line of
data.noun. `stop_sign.n.01` is not in WordNet; as in Detic it maps to [stop_sign].
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from mmovod.cli import make_parser, run_tool
from mmovod.errors import InputError
from mmovod.jsonio import load_json, save_json

NOT_IN_WORDNET = {"stop_sign.n.01": ["stop_sign"]}


def read_noun_index(wordnet_dir: Path) -> dict[str, list[int]]:
    """lemma -> synset offsets in sense order, from index.noun."""
    index: dict[str, list[int]] = {}
    for line in (wordnet_dir / "index.noun").read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):
            continue
        fields = line.split()
        synset_cnt = int(fields[2])
        index[fields[0]] = [int(x) for x in fields[-synset_cnt:]]
    return index


def read_noun_lemmas(wordnet_dir: Path, offsets: set[int]) -> dict[int, list[str]]:
    """offset -> lemma names (WordNet spelling), from data.noun, for the wanted offsets."""
    lemmas: dict[int, list[str]] = {}
    for line in (wordnet_dir / "data.noun").read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):
            continue
        fields = line.split()
        offset = int(fields[0])
        if offset in offsets:
            count = int(fields[3], 16)
            lemmas[offset] = [fields[4 + 2 * i] for i in range(count)]
    return lemmas


def synset_lemmas(synsets: list[str], wordnet_dir: Path) -> dict[str, list[str]]:
    index = read_noun_index(wordnet_dir)
    wanted: dict[str, int] = {}
    for synset in synsets:
        if synset in NOT_IN_WORDNET:
            continue
        lemma, pos, sense = synset.rsplit(".", 2)
        offsets = index.get(lemma.lower())
        if pos != "n" or not offsets or int(sense) > len(offsets):
            raise InputError(f"synset {synset} is not a WordNet 3.0 noun synset")
        wanted[synset] = offsets[int(sense) - 1]
    lemmas = read_noun_lemmas(wordnet_dir, set(wanted.values()))
    return {s: NOT_IN_WORDNET[s] if s in NOT_IN_WORDNET else lemmas[wanted[s]] for s in synsets}


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--categories", required=True, help="LVIS annotation JSON, or a JSON list of its categories")
    parser.add_argument("--wordnet-dir", default="/usr/share/wordnet", help="folder holding index.noun and data.noun")
    parser.add_argument("--out", default="mmovod/data/lvis_synset_lemmas.json", help="table to write")
    return parser


def run(args: argparse.Namespace) -> None:
    doc = load_json(args.categories)
    cats = doc["categories"] if isinstance(doc, dict) else doc
    synsets = [c["synset"] for c in sorted(cats, key=lambda c: c["id"])]
    wordnet_dir = Path(args.wordnet_dir)
    if not (wordnet_dir / "index.noun").is_file():
        raise InputError(f"{wordnet_dir}: no index.noun (install WordNet 3.0: apt-get install wordnet-base)")
    save_json(args.out, synset_lemmas(synsets, wordnet_dir), indent=True)
    print(f"wrote {len(synsets)} synsets to {args.out}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(get_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
