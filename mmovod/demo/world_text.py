"""What the demo world's objects are called and how they are described.

`world_descriptions` is the world's descriptions file (the guide's format, `{class name: [sentences]}`,
keyed as `dump_clip_features_lvis_sentences` looks classes up). `caption_pool` lists, per class, the
captions the world's CLIP was trained on: its LVIS name and synonyms in the class-name prompts, its
look, and its description sentences.
"""
from __future__ import annotations

from typing import Any

from mmovod.classifiers.text_inputs import PROMPTS, description_key
from mmovod.demo.world import CLASS_KINDS, HOMONYMS, Kind

# what a class is when its name alone could mean something else in the world
SENSES = {
    "cornet": "a brass horn, not an ice cream cone",
    "bun": "a bread roll, not a hair bun",
    "coaster": "a mat for a glass, not a roller coaster",
}


def look_sentences(kind: Kind) -> list[str]:
    """Sentences about the look of an object kind."""
    pattern = {"solid": "of one plain colour", "striped": "with stripes", "dotted": "with dots"}[kind.pattern]
    return [
        f"a {kind.phrase()}",
        f"it is a {kind.colour} {kind.shape} {pattern}",
        f"its colour is {kind.colour}",
        f"its shape is a {kind.shape}",
        f"its surface is {kind.pattern}",
    ]


def describe_class(cat: dict[str, Any]) -> list[str]:
    """The description sentences of one demo category (an LVIS record with 'name', 'def')."""
    name = description_key(cat)
    kind = CLASS_KINDS[cat["name"]]
    sentences = [f"a {name} is {cat['def'].split(';')[0]}"]
    if cat["name"] in SENSES:
        sentences.append(f"this {name} is {SENSES[cat['name']]}")
    sentences.append(f"a {name} looks like a {kind.phrase()}")
    return sentences + look_sentences(kind)


def world_descriptions(cats: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The world's descriptions file: description key -> sentences, for the given categories."""
    return {description_key(cat): describe_class(cat) for cat in cats}


def class_names(cat: dict[str, Any]) -> list[str]:
    """Every spelling of a category's name the captions use: the LVIS name and synonyms, as written
    and with spaces for underscores, without duplicates."""
    raw = [cat["name"], *cat.get("synonyms", [])]
    out: list[str] = []
    for name in raw + [n.replace("_", " ") for n in raw]:
        if name not in out:
            out.append(name)
    return out


def caption_pool(cats: list[dict[str, Any]]) -> list[list[str]]:
    """Per category (in the given order), then per homonym look-alike (in HOMONYMS order), its captions."""
    pool = []
    for cat in cats:
        kind = CLASS_KINDS[cat["name"]]
        captions = [template.format(n) for n in class_names(cat) for template in PROMPTS.values()]
        captions += [f"a {n}, a {kind.phrase()}" for n in class_names(cat)]
        pool.append(captions + describe_class(cat))
    for name, what, kind in HOMONYMS:
        captions = [template.format(name) for template in PROMPTS.values()]
        pool.append(captions + [f"a {name} is {what}", f"a {name} looks like a {kind.phrase()}"] + look_sentences(kind))
    return pool
