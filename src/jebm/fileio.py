"""Atomic file writes, the one way jebm puts a file on disk, and the reader of its JSON-lines logs.

A file is written to a temporary name in its destination directory, flushed
and fsynced, then renamed over the destination (``os.replace``, atomic on one
filesystem). A crash or an error at any moment leaves either the old file or
the new one, never a torn file, and the temporary file is removed on failure.

The one exception is an append-only JSON-lines log (``metrics.jsonl``), whose
last line a kill may cut short: :func:`read_jsonl` reads such a file and skips
that line.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Callable

import numpy as np


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Runs ``write(file)`` on a temporary file, then moves it onto ``path``.

    Missing parent directories are created. The file gets ordinary 0644
    permissions (``mkstemp`` would leave 0600).

    Raises:
      OSError: from the filesystem (full disk, read-only, ...); ``path`` is
        untouched and no temporary file is left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False) as f:
            tmp = f.name
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def write_json(path: str | os.PathLike, obj) -> Path:
    return write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode())


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    return atomic_write(path, lambda f: np.save(f, array))


def save_npz(path: str | os.PathLike, compressed: bool = False, **arrays: np.ndarray) -> Path:
    save = np.savez_compressed if compressed else np.savez
    return atomic_write(path, lambda f: save(f, **arrays))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The records of a JSON-lines file (one JSON object a line), in order.

    Lines that do not parse (the last line of a log cut short by a kill) and blank
    lines are skipped; a missing file has no records.
    """
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line torn by a kill, or a blank one
    return records


def writable_workdir(workdir: str, probe_name: str = ".write_test") -> Path:
    """``workdir``, created if missing, after writing and removing the file ``probe_name`` in it.

    Raises:
      OSError: naming ``--workdir`` and why it is not writable.
    """
    path = Path(workdir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / probe_name
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise OSError(f"--workdir={workdir} is not writable: {err.strerror or err}") from err
    return path
