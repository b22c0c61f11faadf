import numpy as np
import pytest

from mmovod.io.arrays import save_npy
from mmovod.io.atomic import atomic_open, check_output_dir, check_output_path, staged_folder
from mmovod.io.errors import InputError
from mmovod.io.json_files import save_json


class Boom(Exception):
    pass


def test_failure_mid_write_leaves_no_file_and_no_temp(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(Boom):
        with atomic_open(target) as handle:
            handle.write(b'{"half": ')
            raise Boom()
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_keeps_the_previous_version(tmp_path):
    target = tmp_path / "out.json"
    save_json(target, {"v": 1})
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(target) as handle:
            handle.write(b"partial")
            raise KeyboardInterrupt()
    assert target.read_text() == '{"v":1}'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_unserialisable_json_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        save_json(tmp_path / "x.json", {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_npy_round_trip(tmp_path):
    a = np.arange(6, dtype=np.float16).reshape(2, 3)
    save_npy(tmp_path / "a.npy", a)
    b = np.load(tmp_path / "a.npy")
    assert b.dtype == np.float16 and np.array_equal(a, b)


def test_outputs_get_the_usual_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        save_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(mask)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644


def test_output_checks_refuse_a_folder_a_file_and_an_unwritable_folder(tmp_path, monkeypatch):
    import os

    from mmovod.io.atomic import check_output_dir, check_output_path
    from mmovod.io.errors import InputError

    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(InputError, match="dir: is a folder, expected an output file name"):
        check_output_path(tmp_path / "dir")
    with pytest.raises(InputError, match="output folder .*file is not a folder"):
        check_output_path(tmp_path / "file" / "out.json")
    with pytest.raises(InputError, match="file: is a file, expected an output folder"):
        check_output_dir(tmp_path / "file")
    with pytest.raises(InputError, match="does not exist"):
        check_output_dir(tmp_path / "a" / "b")
    assert check_output_dir(tmp_path / "a" / "b", parents=True) == tmp_path / "a" / "b"
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path / "dir") else real(p, mode))
    with pytest.raises(InputError, match="cannot write into"):
        check_output_path(tmp_path / "dir" / "out.json")
    with pytest.raises(InputError, match="cannot write into"):
        check_output_dir(tmp_path / "dir" / "new")
    assert list((tmp_path / "dir").iterdir()) == []


def test_a_failed_write_is_one_line_naming_the_output_and_keeps_the_previous_version(tmp_path, monkeypatch):
    import errno
    import os

    from mmovod.io.errors import InputError

    target = tmp_path / "out.json"
    save_json(target, {"v": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(InputError, match=r"out.json: cannot write \(No space left on device\)"):
        save_json(target, {"v": 2})
    assert target.read_text() == '{"v":1}'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_staged_folder_lands_whole_or_not_at_all(tmp_path):
    out = tmp_path / "tree"
    with staged_folder(out) as stage:
        (stage / "a").mkdir()
        (stage / "a/x.txt").write_text("1")
    assert (out / "a/x.txt").read_text() == "1"
    (out / "mine.txt").write_text("kept")
    with pytest.raises(RuntimeError):
        with staged_folder(out) as stage:
            (stage / "a").mkdir()
            (stage / "a/y.txt").write_text("2")
            raise RuntimeError("failed half way")
    assert sorted(p.name for p in out.rglob("*")) == ["a", "mine.txt", "x.txt"]  # as it was
    with staged_folder(out) as stage:
        (stage / "a").mkdir()
        (stage / "a/y.txt").write_text("2")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["a", "a/y.txt", "mine.txt"]  # a replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]  # no staged folder left beside it


def test_a_staged_folder_left_by_a_killed_run_is_removed_by_the_next(tmp_path):
    stale = tmp_path / ".tree.999999999.abc.tmp"  # no such process
    (stale / "part").mkdir(parents=True)
    with staged_folder(tmp_path / "tree"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]


@pytest.mark.parametrize("check", [check_output_path, check_output_dir])
@pytest.mark.parametrize("name", ["x" * 256, "é" * 128, "x" * 300 + "/a.npy"], ids=["ascii", "two-byte", "folder"])
def test_a_name_longer_than_file_systems_allow_is_one_line_not_an_oserror(tmp_path, check, name):
    """Each look at such a path (exists(), is_dir()) raises 'File name too long': it is named before any."""
    with pytest.raises(InputError, match=r"is 2\d\d bytes long, more than the 255 a file or folder name may have|"
                                         r"is 300 bytes long"):
        check(tmp_path / name)
    check(tmp_path / ("x" * 255))  # the longest name allowed passes


def test_a_path_longer_than_file_systems_allow_is_one_line(tmp_path):
    with pytest.raises(InputError, match="the path is 4200 bytes long, more than the 4095"):
        check_output_path("/" + "/".join(["x" * 99] * 42))
