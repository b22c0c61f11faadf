"""mmovod as a package: pyproject.toml declares what it needs, requirements.txt pins it, and the wheel works alone.

The wheel test builds mmovod from a copy of its sources, installs it into a throw-away venv that sees this
environment's dependencies (no download), and runs the `mmovod` command, the README's own-classes quick start and
docs/handoff.md's exports as written, and the README's Python API example, from a folder outside the repository.
"""
import ast
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from PIL import Image

from tests.docs_text import readme_example, shell_block

ROOT = Path(__file__).resolve().parents[1]


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["test"]]]
    return {canonical(r.name): r for r in requirements}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_requirements_pin_exactly_what_pyproject_declares_within_its_bounds():
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonical(name)] = version
    needed = declared()
    assert set(pins) - {"setuptools"} == set(needed)
    for name, requirement in needed.items():
        assert requirement.specifier.contains(pins[name]), (name, pins[name], str(requirement.specifier))


@pytest.mark.slow
def test_every_third_party_import_of_the_package_is_declared():
    modules = {"PIL": "pillow", "yaml": "pyyaml", "open_clip": "open-clip-torch", "huggingface_hub": "huggingface-hub"}
    imported = set()
    for path in (ROOT / "mmovod").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported - {"mmovod", "__future__"} if m not in sys.stdlib_module_names}
    runtime = {canonical(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
               for r in [Requirement(r).name]}
    assert {canonical(modules.get(m, m)) for m in third_party} == runtime


def run(cmd, cwd, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing but the venv's own paths
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          **kwargs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_runs_outside_the_repository(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    shutil.copytree(ROOT / "mmovod", src / "mmovod", ignore=shutil.ignore_patterns("__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--no-build-isolation", "--no-index", "-w", tmp_path / "dist", src], cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("mmovod-*.whl"))

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin/python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch & co., no mmovod
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--no-index", wheel], cwd=tmp_path)

    work = tmp_path / "elsewhere"
    work.mkdir()
    assert Path(run([python, "-c", "import mmovod; print(mmovod.__file__)"], cwd=work).strip()).is_relative_to(site)
    listing = run([venv / "bin/mmovod", "--help"], cwd=work)
    assert "remove_lvis_rare" in listing and "build_classifiers" in listing
    run([venv / "bin/mmovod", "make_demo_data", "--out", "datasets/demo"], cwd=work)  # needs the package data
    # the shipped CLIP by name, offline, and hints spelled for the installed command
    assert run([venv / "bin/mmovod", "models", "--model", "world"], cwd=work).startswith("* world  shipped")
    custom = work / "datasets/demo/custom"
    run([venv / "bin/mmovod", "build_classifiers", "--vocab", custom / "vocab.txt", "--exemplars", custom / "exemplars",
         "--out-dir", "mine", "--clip_model", "world", "--device", "cpu"], cwd=work)
    run([venv / "bin/mmovod", "check_classifier", "mine/multi-modal-average.npy", "--clip_model", "world"], cwd=work)
    hint = subprocess.run([venv / "bin/mmovod", "train_visual_aggregator", "--cache", ".", "--out", "x"], cwd=work,
                          capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert hint.returncode == 2 and "mmovod cache_clip_features" in hint.stderr and "tools/" not in hint.stderr

    # the first hour as documented, run as written: the README's own classes, then docs/handoff.md's exports
    for folder, colour in (("hard-hat", "yellow"), ("traffic cone", "orange"), ("digger", "olive")):
        for i in range(2):
            (work / "my_photos" / folder).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (64 + 8 * i, 48), colour).save(work / "my_photos" / folder / f"{i}.jpg")
    on_path = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    for page, heading in (("README.md", "## Quick start: your own classes"), ("docs/handoff.md", "# Hand it")):
        block = shell_block(page, heading)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=on_path, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, (page, done.stderr[-3000:])
    assert {"detic.npy", "yolo_world.npy", "ultralytics.pt"} <= {p.name for p in (work / "handoff").iterdir()}

    demo = work / "datasets/demo"
    code = readme_example().replace(
        'ClipSpec("ViT-B/32")', f'ClipSpec({str(demo / "clip/tiny_clip.json")!r}, {str(demo / "clip/tiny_clip.pt")!r}, "cpu")')
    assert run([python, "-c", code], cwd=work).strip() == "(2, 512) (2, 512) (2, 512)"
