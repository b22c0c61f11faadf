"""The resumable description cache beside an output: one JSON line per finished class (flushed and
fsynced), the first line holding the request settings; a re-run with the same settings skips the
classes found in it."""
from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict
from pathlib import Path

import orjson

from mmovod.descriptions.recipe import RequestSettings
from mmovod.io.atomic import atomic_open, output_error
from mmovod.io.errors import InputError
from mmovod.io.json_files import read_bytes

log = logging.getLogger(__name__)


def cache_path_for(output: str | os.PathLike, model: str, api: str) -> Path:
    """The resume cache of `output` for one model and endpoint: a run with another model starts its own."""
    return Path(f"{output}.{re.sub(r'[^A-Za-z0-9._-]', '_', model)}-{api}.partial.jsonl")


class DescriptionCache:
    """Append-only JSON-lines cache of finished classes; line 1 holds the request settings."""

    def __init__(self, path: str | os.PathLike, settings: RequestSettings):
        self.path = Path(path)
        self.settings = settings
        self.rejected: dict[str, dict[str, int]] = {}  # the cached classes' rejected samples

    def load(self) -> dict[str, list[str]]:
        """Finished classes from an earlier run (a torn last line from a kill is dropped), creating the file if new."""
        header = orjson.dumps({"settings": asdict(self.settings)}) + b"\n"
        if not self.path.exists():
            with atomic_open(self.path, "wb") as handle:
                handle.write(header)
            return {}
        data = read_bytes(self.path, "description cache")
        lines = data.split(b"\n")
        complete = lines[:-1]  # the part after the last newline is a torn write (or empty)
        if not complete or complete[0] + b"\n" != header:
            raise InputError(f"{self.path}: cache of a run with other settings (model, API or prompt); "
                             "delete it to start over")
        done: dict[str, list[str]] = {}
        for number, line in enumerate(complete[1:], start=2):
            try:
                entry = orjson.loads(line)
                done[entry["class"]] = entry["descriptions"]
                if entry.get("rejected"):
                    self.rejected[entry["class"]] = entry["rejected"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise InputError(f"{self.path}: line {number} is not a cache entry; delete the file to start over") from None
        if lines[-1]:
            log.info("%s: dropping a torn last line", self.path)
            try:
                os.truncate(self.path, len(data) - len(lines[-1]))
            except OSError as exc:
                raise output_error(self.path, exc) from None
        return done

    def append(self, name: str, descriptions: list[str], rejected: dict[str, int] | None = None) -> None:
        entry = {"class": name, "descriptions": descriptions, **({"rejected": rejected} if rejected else {})}
        try:
            with open(self.path, "ab") as handle:
                handle.write(orjson.dumps(entry) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise output_error(self.path, exc) from None
