"""Which CLIP made an embedding, by content rather than by the string typed, and where its files are now.

A CLIP is named by `clip_model` (an OpenAI name, an open_clip name, or a model-config `.json`) and
`pretrained` (an open_clip tag, a weights file, or None). Its identity (`content_key`) is, for each
of the two, the SHA-256 of the file when it names a file, else the open_clip name and the pretrained
tag (OpenAI spellings mapped to open_clip's, `openai` weights by default for them; `world`, the
shipped CLIP, as its two files). So `ViT-B/32`
equals `ViT-B-32` with `openai`, and `clip/tiny.json` typed in one folder equals the same file
typed as an absolute path, or copied to another machine.

When a classifier is saved, `file_record` notes each CLIP file's path relative to the sidecar, its
absolute path and its hash (the sidecar's `details.clip_files`), so that `locate` finds the file
from another working folder, or after the whole project moved. No torch here: the evaluation's
warm path reads sidecars without it.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmovod.clip.shipped import expand_shipped

OPENAI_NAMES = {
    "RN50": "RN50",
    "RN101": "RN101",
    "RN50x4": "RN50x4",
    "RN50x16": "RN50x16",
    "RN50x64": "RN50x64",
    "ViT-B/32": "ViT-B-32",
    "ViT-B/16": "ViT-B-16",
    "ViT-L/14": "ViT-L-14",
    "ViT-L/14@336px": "ViT-L-14-336",
}
NO_WEIGHTS = ("none", "random")
FIELDS = ("clip_model", "pretrained")
CHUNK = 1 << 22


def architecture(clip_model: str) -> str:
    """A comparable spelling of a CLIP model name: OpenAI names as open_clip's, config files by stem."""
    if clip_model.endswith(".json"):
        return Path(clip_model).stem
    return OPENAI_NAMES.get(clip_model, clip_model)


@lru_cache(maxsize=32)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file, computed once per (path, size, mtime) in this process."""
    p = Path(path).resolve()
    st = p.stat()
    return _digest(str(p), st.st_size, st.st_mtime_ns)


def _looks_like_file(value: str) -> bool:
    if value in OPENAI_NAMES:
        return False
    return "/" in value or os.sep in value or Path(value).suffix in (".json", ".pt", ".pth", ".bin", ".safetensors")


def file_record(value: str | None, sidecar_dir: Path) -> dict[str, str] | None:
    """For a CLIP value that is an existing file: its path relative to `sidecar_dir`, absolute path and hash."""
    if not value or not Path(value).is_file():
        return None
    absolute = Path(value).resolve()
    return {"relative_to_sidecar": os.path.relpath(absolute, sidecar_dir.resolve()), "absolute": str(absolute),
            "sha256": file_digest(absolute)}


def locate(value: str | None, stored: Mapping[str, Any] | None, sidecar_dir: Path | None) -> str | None:
    """The CLIP value as a path that exists here: as typed (relative to the working folder), else the
    recorded path relative to the sidecar, else the recorded absolute path; unchanged when none exists
    (or it is a name)."""
    if not value or Path(value).is_file() or not _looks_like_file(value):
        return value
    candidates = []
    if isinstance(stored, Mapping):
        if sidecar_dir is not None and isinstance(stored.get("relative_to_sidecar"), str):
            candidates.append(sidecar_dir / stored["relative_to_sidecar"])
        if isinstance(stored.get("absolute"), str):
            candidates.append(Path(stored["absolute"]))
    if sidecar_dir is not None:
        candidates.append(sidecar_dir / value)
    found = next((c for c in candidates if c.is_file()), None)
    return str(found) if found is not None else value


def _part(value: str | None, stored: Mapping[str, Any] | None, default_tag: str | None) -> str | None:
    if value is None or value.lower() in NO_WEIGHTS:
        return default_tag
    if Path(value).is_file():
        return "sha256:" + file_digest(value)
    if isinstance(stored, Mapping) and isinstance(stored.get("sha256"), str):
        return "sha256:" + stored["sha256"]
    return value


def content_key(clip_model: str, pretrained: str | None,
                stored: Mapping[str, Any] | None = None) -> tuple[str | None, str | None]:
    """(model, weights) by content: `sha256:<hex>` for files (found here, else as recorded in `stored`,
    the sidecar's `clip_files`), else the open_clip name and the pretrained tag."""
    clip_model, pretrained = expand_shipped(clip_model, pretrained)
    stored = stored if isinstance(stored, Mapping) else {}
    openai = clip_model in OPENAI_NAMES
    model = OPENAI_NAMES.get(clip_model, clip_model)
    model = _part(model, stored.get("clip_model"), None) if not openai else model
    weights = _part(pretrained, stored.get("pretrained"), "openai" if openai else None)
    if openai and pretrained is not None and pretrained.lower() in NO_WEIGHTS:
        weights = None
    return model, weights


def clip_files(values: Mapping[str, str | None], sidecar_dir: Path) -> dict[str, dict[str, str]]:
    """The `details.clip_files` entry of a sidecar: `file_record` of each of `FIELDS` that names a file."""
    out = {}
    for name in FIELDS:
        record = file_record(values.get(name), sidecar_dir)
        if record is not None:
            out[name] = record
    return out


def describe_key(key: Sequence[str | None]) -> str:
    """A content key for messages, hashes shortened."""
    return " / ".join("default weights" if k is None else (k[:19] if k.startswith("sha256:") else k) for k in key)
