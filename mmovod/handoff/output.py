"""What every hand-off format shares: the prompt-embedding form of rows, the sidecar of an exported
file, the names of the files written beside it, and the class-name list."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmovod.classifiers.fusion import l2_normalise_rows
from mmovod.classifiers.sidecar import ClassifierSidecar, make_sidecar, sidecar_bytes, sidecar_path


@dataclass
class Handoff:
    """What an export wrote (`files`, the detector's file first), the lines that load it into the detector and
    what else the user should know (`notes`)."""

    format: str
    files: list[Path]
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def prompt_embeddings(array: np.ndarray) -> np.ndarray:
    """The prompt-embedding form of a classifier: rows L2-normalised, float32 `(C, D)`."""
    return l2_normalise_rows(array).astype(np.float32)


def beside(out: Path, tail: str) -> Path:
    """A file written beside `out`: its name without the suffix, then `tail` (`x.npy` -> `x.classes.txt`)."""
    return out.with_name(out.stem + tail)


def class_list_bytes(names: list[str]) -> bytes:
    """One class name a line, in row order (the class-list format every mmovod tool reads)."""
    return "".join(f"{name}\n" for name in names).encode()


def exported_sidecar(rows: np.ndarray, sidecar: ClassifierSidecar, out: str | os.PathLike, *, normalized: bool,
                     form: str, source: str, command: str | None) -> dict[Path, bytes]:
    """The sidecar of exported `rows` (`out`.json): the source's CLIP, kind, space and classes, where it came from."""
    side = make_sidecar(rows, sidecar.kind, {"clip_model": sidecar.clip_model, "pretrained": sidecar.pretrained,
                                             "embed_dim": sidecar.embed_dim},
                        space=sidecar.space, normalized=normalized, class_names=sidecar.class_names,
                        category_ids=sidecar.category_ids, command=command,
                        details={"exported_from": source, "form": form})
    return {sidecar_path(out): sidecar_bytes(side, Path(out).parent)}
