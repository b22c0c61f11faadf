"""Ctrl-C at any moment of a tool run as a program (`tools/x.py`, `mmovod`): one line, exit 130 or the exit code
already chosen, never a traceback or a kill by SIGINT; in-process callers keep their own signal handling."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import mmovod.cli.tool_runner as tool_runner
from mmovod.cli.program import STDOUT_CLOSED
from mmovod.cli.commands import COMMANDS
from tools import norm_feat_sum_norm

ROOT = Path(__file__).resolve().parents[2]

# A Ctrl-C landing while Python tears the modules down, after the tool wrote its output and chose exit 0
# (as one lands while torch, DataLoader workers and thread pools are torn down): the object's __del__ runs then.
LATE_CTRL_C = """
import os, signal, sys, time
sys.argv = ["norm_feat_sum_norm.py", "--feat1-path", "a.npy", "--feat2-path", "b.npy", "--out-path", "out.npy"]

class LateCtrlC:
    def __del__(self, kill=os.kill, pid=os.getpid(), sleep=time.sleep):
        kill(pid, signal.SIGINT)
        sleep(0.5)

late = LateCtrlC()
"""
AS_PROGRAM = 'from mmovod.cli.program import run_program\n' \
             'sys.exit(run_program("mmovod.cli.commands.norm_feat_sum_norm:main", "norm_feat_sum_norm.py"))\n'
PLAIN_MAIN = "from tools.norm_feat_sum_norm import main\nsys.exit(main())\n"  # how every tool script ran before


def _run_script(tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    for name in ("a.npy", "b.npy"):
        np.save(tmp_path / name, np.eye(2, 4, dtype=np.float32))
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.slow
def test_a_ctrl_c_while_python_shuts_down_keeps_the_exit_code(tmp_path):
    proc = _run_script(tmp_path, LATE_CTRL_C + AS_PROGRAM)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.startswith("fused 2 classes x 4 dims") and (tmp_path / "out.npy").exists()
    # the same Ctrl-C under a plain `sys.exit(main())` kills the finished run: the check catches it
    plain = _run_script(tmp_path, LATE_CTRL_C + PLAIN_MAIN)
    assert plain.returncode == -signal.SIGINT


@pytest.mark.slow
def test_a_ctrl_c_while_the_tool_loads_is_one_line(tmp_path):
    (tmp_path / "slow_to_load.py").write_text(textwrap.dedent("""
        import os, signal, time
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
        def main():
            return 0
    """))
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n" \
           "from mmovod.cli.program import run_program\nsys.exit(run_program('slow_to_load:main', 'x.py'))\n"
    proc = _run_script(tmp_path, code)
    assert (proc.returncode, proc.stderr) == (130, "x.py: interrupted; no output was written\n")


def test_every_entry_point_runs_its_tool_as_a_program():
    for name in COMMANDS:
        text = (ROOT / "tools" / f"{name}.py").read_text()
        assert f'run_program("mmovod.cli.commands.{name}:main", "{name}.py")' in text, name
    assert 'mmovod = "mmovod.cli.main:program"' in (ROOT / "pyproject.toml").read_text()
    assert 'run_program("mmovod.cli.main:main", "mmovod")' in (ROOT / "mmovod/__main__.py").read_text()


def _interrupt_after_writing(monkeypatch):
    from mmovod.classifiers import fusion

    real = fusion.fuse_classifier_files

    def fuse_then_ctrl_c(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt  # lands after the output was put in place, before the tool's last line

    monkeypatch.setattr(fusion, "fuse_classifier_files", fuse_then_ctrl_c)


def _interrupted_line(tmp_path, capsys) -> str:
    for name in ("a.npy", "b.npy"):
        np.save(tmp_path / name, np.eye(2, 4, dtype=np.float32))
    out = tmp_path / "out.npy"
    argv = ["--feat1-path", str(tmp_path / "a.npy"), "--feat2-path", str(tmp_path / "b.npy"), "--out-path", str(out)]
    assert norm_feat_sum_norm.main(argv) == 130
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # an in-process caller's Ctrl-C still works
    return capsys.readouterr().err


def test_a_ctrl_c_after_the_output_is_written_says_it_was_kept(tmp_path, capsys, monkeypatch):
    _interrupt_after_writing(monkeypatch)
    err = _interrupted_line(tmp_path, capsys)
    out = tmp_path / "out.npy"
    assert err == f"norm_feat_sum_norm.py: interrupted; {out}, {out}.json were written in full before it and kept\n"
    assert np.load(out).shape == (2, 4)


def test_the_kept_output_check_catches_a_runner_that_forgets_it(tmp_path, capsys, monkeypatch):
    _interrupt_after_writing(monkeypatch)
    monkeypatch.setattr(tool_runner, "placed_outputs", lambda since=0: [])  # the slip: outputs not tracked
    assert _interrupted_line(tmp_path, capsys).endswith("interrupted; no output was written\n")
    assert (tmp_path / "out.npy").exists()  # ...which the line above would deny


def _run_into_a_closed_pipe(tmp_path: Path, code: str, *flags: str) -> subprocess.CompletedProcess:
    """`code` with stdout a pipe whose reader has already left (as `tool | head -1` once head exits), buffered."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, *flags, "-c", code], cwd=tmp_path, stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=60, env={**env, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(write)


@pytest.mark.slow
def test_a_reader_that_left_is_one_line_not_a_traceback(tmp_path):
    """What stays in stdout's buffer until the end meets the closed pipe only when the program flushes it."""
    (tmp_path / "printer.py").write_text("def main():\n    print('a line')\n    return 0\n")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r})\nfrom mmovod.cli.program import run_program\n" \
           "sys.exit(run_program('printer:main', 'x.py'))\n"
    proc = _run_into_a_closed_pipe(tmp_path, code)
    assert (proc.returncode, proc.stderr) == (2, f"x.py: error: {STDOUT_CLOSED}\n")
    # the slip: the program leaves the buffer to Python's flush at exit, which reports the BrokenPipeError
    slip = "import mmovod.cli.program as program\nprogram._flush_stdout = lambda code, prog: code\n"
    plain = _run_into_a_closed_pipe(tmp_path, slip + code)
    assert "BrokenPipeError" in plain.stderr and plain.returncode != 0
    # printed at once (python -u, PYTHONUNBUFFERED): the print itself raises, outside any tool's run wrapper
    proc = _run_into_a_closed_pipe(tmp_path, code, "-u")
    assert (proc.returncode, proc.stderr) == (2, f"x.py: error: {STDOUT_CLOSED}\n")


def test_a_broken_pipe_while_printing_is_one_line(tmp_path, capsys, monkeypatch):
    class LeftReader:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    for name in ("a.npy", "b.npy"):
        np.save(tmp_path / name, np.eye(2, 4, dtype=np.float32))
    monkeypatch.setattr(sys, "stdout", LeftReader())
    code = norm_feat_sum_norm.main(["--feat1-path", str(tmp_path / "a.npy"), "--feat2-path", str(tmp_path / "b.npy"),
                                    "--out-path", str(tmp_path / "out.npy")])
    assert (code, capsys.readouterr().err) == (2, f"norm_feat_sum_norm.py: error: {STDOUT_CLOSED}\n")


@pytest.mark.slow
def test_a_deleted_current_folder_is_one_line_before_the_tool_loads(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    code = ("import os, sys\nos.chdir(sys.argv[1]); os.rmdir(sys.argv[1])\n"
            "from mmovod.cli.program import run_program\n"
            "sys.exit(run_program('mmovod.cli.commands.dump_clip_features:main', 'dump_clip_features.py'))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(gone)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert (proc.returncode, proc.stderr) == (
        2, "dump_clip_features.py: error: the current folder was deleted; run this from an existing folder\n")
