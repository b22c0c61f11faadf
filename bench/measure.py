"""Run a command as a child process and report its wall time and peak RSS (from os.wait4's rusage)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass


@dataclass
class Measurement:
    label: str
    wall_s: float
    peak_rss_mb: float


def measure(label: str, argv: list[str]) -> Measurement:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{label}: {' '.join(argv)} exited with {proc.returncode}")
    return Measurement(label, wall, usage.ru_maxrss / 1024)


def report(ours: Measurement, naive: Measurement, items: int, unit: str) -> str:
    return (
        f"| {ours.label} | {ours.wall_s:.1f} s, {items / ours.wall_s:,.0f} {unit}/s, {ours.peak_rss_mb:,.0f} MB "
        f"| {naive.wall_s:.1f} s, {items / naive.wall_s:,.0f} {unit}/s, {naive.peak_rss_mb:,.0f} MB "
        f"| {naive.wall_s / ours.wall_s:.1f}x faster, {ours.peak_rss_mb / naive.peak_rss_mb:.2f}x memory |"
    )
