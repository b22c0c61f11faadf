"""What the text classifiers embed: LVIS categories, class-name prompts (Detic) and descriptions.

Both text-classifier tools pair their sentences with the categories of an LVIS-format annotation
file in ascending category id, which is the row order of every classifier `.npy` they write.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

from mmovod.io.errors import InputError
from mmovod.io.json_files import load_json
from mmovod.readers.lvis_json import LvisFile
from mmovod.readers.synset_table import synset_table

# Detic's --prompt choices
PROMPTS = {
    "a": "a {}",
    "none": "{}",
    "photo": "a photo of a {}",
    "scene": "a photo of a {} in the scene",
}


def load_categories(ann_path: str | os.PathLike) -> list[dict[str, Any]]:
    """The categories of an LVIS-format file in ascending id, each checked to have a string 'name'."""
    cats = sorted(LvisFile(ann_path, required=("categories",)).categories(), key=lambda c: c["id"])
    if not cats:
        raise InputError(f"{ann_path}: 'categories' is empty")
    for cat in cats:
        if not isinstance(cat.get("name"), str):
            raise InputError(f"{ann_path}: category {cat['id']} has no string 'name'")
    return cats


def category_synonyms(cat: dict[str, Any], ann_path: str | os.PathLike) -> list[str]:
    """The category's LVIS 'synonyms' (a non-empty list of strings), else InputError naming the file."""
    synonyms = cat.get("synonyms")
    if not isinstance(synonyms, list) or not synonyms or not all(isinstance(s, str) for s in synonyms):
        raise InputError(f"{ann_path}: category {cat['id']} ({cat['name']}) has no list of 'synonyms'")
    return synonyms


def synset_lemmas() -> dict[str, list[str]]:
    """Synset -> WordNet 3.0 lemma names, from the shipped synset table (mmovod.readers.synset_table).

    A synset that is not in WordNet (LVIS's `stop_sign.n.01`, matched through a stand-in) keeps its
    own lemma (`stop_sign`), not the stand-in's.
    """
    return {
        synset: list(entry.lemmas) if entry.wordnet == synset else [synset.rsplit(".", 2)[0]]
        for synset, entry in synset_table().items()
    }


def wordnet_synonyms(cats: list[dict[str, Any]], ann_path: str | os.PathLike) -> list[list[str]]:
    """Per category, the lemma names of its synset (what Detic's --use_wn_name reads from NLTK)."""
    table = synset_lemmas()
    out = []
    for cat in cats:
        synset = cat.get("synset")
        if synset not in table:
            raise InputError(
                f"{ann_path}: category {cat['id']} ({cat['name']}) has synset {synset!r}, which is not in "
                "the shipped synset table (regenerate it with scripts/build_synset_table.py)"
            )
        out.append(table[synset])
    return out


def fix_name(name: str, fix_space: bool, use_underscore: bool) -> str:
    """Detic's name clean-ups: --fix_space turns `_` into spaces, --use_underscore the reverse."""
    if fix_space:
        name = name.replace("_", " ")
    if use_underscore:
        name = name.strip().replace("/ ", "/").replace(" ", "_")
    return name


@dataclass(frozen=True)
class PromptSpec:
    """Detic's class-name prompt recipe (dump_clip_features.py's flags): the template `PROMPTS[prompt]`;
    `fix_space` ('_' -> ' ') or `use_underscore` (' ' -> '_') applied to names (`fix_name`);
    `avg_synonyms`: one prompt per synonym, averaged, the synonyms being the LVIS 'synonyms' or, with
    `use_wn_name`, the WordNet lemma names of the class's synset."""

    prompt: str = "a"
    fix_space: bool = False
    use_underscore: bool = False
    avg_synonyms: bool = False
    use_wn_name: bool = False

    def __post_init__(self) -> None:
        if self.prompt not in PROMPTS:
            raise InputError(f"unknown prompt {self.prompt!r} (one of: {', '.join(sorted(PROMPTS))})")

    def details(self) -> dict[str, Any]:
        """What a text classifier's sidecar records of the recipe (`use_wn_name` only counts with `avg_synonyms`)."""
        return {"prompt": PROMPTS[self.prompt], "fix_space": self.fix_space, "use_underscore": self.use_underscore,
                "avg_synonyms": self.avg_synonyms, "use_wn_name": self.use_wn_name and self.avg_synonyms}


def class_prompts(cats: list[dict[str, Any]], ann_path: str | os.PathLike,
                  spec: PromptSpec = PromptSpec()) -> list[list[str]]:
    """Per category (in the given order), the sentences whose embeddings are averaged into its row.

    Without `spec.avg_synonyms`: one sentence, the prompt of the category name (after `fix_name`).
    With it: one prompt per synonym (see `PromptSpec`). As in Detic, synonyms are used as written (the
    name clean-ups apply to names only).
    """
    names = [fix_name(c["name"], spec.fix_space, spec.use_underscore) for c in cats]
    if not spec.avg_synonyms:
        return prompt_sentences(names, spec.prompt)
    synonyms = (wordnet_synonyms(cats, ann_path) if spec.use_wn_name
                else [category_synonyms(c, ann_path) for c in cats])
    return prompt_sentences(names, spec.prompt, synonyms)


def prompt_sentences(class_names: Sequence[str], prompt: str = "a",
                     synonyms: Sequence[Sequence[str]] | None = None) -> list[list[str]]:
    """Per class, Detic's prompt (`PROMPTS[prompt]`) of its name, or of each of its `synonyms` when given."""
    if prompt not in PROMPTS:
        raise InputError(f"unknown prompt {prompt!r} (one of: {', '.join(sorted(PROMPTS))})")
    template = PROMPTS[prompt]
    if synonyms is None:
        return [[template.format(name)] for name in class_names]
    if len(synonyms) != len(class_names):
        raise InputError(f"{len(synonyms)} synonym lists for {len(class_names)} classes")
    return [[template.format(s) for s in group] for group in synonyms]


def description_key(cat: dict[str, Any]) -> str:
    """The key of a category in a descriptions file: its first synonym (else its name), `_` -> space."""
    synonyms = cat.get("synonyms")
    first = synonyms[0] if isinstance(synonyms, list) and synonyms and isinstance(synonyms[0], str) else cat["name"]
    return first.replace("_", " ")


def load_descriptions(path: str | os.PathLike) -> dict[str, list[str]]:
    """A descriptions file: a JSON object mapping class names to lists of sentences (checked)."""
    doc = load_json(path, "descriptions file")
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object {{class name: [sentences]}}, found {type(doc).__name__}")
    for key, value in doc.items():
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise InputError(f"{path}: the value of {key!r} is not a list of strings")
        blank = next((i for i, s in enumerate(value) if not s.strip()), None)
        if blank is not None:  # CLIP would encode the empty prompt and average it into the class's row
            raise InputError(f"{path}: sentence {blank} of {key!r} is blank")
    return doc


def descriptions_per_class(
    descriptions: dict[str, list[str]], cats: list[dict[str, Any]], path: str | os.PathLike
) -> list[list[str]]:
    """The descriptions of each category, in the categories' order; InputError listing classes without any."""
    keys = [description_key(c) for c in cats]
    missing = [k for k in keys if not descriptions.get(k)]
    if missing:
        shown = ", ".join(repr(k) for k in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise InputError(f"{path}: no descriptions for {len(missing)} of {len(keys)} classes: {shown}{more}")
    return [descriptions[k] for k in keys]

