"""Atomic writes leave either the old file or the new one, and no temporary files."""

import errno
import os

import numpy as np
import pytest

from jebm import fileio


def test_write_and_replace(tmp_path):
    path = tmp_path / "sub" / "a.json"
    fileio.write_json(path, {"x": 1})
    fileio.write_json(path, {"x": 2})
    assert path.read_text().replace(" ", "").replace("\n", "") == '{"x":2}'
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]
    fileio.save_npy(tmp_path / "b.npy", np.arange(3))
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), np.arange(3))
    fileio.save_npz(tmp_path / "c.npz", compressed=True, a=np.ones(2))
    np.testing.assert_array_equal(np.load(tmp_path / "c.npz")["a"], np.ones(2))


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "a.bin"
    fileio.write_bytes(path, b"old")

    def fail(f):
        f.write(b"half-written")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        fileio.atomic_write(path, fail)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_read_jsonl_skips_a_line_torn_by_a_kill(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert fileio.read_jsonl(path) == []  # no log yet
    path.write_text('{"step": 1, "loss": 0.5}\n\n{"step": 2, "loss": 0.25}\n{"step": 3, "lo')
    assert fileio.read_jsonl(path) == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
