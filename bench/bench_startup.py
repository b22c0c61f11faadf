"""Start-up cost of every command: `--help`, `--version` and a usage error, each as a whole process.

For each command, `python tools/<name>.py --help`, `--version` and `--no-such-flag` and `mmovod <name> --help`
(as `python -m mmovod`) run --repeats times; the table gives the median wall time and the median CPU time (user +
system) of the slowest of them. On a shared machine the wall time includes waiting for a core; the CPU time is
what the command itself costs. With --compare DIR, `--help` of the same tools runs once from another copy of the
repository (e.g. an older commit unpacked with `git archive`), side by side. --offline adds the time an offline request for
the default CLIP (ViT-B/32, HF_HUB_OFFLINE=1) takes to fail, whole process and after the imports.

Example (what docs/performance.md's start-up table comes from):
  python bench/bench_startup.py --repeats 5 --compare /tmp/mmovod-before --offline
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmovod.cli.commands import COMMANDS  # noqa: E402

OFFLINE_CHECK = """
import time
from mmovod.clip.factory import load_clip
from mmovod.io.errors import InputError
start = time.perf_counter()
try:
    load_clip("ViT-B/32", device="cpu")
except InputError:
    print(time.perf_counter() - start)
"""


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, stdout) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stdout


def median_costs(cmd: list[str], root: Path, repeats: int) -> tuple[float, float]:
    runs = [timed(cmd, root, {"PYTHONPATH": str(root)})[:2] for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def command_costs(name: str, root: Path, repeats: int) -> tuple[float, float]:
    """Slowest median (wall, CPU) of the command's --help, --version, usage error and `mmovod <name> --help`."""
    script = [sys.executable, str(root / "tools" / f"{name}.py")]
    variants = [script + ["--help"], script + ["--version"], script + ["--no-such-flag"]]
    if (root / "mmovod/cli/main.py").is_file():
        variants.append([sys.executable, "-m", "mmovod", name, "--help"])
    costs = [median_costs(cmd, root, repeats) for cmd in variants]
    return max(c[0] for c in costs), max(c[1] for c in costs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compare", type=Path, default=None, help="another copy of the repository to time too")
    parser.add_argument("--offline", action="store_true", help="also time the offline CLIP error")
    args = parser.parse_args()

    base_wall, base_cpu = median_costs([sys.executable, "-c", "pass"], ROOT, args.repeats)
    print(f"python -c pass: {base_wall:.2f} s wall, {base_cpu:.2f} s CPU; load average {os.getloadavg()[0]:.1f}")
    wall, cpu = median_costs([sys.executable, "-m", "mmovod", "--help"], ROOT, args.repeats)
    print(f"mmovod --help: {wall:.2f} s wall, {cpu:.2f} s CPU")
    header = "| command | wall s | CPU s |" + (" before: --help wall s | before: --help CPU s |" if args.compare else "")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in COMMANDS:
        wall, cpu = command_costs(name, ROOT, args.repeats)
        row = f"| {name} | {wall:.2f} | {cpu:.2f} |"
        if args.compare and (args.compare / "tools" / f"{name}.py").is_file():
            old_wall, old_cpu = median_costs([sys.executable, f"tools/{name}.py", "--help"], args.compare, 1)
            row += f" {old_wall:.2f} | {old_cpu:.2f} |"
        print(row, flush=True)
    if args.offline:
        env = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
        wall, cpu, _ = timed([sys.executable, "tools/dump_clip_features.py", "--out_path", "/tmp/unused.npy",
                              "--device", "cpu"], ROOT, env)
        _, _, after_imports = timed([sys.executable, "-c", OFFLINE_CHECK], ROOT, env)
        print(f"offline ViT-B/32: whole process {wall:.2f} s wall, {cpu:.2f} s CPU; "
              f"the error after the imports: {float(after_imports):.3f} s")


if __name__ == "__main__":
    main()
