"""Atomic writes: a failed write leaves the old file (or none), never a torn one."""

import pytest

from discosim._core.io import open_atomic, write_atomic


def test_open_atomic_keeps_the_old_file_when_the_block_fails(tmp_path):
    path = tmp_path / "x.bin"
    write_atomic(path, b"old")
    with pytest.raises(RuntimeError):
        with open_atomic(path) as fh:
            fh.write(b"half of the new")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]  # no temporary left behind
    with open_atomic(path) as fh:
        fh.write(b"new")
    assert path.read_bytes() == b"new"
