"""Where the files a sidecar names are now: every path it holds resolves from the sidecar's own folder.

A sidecar names its inputs as they were typed (`details.exemplar_list`, `details.aggregator`, a
fusion's `details.sources.<name>.path`, an export's `details.exported_from`). When a classifier is
saved, `location_details` adds beside them, under `details.input_files` (keyed by the detail's
dotted name), each file's path relative to the sidecar, its absolute path and its SHA-256, as
`details.clip_files` does for CLIP files (`mmovod.clip.identity.file_record`), and under
`details.working_folder` the folder the command ran in (relative to the sidecar, and absolute): a
relative path inside an input (an exemplar list's photos, an image root) was relative to it.
`located_input` and `from_working_folder` find them again from another working folder, or after
the output folder moved together with its inputs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from mmovod.clip.identity import file_record

FILE_DETAILS = ("exemplar_list", "aggregator", "sources.feat1.path", "sources.feat2.path", "exported_from")
"""The `details` entries (dotted into nested objects) whose value is a file the sidecar was made from."""
LOCATION_DETAILS = ("clip_files", "input_files", "working_folder")
"""What saving a classifier adds to its `details`: where its files are (`mmovod.classifiers.sidecar.save_classifier`)."""


def _detail(details: Mapping[str, Any], dotted: str) -> Any:
    value: Any = details
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def location_details(details: Mapping[str, Any], sidecar_dir: Path) -> dict[str, Any]:
    """`input_files` and `working_folder` for the sidecar `details` about to be saved in `sidecar_dir`
    (nothing when it names no file)."""
    files = {key: record for key in FILE_DETAILS if isinstance(value := _detail(details, key), str)
             and (record := file_record(value, sidecar_dir)) is not None}
    roots = details.get("image_roots")
    if not files and not (isinstance(roots, Mapping) and roots):
        return {}
    here = Path.cwd()
    return {**({"input_files": files} if files else {}),
            "working_folder": {"relative_to_sidecar": os.path.relpath(here, sidecar_dir.resolve()), "absolute": str(here)}}


def _candidates(record: Any, sidecar_dir: Path) -> list[Path]:
    if not isinstance(record, Mapping):
        return []
    found = [sidecar_dir / record["relative_to_sidecar"]] if isinstance(record.get("relative_to_sidecar"), str) else []
    return found + ([Path(record["absolute"])] if isinstance(record.get("absolute"), str) else [])


def from_working_folder(path: str | os.PathLike, details: Mapping[str, Any], sidecar_dir: Path) -> Path:
    """`path` as the command that made the sidecar typed it: unchanged when absolute or found from
    here, else from that command's working folder (`working_folder`: relative to the sidecar, else
    absolute) when it is found there."""
    typed = Path(path)
    if typed.is_absolute() or typed.exists():
        return typed
    folders = _candidates(details.get("working_folder"), sidecar_dir)
    found = next((folder / typed for folder in folders if (folder / typed).exists()), None)
    return Path(os.path.normpath(found)) if found is not None else typed


def located_input(details: Mapping[str, Any], key: str, sidecar_dir: Path) -> str | None:
    """The file named by the `details` entry `key` (one of `FILE_DETAILS`) as a path that exists here:
    as typed, else relative to the sidecar, else its absolute path, else from the working folder of
    the command that made it; the typed value when none exists (None when there is none)."""
    value = _detail(details, key)
    if not isinstance(value, str):
        return None
    files = details.get("input_files")
    record = files.get(key) if isinstance(files, Mapping) else None
    candidates = [Path(value), *_candidates(record, sidecar_dir), sidecar_dir / value,
                  from_working_folder(value, details, sidecar_dir)]
    return os.path.normpath(next((c for c in candidates if c.is_file()), value))
