"""A vocabulary's class descriptions: its own, a descriptions file's, or asked from an LLM for every class."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmovod.classifiers.text_inputs import (PromptSpec, class_prompts, description_key, descriptions_per_class,
                                            load_descriptions)
from mmovod.io.errors import InputError
from mmovod.readers.vocabulary_file import Vocabulary, read_vocabulary
from mmovod.io.wording import plural

if TYPE_CHECKING:
    from mmovod.descriptions.generate import DescribedClasses

log = logging.getLogger(__name__)


def describe_vocabulary(vocab: Vocabulary | str | os.PathLike, output_template: str, model: str,
                        **client: Any) -> DescribedClasses:
    """Ask the LLM for descriptions of every class of `vocab` (a Vocabulary, or any file format of
    `mmovod.readers.vocabulary_file`); `client` as `describe_classes` takes it (api, base_url, limit, ...)."""
    from mmovod.descriptions.generate import describe_classes  # the LLM client, only when asked

    if not isinstance(vocab, Vocabulary):
        vocab = read_vocabulary(vocab)
    names = [description_key(c.as_category(i)) for i, c in enumerate(vocab.classes)]
    return describe_classes(names, output_template, model, **client)


def resolve_descriptions(vocab: Vocabulary, path: str | os.PathLike | None, prompts: PromptSpec = PromptSpec()
                         ) -> tuple[list[list[str]] | None, str | None]:
    """Each class's descriptions: its own from the vocabulary file, else from the descriptions file at `path`.

    Without a file, classes of a vocabulary in which only some classes have descriptions get their
    class-name prompt (the text classifier's recipe, `prompts`) as their sentences, and are named in a
    warning and in the returned source; none at all gives None.
    """
    own = [list(c.descriptions) for c in vocab.classes]
    if path is None:
        missing = [i for i, c in enumerate(vocab.classes) if not c.descriptions]
        if len(missing) == len(vocab):
            return None, None
        if missing:
            cats = [vocab.classes[i].as_category(i) for i in missing]
            names = ", ".join(vocab.classes[i].name for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
            for i, sentences in zip(missing, class_prompts(cats, vocab.path, prompts)):
                own[i] = sentences
            log.warning("%s: descriptions for %d of %d classes; the others use their class-name prompt in the "
                        "description classifier (give --descriptions FILE for them): %s",
                        vocab.path, len(vocab) - len(missing), len(vocab), names)
            return own, f"{vocab.path} (class-name prompts for {plural(len(missing), 'class', 'classes')} without descriptions: {names})"
        return own, str(vocab.path)
    lacking = [i for i, c in enumerate(vocab.classes) if not c.descriptions]
    if not lacking:
        log.warning("every class of %s has its own descriptions: %s is not used", vocab.path, path)
        return own, str(vocab.path)
    from_file = descriptions_per_class(load_descriptions(path), [vocab.classes[i].as_category(i) for i in lacking], path)
    for i, sentences in zip(lacking, from_file):
        own[i] = sentences
    return own, str(path) if len(lacking) == len(vocab) else f"{vocab.path} and {path}"


def generated_descriptions(vocab: Vocabulary, out_dir: str | os.PathLike, model: str, **client: Any) -> Path:
    """`out_dir/descriptions_<model>.json` for every class, asked from the LLM (`describe_classes`, with
    its cache and retries) unless that file already covers every class."""
    from mmovod.descriptions.generate import output_path_for  # the LLM client, only when asked

    template = str(Path(out_dir) / "descriptions_{}.json")
    path = output_path_for(template, model)
    if path.is_file():
        try:
            descriptions_per_class(load_descriptions(path), [c.as_category(i) for i, c in enumerate(vocab.classes)], path)
            log.info("reusing %s", path)
            return path
        except InputError:
            pass
    return describe_vocabulary(vocab, template, model, **client).path
