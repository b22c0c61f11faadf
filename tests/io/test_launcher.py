"""Hints name commands the way the user started mmovod: `mmovod <command>` or `python tools/<command>.py`."""
import pytest

from mmovod.cli.main import main as mmovod_main
from mmovod.io import launcher
from mmovod.io.launcher import CHECKOUT, MMOVOD, command, launched_as, spell_commands
from tools import train_visual_aggregator

STEPS = ("cache_clip_features", "download_assets")


def test_command_is_spelled_for_the_launcher_and_mmovod_by_default():
    assert command("download_assets", "--clip ViT-B/32") == "mmovod download_assets --clip ViT-B/32"
    with launched_as(CHECKOUT):
        assert command("download_assets", "--clip ViT-B/32") == "python tools/download_assets.py --clip ViT-B/32"
        assert command("models") == "python tools/models.py"
        with launched_as(MMOVOD):
            assert command("models") == "mmovod models"
        assert command("models") == "python tools/models.py"
    with pytest.raises(ValueError):
        with launched_as("pip"):
            pass


def test_help_text_is_respelled_but_not_paths_that_merely_end_alike():
    text = ("run python tools/download_assets.py --list; a cache of tools/cache_clip_features.py or "
            "download_assets.py --clip X; not bench/download_assets.py, /x/tools/cache_clip_features.py, my_download_assets.py")
    assert spell_commands(text, STEPS) == (
        "run mmovod download_assets --list; a cache of mmovod cache_clip_features or mmovod download_assets --clip X; "
        "not bench/download_assets.py, /x/tools/cache_clip_features.py, my_download_assets.py")
    with launched_as(CHECKOUT):
        assert spell_commands(text, STEPS) == text


@pytest.mark.parametrize("spelling", ["mmovod", "script"])
def test_a_library_hint_names_the_command_as_started(spelling, tmp_path, capsys, monkeypatch):
    """The feature cache's hint ("make one with ...") follows the entry point; a launcher that is never set fails it."""
    argv = ["--cache", str(tmp_path), "--out", str(tmp_path / "out")]

    def run():
        if spelling == "mmovod":
            return mmovod_main(["train_visual_aggregator", *argv])
        return train_visual_aggregator.main(argv)

    want = "make one with mmovod cache_clip_features" if spelling == "mmovod" else \
        "make one with python tools/cache_clip_features.py"
    assert run() == 2
    assert want in capsys.readouterr().err
    monkeypatch.setattr(launcher, "launched_as", lambda name: launched_as(MMOVOD))  # the bug: one spelling for all
    monkeypatch.setattr("mmovod.cli.tool_runner.launched_as", launcher.launched_as)
    run()
    assert (want in capsys.readouterr().err) == (spelling == "mmovod")


def test_mmovod_help_respells_flag_help_too(capsys):
    assert mmovod_main(["train_visual_aggregator", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "written by mmovod cache_clip_features" in out and "tools/" not in out
