"""Atomic checkpoints of the whole train state, in Flax's msgpack format.

A checkpoint is one file ``checkpoints/ckpt_<step>.msgpack`` holding the
serialised state dict (parameters, optimizer state, persistent chains, PRNG
key, step). msgpack never executes code when loaded (unlike pickle). Each file
is written to a temporary name in the same directory, flushed to disk and
renamed over (``os.replace``), so a crash at any moment leaves either the old
set of checkpoints or the new one, never a torn file. The newest ``keep`` are
kept.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import jax
import numpy as np
from flax import serialization

from jebm import fileio

_NAME = re.compile(r"^ckpt_(\d+)\.msgpack$")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or does not fit the current config."""


def checkpoint_dir(workdir: str | os.PathLike) -> Path:
    return Path(workdir) / "checkpoints"


def available_steps(directory: str | os.PathLike) -> list[int]:
    """Steps of the complete checkpoints in ``directory``, ascending."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := _NAME.match(p.name)))


def save(directory: str | os.PathLike, step: int, state, keep: int = 3) -> Path:
    """Writes ``state`` as the checkpoint of ``step`` atomically; prunes to ``keep``.

    Raises:
      CheckpointError: if the directory cannot be written (read-only, full
        disk, ...); the earlier checkpoints are left untouched.
    """
    directory = Path(directory)
    data = serialization.to_bytes(jax.device_get(state))
    target = directory / f"ckpt_{step}.msgpack"
    try:
        fileio.write_bytes(target, data)
    except OSError as err:
        raise CheckpointError(
            f"could not write checkpoint {target}: {err.strerror or err}. "
            "The earlier checkpoints are intact; free disk space or choose a writable --workdir."
        ) from err
    for old in available_steps(directory)[:-keep]:
        (directory / f"ckpt_{old}.msgpack").unlink(missing_ok=True)
    return target


def restore(path: str | os.PathLike, target):
    """Restores a checkpoint into the structure of ``target``.

    Raises:
      CheckpointError: if the file is unreadable or its arrays do not match
        the shapes of ``target`` (a checkpoint from another config).
    """
    path = Path(path)
    try:
        raw = serialization.msgpack_restore(path.read_bytes())
    except Exception as err:  # msgpack raises several unrelated types on garbage
        raise CheckpointError(f"checkpoint {path} is unreadable ({err}); delete it to fall back to an older one") from err
    template = serialization.to_state_dict(jax.device_get(target))
    if isinstance(raw, dict) and isinstance(template, dict):
        # Fields added to the state after a checkpoint was written, and unused by
        # this config (None, e.g. ema_params with training.ema_decay=0), restore as None.
        raw = {**{k: None for k, v in template.items() if v is None and k not in raw}, **raw}
    _check_shapes(template, raw, path, "")
    return serialization.from_state_dict(target, raw)


def _check_shapes(expected, found, path: Path, where: str) -> None:
    if isinstance(expected, dict):
        if not isinstance(found, dict) or set(expected) != set(found):
            got = sorted(found) if isinstance(found, dict) else type(found).__name__
            raise CheckpointError(
                f"checkpoint {path} does not match this config at '{where or '/'}': "
                f"expected keys {sorted(expected)}, found {got}. Was it written by another config? "
                "Use a fresh --workdir."
            )
        for key in expected:
            _check_shapes(expected[key], found[key], path, f"{where}/{key}")
        return
    exp_shape, got_shape = np.shape(expected), np.shape(found)
    if exp_shape != got_shape:
        raise CheckpointError(
            f"checkpoint {path} does not match this config at '{where}': shape {got_shape} in the file, "
            f"{exp_shape} expected. Was it written by another config? Use a fresh --workdir."
        )


def restore_latest(directory: str | os.PathLike, target):
    """``(state, step)`` from the newest checkpoint, or ``(None, None)`` if there is none."""
    steps = available_steps(directory)
    if not steps:
        return None, None
    return restore(Path(directory) / f"ckpt_{steps[-1]}.msgpack", target), steps[-1]
