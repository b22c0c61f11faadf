import numpy as np
import pytest

from mmovod.io.arrays import save_npy
from mmovod.io.atomic import atomic_open
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
