"""The build's output folder, which the build owns: checked (or created) before use, refused when it
holds files no build wrote, its small files rewritten only when their bytes change, and, once a
build has written everything, cleared of what an earlier build wrote and this one did not.

Each build lists the files it wrote in `MANIFEST` (paths relative to the folder). A file is the
build's own when an earlier manifest lists it or when its name is one a build writes (a folder
built before manifests existed, or a build interrupted before writing its manifest).
"""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Iterable

from mmovod.classifiers.kinds import KINDS
from mmovod.io.atomic import check_output_dir, make_output_dir, write_bytes_atomic
from mmovod.io.errors import InputError
from mmovod.io.json_files import dumps_json, load_json

EMBEDDINGS_FILE = "exemplar-embeddings.npz"
"""The exemplar view embeddings a judged build keeps (`mmovod.vocabulary.judging`)."""
RESULT_FILE = "leave-one-out.json"
"""A judged build's leave-one-out results (`mmovod.vocabulary.judging`)."""
MANIFEST = ".mmovod-build.json"
MANIFEST_FORMAT = "mmovod-build-files"
SHOWN = 5
_TEMP = re.compile(r"^\.(?P<name>.+)\.\d+\.[^.]+\.tmp$")  # mmovod.io.atomic's temp names


def prepare_out_dir(out_dir: str | os.PathLike, create: bool = True) -> Path:
    """The output folder, checked to be a writable folder or creatable (its parent exists and is
    writable), and created if `create`."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out-dir is a file, not a folder")
    return make_output_dir(out) if create else check_output_dir(out)


def write_if_changed(path: Path, payload: bytes) -> None:
    """Write `payload` to `path` atomically, unless the file already holds exactly these bytes."""
    if not path.is_file() or path.read_bytes() != payload:
        write_bytes_atomic(path, payload)


def _build_name(relative: str) -> bool:
    """Whether a build writes files of this name (relative to the output folder, '/'-separated)."""
    parts = relative.split("/")
    name = parts[-1]
    if (temp := _TEMP.match(name)) is not None:
        name = temp["name"]
    if len(parts) == 1:
        stem = name.removesuffix(".json").removesuffix(".npy")
        return name in ("vocabulary.json", "exemplars.json", RESULT_FILE, EMBEDDINGS_FILE, MANIFEST) \
            or (stem in KINDS and name in (f"{stem}.npy", f"{stem}.npy.json")) \
            or re.fullmatch(r"descriptions_.+\.json(\..+\.partial\.jsonl)?", name) is not None
    if parts[0] == "export":  # the build's own folder of hand-off files, in any format
        return len(parts) == 2
    if parts[0] == "report":
        return (len(parts) == 2 and re.fullmatch(r"index\.html|classes-\d+\.html", name) is not None) \
            or (len(parts) == 3 and parts[1] == "sheets" and name.endswith((".jpg", ".png")))
    return False


def descriptions_read(out: Path, source: str | None) -> list[Path]:
    """The descriptions file generated into `out` (`--descriptions generate`) that this build read, if any."""
    return [p for p in out.glob("descriptions_*.json") if source and p.name in source]


def _files(out: Path) -> list[str]:
    """Every file under `out`, relative and '/'-separated, sorted."""
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir())


def _manifest_files(out: Path) -> set[str]:
    """The files the last finished build listed (none when it wrote no manifest, or an unreadable one)."""
    if not (out / MANIFEST).is_file():
        return set()
    try:
        doc = load_json(out / MANIFEST, "build manifest")
    except InputError:
        return set()
    files = doc.get("files") if isinstance(doc, dict) and doc.get("format") == MANIFEST_FORMAT else None
    return {f for f in files if isinstance(f, str)} if isinstance(files, list) else set()


def claim(out: Path) -> list[str]:
    """The files an earlier build left in `out`; InputError, before any work, when `out` holds a file no
    build wrote (the build would mix its outputs with someone else's)."""
    if not out.is_dir():
        return []
    listed = _manifest_files(out)
    present = _files(out)
    foreign = [f for f in present if f not in listed and not _build_name(f)]
    if foreign:
        shown = ", ".join(foreign[:SHOWN]) + (f" and {len(foreign) - SHOWN} more" if len(foreign) > SHOWN else "")
        raise InputError(f"{out}: --out-dir holds {len(foreign)} file{'s' if len(foreign) > 1 else ''} no build wrote "
                         f"({shown}); give an empty folder, a new one, or an earlier build's")
    return present


def _shown(removed: list[str], before: Iterable[str]) -> list[str]:
    """`removed` for one line: a folder whose files all went is named once, as `folder/`."""
    before = list(before)
    out, folders = [], set()
    for f in removed:
        top = f.split("/")[0]
        if "/" in f and all(g in removed for g in before if g.startswith(top + "/")):
            if top not in folders:
                folders.add(top)
                out.append(top + "/")
        else:
            out.append(f)
    return out


def _remove(out: Path, files: list[str]) -> None:
    """Delete `files` (relative to `out`) and the folders under `out` they leave empty."""
    for f in files:
        with contextlib.suppress(FileNotFoundError):
            (out / f).unlink()
    for folder in sorted({(out / f).parent for f in files}, key=lambda p: -len(p.parts)):
        while folder != out and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


def settle(out: Path, earlier: list[str], written: Iterable[Path]) -> list[str]:
    """After a build has written `written` into `out`: remove what an earlier build left there
    (`earlier`, from `claim`) that this one did not write, record `written` in the manifest, and
    return the removed files for one line (a folder emptied whole as `folder/`)."""
    mine = {Path(p).relative_to(out).as_posix() for p in written}
    report = out / "report"
    if "report/index.html" in mine:  # the report's own files: it removes its stale sheets and pages itself
        mine.update(p.relative_to(out).as_posix() for p in report.rglob("*") if p.is_file())
    removed = [f for f in earlier if f not in mine and f != MANIFEST and (out / f).is_file()]
    _remove(out, removed)
    write_if_changed(out / MANIFEST, dumps_json({"format": MANIFEST_FORMAT, "files": sorted(mine)}, indent=True))
    return _shown([f for f in removed if not _TEMP.match(f.split("/")[-1])], earlier)
