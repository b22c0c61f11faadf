"""The run wrapper's last line: after every progress bar, on a line of its own."""
import argparse
import re

import pytest
from tqdm import tqdm

import mmovod.cli.tool_runner as tool_runner
from mmovod.io.errors import InputError


def _stop_mid_bar(stop: BaseException):
    """A tool body that updates a bar by hand (as the build's report does) and is stopped half-way."""
    def body(args):
        bar = tqdm(total=4, desc="report", position=0)
        bar.update(2)
        raise stop
    return body


def _stop_in_the_bars_constructor(unset: tuple[str, ...]):
    """A Ctrl-C landing inside tqdm's constructor after it drew the bar (as one sent when the bar appears does),
    before it set the attributes `unset` (its last two steps)."""
    def body(args):
        bar = tqdm(total=4, desc="encoding", position=0)
        for name in unset:
            delattr(bar, name)
        raise KeyboardInterrupt
    return body


def _last_lines(stderr: str) -> list[str]:
    return [part for part in re.split(r"[\r\n]", stderr) if part.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("stop, line", [(KeyboardInterrupt(), "tool.py: interrupted; no output was written"),
                                        (InputError("in.json: bad"), "tool.py: error: in.json: bad")])
def test_the_last_line_comes_after_a_bar_left_open(stop, line, capsys, monkeypatch):
    parser = argparse.ArgumentParser(prog="tool.py")
    assert tool_runner.run_tool(parser, _stop_mid_bar(stop), [], prog="tool.py") in (2, 130)
    err = capsys.readouterr().err
    assert err.endswith(f"\n{line}\n") and _last_lines(err)[-1] == line
    # a runner that writes the line without closing the bars: the collected bar is drawn after it, on the same line
    monkeypatch.setattr(tool_runner, "close_progress_bars", lambda: None)
    tool_runner.run_tool(parser, _stop_mid_bar(stop), [], prog="tool.py")
    err = capsys.readouterr().err
    assert _last_lines(err)[-1] != line and not err.endswith(f"\n{line}\n")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the planted runner's bar, collected
@pytest.mark.parametrize("unset", [("last_print_t", "start_t"), ("start_t",)])
def test_the_last_line_starts_a_line_after_a_bar_stopped_while_it_was_made(unset, capsys, monkeypatch):
    parser = argparse.ArgumentParser(prog="tool.py")
    line = "tool.py: interrupted; no output was written"
    assert tool_runner.run_tool(parser, _stop_in_the_bars_constructor(unset), [], prog="tool.py") == 130
    err = capsys.readouterr().err
    assert err.endswith(f"]\n{line}\n") and _last_lines(err)[-1] == line
    # tqdm's own close leaves that bar's line open: the tool's line would start on it
    monkeypatch.setattr(tool_runner, "close_progress_bars", lambda: None)
    tool_runner.run_tool(parser, _stop_in_the_bars_constructor(unset), [], prog="tool.py")
    assert capsys.readouterr().err.endswith(f"]{line}\n")
