"""The build's output folder: what an earlier build left and this one did not write is removed (and
listed), files no build wrote are refused before any work, temp files of a killed writer are ours."""
import json

import pytest

from mmovod.io.errors import InputError
from mmovod.vocabulary import output_folder
from mmovod.vocabulary.output_folder import MANIFEST, claim, settle


def _files(out):
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def _earlier_build(out):
    for name in ("text.npy", "text.npy.json", "vision-aggregated.npy", "vision-aggregated.npy.json", "vocabulary.json",
                 "leave-one-out.json", "exemplar-embeddings.npz", "export/multi-modal-average.npy",
                 "export/multi-modal-average.npy.json", "report/index.html", "report/sheets/0000_hat.jpg"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"x")


def test_a_rebuild_removes_what_it_did_not_write_and_lists_it(tmp_path):
    out = tmp_path / "out"
    _earlier_build(out)
    earlier = claim(out)
    written = [out / n for n in ("text.npy", "text.npy.json", "vocabulary.json")]
    removed = settle(out, earlier, written)
    assert removed == ["exemplar-embeddings.npz", "export/", "leave-one-out.json", "report/",
                       "vision-aggregated.npy", "vision-aggregated.npy.json"]
    assert _files(out) == [MANIFEST, "text.npy", "text.npy.json", "vocabulary.json"]
    assert not (out / "export").exists() and not (out / "report").exists()
    assert json.loads((out / MANIFEST).read_text())["files"] == ["text.npy", "text.npy.json", "vocabulary.json"]
    assert settle(out, claim(out), written) == []  # the same build again removes nothing


def test_the_check_catches_a_build_that_keeps_earlier_files(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _earlier_build(out)
    monkeypatch.setattr(output_folder, "_remove", lambda out, files: None)  # planted: a build that removes nothing
    settle(out, claim(out), [out / "text.npy"])
    assert "leave-one-out.json" in _files(out)  # the first test's check of the files left fails on this build


def test_a_folder_holding_files_no_build_wrote_is_refused_untouched(tmp_path):
    out = tmp_path / "out"
    _earlier_build(out)
    (out / "notes.txt").write_text("mine")
    (out / "report" / "my-plot.png").write_bytes(b"p")
    before = _files(out)
    with pytest.raises(InputError, match=r"^.*out: --out-dir holds 2 files no build wrote \(notes.txt, "
                                         r"report/my-plot.png\); give an empty folder"):
        claim(out)
    assert _files(out) == before


def test_files_of_an_earlier_manifest_and_temps_of_a_killed_writer_are_the_builds_own(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "future-kind.npy").write_bytes(b"x")  # a name a later mmovod writes: its manifest says so
    (out / MANIFEST).write_text(json.dumps({"format": output_folder.MANIFEST_FORMAT, "files": ["future-kind.npy"]}))
    (out / ".text.npy.12345.abc123.tmp").write_bytes(b"t")
    (out / "descriptions_gpt-4o.json").write_text("{}")
    assert claim(out) == sorted([".text.npy.12345.abc123.tmp", MANIFEST, "descriptions_gpt-4o.json", "future-kind.npy"])
    assert settle(out, claim(out), []) == ["descriptions_gpt-4o.json", "future-kind.npy"]  # the temp: removed, unlisted
    assert _files(out) == [MANIFEST]


def test_a_missing_or_empty_folder_has_nothing_earlier(tmp_path):
    assert claim(tmp_path / "new") == []
    assert claim(tmp_path) == []
