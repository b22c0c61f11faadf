"""The training run's metrics.jsonl: one JSON line per step, appended after a resume, trimmed to the
resumed step first."""
from __future__ import annotations

import math
from pathlib import Path
from typing import IO, Any

import orjson

from mmovod.io.atomic import atomic_open, output_error
from mmovod.io.json_files import dumps_json

METRICS_NAME = "metrics.jsonl"


def _metrics_step(line: bytes) -> float:
    """The step of a metrics line; infinity for a line that is not a complete record."""
    try:
        step = orjson.loads(line).get("step")
    except (orjson.JSONDecodeError, AttributeError):
        return math.inf
    return step if isinstance(step, int) else math.inf


def trim_metrics(path: Path, upto_step: int) -> None:
    """Keep the metric lines of steps <= `upto_step` (those after it, and a line torn by a kill, belong
    to the interrupted run)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_bytes().splitlines() if _metrics_step(line) <= upto_step]
    with atomic_open(path, "wb") as handle:
        handle.write(b"".join(line + b"\n" for line in kept))


def logged_steps(path: Path) -> int:
    """How many complete step records `path` holds (0 when it does not exist)."""
    if not path.is_file():
        return 0
    return sum(_metrics_step(line) != math.inf for line in path.read_bytes().splitlines())


def open_metrics(path: Path, resumed: bool) -> IO[bytes]:
    """metrics.jsonl for appending after a resume, else a clean log (an earlier run without checkpoints is dropped)."""
    try:
        return open(path, "ab" if resumed else "wb")
    except OSError as exc:
        raise output_error(path, exc) from None


def log_metrics(handle: IO[bytes], record: dict[str, Any]) -> None:
    try:
        handle.write(dumps_json(record) + b"\n")
        handle.flush()
    except OSError as exc:
        raise output_error(handle.name, exc) from None
