"""build_classifiers.py owns its output folder: a rebuild leaves exactly what the same build writes into an
empty folder and lists, in one line, what it removed; a folder holding someone else's files is refused."""
import pytest

from tests.own_classes import build
from tools import build_classifiers


def _files(out):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_rebuild_leaves_what_a_build_into_an_empty_folder_leaves(own_classes, tmp_path, capsys):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    agg = ["--load-path", own_classes["root"] / "agg.pth", "--num-layers", "1"]
    assert build(own_classes, out, *agg, "--export", "multi-modal-average", "--judge", "--report") == 0
    assert {"export/multi-modal-average.npy", "leave-one-out.json", "report/index.html"} <= set(_files(out))
    capsys.readouterr()
    assert build(own_classes, out) == 0
    printed = capsys.readouterr().out
    assert "reused: text, vision-average, multi-modal-average" in printed  # resumable as before
    lines = [line for line in printed.splitlines() if line.startswith("removed ")]
    assert lines == [f"removed what the earlier build in {out} wrote and this one did not: exemplar-embeddings.npz, "
                     "export/, leave-one-out.json, multi-modal-aggregated.npy, multi-modal-aggregated.npy.json, "
                     "report/, vision-aggregated.npy, vision-aggregated.npy.json"]
    assert build(own_classes, fresh) == 0
    assert _files(out) == _files(fresh)


def test_a_folder_holding_other_files_is_refused_before_any_work(own_classes, tmp_path, bad_input):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    argv = ["--vocab", str(own_classes["root"] / "vocab.txt"), "--exemplars", str(own_classes["root"] / "photos"),
            "--out-dir", str(out), *own_classes["clip"], *own_classes["views"]]
    bad_input(build_classifiers.main, argv, out / "notes.txt", f"{out}: --out-dir holds 1 file no build wrote (notes.txt)",
              existing=b"my notes")
