"""The `mmovod` command and the tools/ scripts: one implementation, listed in order, answering --help at once."""
import importlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mmovod
from mmovod.cli.commands import COMMANDS, GUIDE_STEPS, MORE_TOOLS
from mmovod.cli.main import main as mmovod_main
from tests.lvis_fixtures import small_doc, write
from tests.docs_text import GUIDE

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "open_clip", "matplotlib", "openai", "lvis", "pycocotools")

# For every command: build its parser, answer --help, --version and a bad flag, then print which heavy modules
# got imported. Run in a fresh interpreter, so nothing imported by other tests counts.
PROBE = """
import contextlib, importlib, io, json, sys
from mmovod.cli.main import main as mmovod_main
names = json.loads(sys.argv[1])
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    codes = [mmovod_main(["--help"]), mmovod_main(["--version"]), mmovod_main(["no-such-command"])]
    for name in names:
        main = importlib.import_module(f"tools.{name}").main
        codes += [main(["--help"]), main(["--version"]), main(["--no-such-flag"]),
                  mmovod_main([name, "--help"]), mmovod_main([name, "--no-such-flag"])]
print(json.dumps({"codes": codes, "heavy": sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)}))
"""


def probe(names, root=ROOT):
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(names)), json.dumps(HEAVY)], cwd=root,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_help_version_and_usage_errors_import_no_heavy_module():
    result = probe(COMMANDS)
    assert result["heavy"] == []
    assert result["codes"] == [0, 0, 2] + [0, 0, 2, 0, 2] * len(COMMANDS)


@pytest.mark.slow
def test_the_probe_catches_a_command_that_imports_a_heavy_module_at_load(tmp_path):
    """A copy of the code whose remove_lvis_rare imports open_clip (a stand-in module) at its top is caught."""
    for folder in ("mmovod", "tools"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "open_clip.py").write_text("")
    command = tmp_path / "mmovod/cli/commands/remove_lvis_rare.py"
    command.write_text(command.read_text().replace("import argparse\n", "import argparse\n\nimport open_clip\n", 1))
    assert probe(["get_lvis_cat_info"], tmp_path)["heavy"] == []
    assert probe(["remove_lvis_rare"], tmp_path)["heavy"] == ["open_clip"]


def test_every_tool_script_is_the_command_of_the_same_name():
    scripts = sorted(p.stem for p in (ROOT / "tools").glob("*.py") if p.stem != "__init__")
    assert scripts == sorted(COMMANDS)
    for name in scripts:
        tool = importlib.import_module(f"tools.{name}")
        command = importlib.import_module(f"mmovod.cli.commands.{name}")
        assert tool.main is command.main and tool.get_parser is command.get_parser


def test_help_lists_the_guide_steps_in_run_order_then_the_other_tools(capsys):
    assert mmovod_main(["--help"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()
              if line.startswith("  ") and line.split()[0] in COMMANDS]
    assert listed == [*GUIDE_STEPS, *MORE_TOOLS] and len(listed) == len(set(listed))
    run_order = [name for name in dict.fromkeys(cmd.split()[1][len("tools/"):-len(".py")] for cmd in GUIDE)]
    assert [name for name in listed if name in run_order] == run_order
    assert set(GUIDE_STEPS) == {*run_order, "generate_descriptions"}  # the guide's LLM step needs a server


def test_version(capsys):
    assert mmovod_main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mmovod {mmovod.__version__}"
    from tools import remove_lvis_rare
    assert remove_lvis_rare.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"remove_lvis_rare.py (mmovod {mmovod.__version__})"


@pytest.mark.slow
def test_mmovod_step_writes_what_the_tool_script_writes(tmp_path):
    """Both spellings as subprocesses from another folder: same output bytes; the sidecar-free step prints the same."""
    ann = write(tmp_path / "train.json", small_doc())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = {}
    for spelling, cmd in {"script": [sys.executable, str(ROOT / "tools/remove_lvis_rare.py")],
                          "mmovod": [sys.executable, "-m", "mmovod", "remove_lvis_rare"]}.items():
        out = tmp_path / f"{spelling}.json"
        proc = subprocess.run([*cmd, "--ann", str(ann), "--out", str(out)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        runs[spelling] = (out.read_bytes(), proc.stdout.replace(str(out), "OUT"))
    assert runs["script"] == runs["mmovod"]
    assert [a["id"] for a in json.loads(runs["mmovod"][0])["annotations"]] == [11, 12, 13, 14]


def test_errors_name_the_command_as_typed(tmp_path, capsys):
    missing = tmp_path / "missing.json"
    assert mmovod_main(["remove_lvis_rare", "--ann", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mmovod remove_lvis_rare: error: ") and str(missing) in err[0]
    from tools import remove_lvis_rare
    assert remove_lvis_rare.main(["--ann", str(missing)]) == 2
    assert capsys.readouterr().err.startswith("remove_lvis_rare.py: error: ")


def test_help_examples_are_spelled_for_the_entry_point_used(capsys):
    from tools import remove_lvis_rare
    assert remove_lvis_rare.main(["--help"]) == 0
    assert "python tools/remove_lvis_rare.py --ann" in capsys.readouterr().out
    assert mmovod_main(["remove_lvis_rare", "--help"]) == 0
    out = capsys.readouterr().out
    assert "mmovod remove_lvis_rare --ann" in out and "python tools/" not in out


@pytest.mark.parametrize("argv", [[], ["remove-lvis-rare"]])
def test_a_missing_or_unknown_command_is_a_usage_error(argv, capsys):
    assert mmovod_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("usage: mmovod") and err[-1].startswith("mmovod: error: ")


def test_the_recorded_command_line_is_the_command_as_typed(tmp_path):
    """A sidecar records `mmovod norm_feat_sum_norm ...` as one would type it again (no quoted program name)."""
    import numpy as np

    from mmovod.classifiers.sidecar import read_sidecar

    a, b, out = tmp_path / "a b.npy", tmp_path / "b.npy", tmp_path / "out.npy"
    np.save(a, np.eye(2, 4, dtype=np.float32))
    np.save(b, np.eye(2, 4, dtype=np.float32))
    argv = ["--feat1-path", str(a), "--feat2-path", str(b), "--out-path", str(out)]
    assert mmovod_main(["norm_feat_sum_norm", *argv]) == 0
    assert read_sidecar(out).command == shlex.join(["mmovod", "norm_feat_sum_norm", *argv])
    from tools import norm_feat_sum_norm
    assert norm_feat_sum_norm.main(argv) == 0
    assert read_sidecar(out).command == shlex.join(["norm_feat_sum_norm.py", *argv])
