"""Atomic checkpoints of the whole train state, in Flax's msgpack format.

A checkpoint is one file ``checkpoints/ckpt_<step>.msgpack`` holding the
serialised state dict (parameters, optimizer state, persistent chains, PRNG
key, step). msgpack never executes code when loaded (unlike pickle). Each file
is written to a temporary name in the same directory, flushed to disk and
renamed over (``os.replace``), so a crash at any moment leaves either the old
set of checkpoints or the new one, never a torn file. The newest ``keep`` are
kept.

With several processes (``jax.process_count() > 1``) no process holds the
whole state: the PCD bank is split over the devices of all processes. Each
process then writes the shards it holds to ``ckpt_<step>.shard<i>of<n>.msgpack``;
once every process has written its file (a barrier over all devices),
process 0 writes ``ckpt_<step>.msgpack`` with the replicated state, the
process and device counts, and a marker in place of each sharded array. That
file is written last, so it is the commit: a step counts as saved only when
it exists, and then all its shard files exist too. The workdir must be on a
filesystem every process sees (one machine, or NFS/Lustre/... on a cluster).
Such a checkpoint resumes only with the same number of processes and devices
(:func:`restore` says so, naming both counts); reading it in one process for
evaluation or sampling (``shardings=None``) assembles the arrays from all the
shard files.
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
_SHARD_NAME = re.compile(r"^ckpt_(\d+)\.shard\d+of\d+\.msgpack$")
# What ckpt_<step>.msgpack holds in place of an array split over processes; its shards are in the shard files.
SHARDED = "<sharded over processes: see the ckpt_<step>.shard*.msgpack files>"


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

    With several processes every process must call it at the same step: each
    writes its shard file, and process 0 the commit file after all of them
    (see the module docstring); only process 0 prunes.

    Raises:
      CheckpointError: if the directory cannot be written (read-only, full
        disk, ...); the earlier checkpoints are left untouched.
    """
    directory = Path(directory)
    target = directory / f"ckpt_{step}.msgpack"
    if jax.process_count() == 1:
        _write(target, serialization.to_bytes(jax.device_get(state)))
    else:
        _save_sharded(directory, step, state)
    if jax.process_index() == 0:
        _prune(directory, keep)
    return target


def _write(target: Path, data: bytes) -> None:
    try:
        fileio.write_bytes(target, data)
    except OSError as err:
        raise CheckpointError(
            f"could not write checkpoint {target}: {err.strerror or err}. "
            "The earlier checkpoints are intact; free disk space or choose a writable --workdir."
        ) from err


def shard_path(directory: Path, step: int, process: int, num_processes: int) -> Path:
    """The file in which process ``process`` of ``num_processes`` keeps its shards of step ``step``."""
    return Path(directory) / f"ckpt_{step}.shard{process}of{num_processes}.msgpack"


def _save_sharded(directory: Path, step: int, state) -> None:
    """Every process writes its shards; after a barrier, process 0 writes the replicated state (the commit)."""
    from jax.experimental import multihost_utils

    n, me = jax.process_count(), jax.process_index()
    shards = {}

    def host(path, leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_replicated:
            shards[path] = {"shape": np.asarray(leaf.shape, np.int64), "shards": {
                str(i): {"start": np.asarray([sl.indices(d)[0] for sl, d in zip(s.index, leaf.shape)], np.int64),
                         "data": np.asarray(s.data)}
                for i, s in enumerate(x for x in leaf.addressable_shards if x.replica_id == 0)}}
            return SHARDED
        if isinstance(leaf, jax.Array):
            return np.asarray(leaf.addressable_data(0))
        return leaf

    replicated = _map_leaves(host, serialization.to_state_dict(state))
    _write(shard_path(directory, step, me, n), serialization.msgpack_serialize(
        {"num_processes": n, "process": me, "arrays": shards}))
    multihost_utils.sync_global_devices(f"jebm checkpoint {step}: every process wrote its shards")
    if me == 0:
        replicated.update(num_processes=n, num_devices=jax.device_count())
        _write(directory / f"ckpt_{step}.msgpack", serialization.msgpack_serialize(replicated))


def _prune(directory: Path, keep: int) -> None:
    """Deletes all but the newest ``keep`` checkpoints, and shard files no kept checkpoint uses."""
    steps = available_steps(directory)
    for old in steps[:-keep]:
        (directory / f"ckpt_{old}.msgpack").unlink(missing_ok=True)
    kept = set(steps[-keep:])
    newest = max(steps, default=-1)
    for p in directory.iterdir():
        m = _SHARD_NAME.match(p.name)
        # Shards of a step newer than the newest commit may be another process's write in progress.
        if m and int(m.group(1)) not in kept and int(m.group(1)) < newest:
            p.unlink(missing_ok=True)


def _map_leaves(fn, tree, path: str = ""):
    """``fn(path, leaf)`` over a nested state dict (``path`` like ``bank/position``), keeping its structure."""
    if isinstance(tree, dict):
        return {k: _map_leaves(fn, v, f"{path}/{k}" if path else str(k)) for k, v in tree.items()}
    return fn(path, tree)


def restore(path: str | os.PathLike, target, shardings=None, num_processes: int | None = None):
    """Restores a checkpoint into the structure of ``target``.

    Args:
      path: a ``ckpt_<step>.msgpack`` file.
      target: a state of the run's structure (e.g. a fresh ``TrainState``).
      shardings: the state's shardings (a tree like ``target``); with several
        processes each then reads only its own shard file and gets global arrays.
        ``None``: host arrays, those of a multi-process checkpoint assembled from
        all its shard files.
      num_processes: the process count the checkpoint must have been written
        with (resuming training); ``None`` accepts any.

    Raises:
      CheckpointError: if a file is unreadable or missing, its arrays do not match
        the shapes of ``target`` (a checkpoint from another config), or it was
        written by another number of processes or devices than required.
    """
    path = Path(path)
    raw = read_raw(path)
    written_by = raw.pop("num_processes", 1) if isinstance(raw, dict) else 1
    devices = raw.pop("num_devices", None) if isinstance(raw, dict) else None
    if num_processes is not None and written_by != num_processes:
        raise CheckpointError(
            f"checkpoint {path} was written by {written_by} process(es) and this run has {num_processes}: "
            f"resume with the same --num_processes={written_by}, or train from scratch in a fresh --workdir")
    if written_by > 1:
        if shardings is not None and devices != jax.device_count():
            raise CheckpointError(
                f"checkpoint {path} was written with {devices} devices in all and this run has {jax.device_count()}: "
                f"resume with the same devices per process, or train from scratch in a fresh --workdir")
        raw = _load_shards(path, raw, written_by, shardings)
    template = serialization.to_state_dict(jax.device_get(target))
    if isinstance(raw, dict) and isinstance(template, dict):
        # Fields added to the state after a checkpoint was written, and unused by
        # this config (None, e.g. ema_params with training.ema_decay=0), restore as None.
        raw = {**{k: None for k, v in template.items() if v is None and k not in raw}, **raw}
    _check_shapes(template, raw, path, "")
    return serialization.from_state_dict(target, raw)


def read_raw(path: str | os.PathLike) -> dict:
    """The nested dict of host arrays a checkpoint file holds, with no template to check it against: for tools that
    read one part of a run's state (e.g. the persistent bank). Raises CheckpointError for a file that is not a
    checkpoint. A multi-process checkpoint holds ``SHARDED`` in place of each split array; see ``shard_path``."""
    path = Path(path)
    try:
        return serialization.msgpack_restore(path.read_bytes())
    except Exception as err:  # msgpack raises several unrelated types on garbage
        raise CheckpointError(f"checkpoint {path} is unreadable ({err}); delete it to fall back to an older one") from err


def _load_shards(path: Path, raw: dict, num_processes: int, shardings):
    """``raw`` with each ``SHARDED`` marker replaced: by a global array built from this process's
    shards (``shardings`` given), or by a host array assembled from every process's shards."""
    step = int(_NAME.match(path.name).group(1))
    me = jax.process_index()
    readers = [me] if shardings is not None else range(num_processes)
    files = {}
    for p in readers:
        shard_file = shard_path(path.parent, step, p, num_processes)
        if not shard_file.is_file():
            raise CheckpointError(f"checkpoint {path} lacks its shard file {shard_file.name}; "
                                  "delete the checkpoint to fall back to an older one")
        files[p] = read_raw(shard_file)["arrays"]
    wanted = serialization.to_state_dict(shardings) if shardings is not None else None

    def fill(leaf_path, leaf):
        if not (isinstance(leaf, str) and leaf == SHARDED):
            return leaf
        pieces = [piece for arrays in files.values() if leaf_path in arrays
                  for piece in arrays[leaf_path]["shards"].values()]
        if not pieces:
            raise CheckpointError(f"checkpoint {path}: no shard of '{leaf_path}' in its shard files")
        shape = tuple(int(d) for d in next(a for a in files.values() if leaf_path in a)[leaf_path]["shape"])
        if wanted is None:
            out = np.zeros(shape, pieces[0]["data"].dtype)
            for piece in pieces:
                out[tuple(slice(int(a), int(a) + d) for a, d in zip(piece["start"], piece["data"].shape))] = piece["data"]
            return out
        by_start = {tuple(int(a) for a in piece["start"]): piece["data"] for piece in pieces}

        def shard_at(index):
            start = tuple(sl.indices(d)[0] for sl, d in zip(index, shape))
            if start not in by_start:
                raise CheckpointError(f"checkpoint {path}: '{leaf_path}' was split over the devices differently "
                                      "(another device count per process?); resume with the devices it was written with")
            return by_start[start]

        return jax.make_array_from_callback(shape, _leaf_at(wanted, leaf_path), shard_at)

    return _map_leaves(fill, raw)


def _leaf_at(tree, leaf_path: str):
    for key in leaf_path.split("/"):
        tree = tree[key]
    return tree


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


def restore_latest(directory: str | os.PathLike, target, shardings=None, num_processes: int | None = None):
    """``(state, step)`` from the newest checkpoint, or ``(None, None)`` if there is none (arguments: :func:`restore`)."""
    steps = available_steps(directory)
    if not steps:
        return None, None
    path = Path(directory) / f"ckpt_{steps[-1]}.msgpack"
    return restore(path, target, shardings=shardings, num_processes=num_processes), steps[-1]
