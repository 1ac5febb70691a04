"""Save and restore times of a whole ``TrainState``: jebm's msgpack files against orbax.

Builds the train state of ``configs/mnist_sgld.py:cpu`` (custom CNN parameters,
Adam state, a persistent bank of 500 images 28×28×1) and of
``configs/mnist_convergent.py:cpu`` (a bank of 8,000), and for each times, in
one process:

- ``msgpack``: ``jebm.checkpoint.save`` / ``restore`` (one file, written to a
  temporary name, flushed and renamed);
- ``orbax``: an ``orbax.checkpoint.CheckpointManager`` with ``StandardSave`` /
  ``StandardRestore``, saving synchronously (the save returns once the step is
  committed, as jebm's does); and with asynchronous saving, the time the
  training loop is blocked (``save`` returning) and the time until the step is
  committed (``wait_until_finished``).

It reports the median over ``--repeats`` of each, the file sizes and the
orbax/msgpack ratios, and writes them as JSON with ``--out``. ``--checks`` adds
what orbax says on a wrong-shape template and on a truncated data file, and
what a save killed part-way leaves behind. The data are
random images of MNIST's shape: checkpoint I/O does not depend on them.

    python -m benchmarks.checkpoint_io --repeats 7 --checks --out benchmarks/results/checkpoint_io.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from jebm import checkpoint, train

CONFIGS = {"mnist_sgld:cpu (bank 500)": "configs/mnist_sgld.py:cpu",
           "mnist_convergent:cpu (bank 8,000)": "configs/mnist_convergent.py:cpu"}


def build_state(spec: str):
    path, preset = spec.split(":")
    module_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(preset)
    config.sharding.enabled = False
    config.sharding.num_cpu_devices = 0
    fake = np.random.default_rng(0).uniform(-1, 1, (256, 28, 28, 1)).astype(np.float32)
    parts = train.build_parts(config, data=fake)
    state = train.create_train_state(config, parts)
    # A state that has moved off its initial values, so nothing compresses unusually.
    state = jax.tree_util.tree_map(
        lambda x: x + np.float32(0.01) if np.issubdtype(np.asarray(x).dtype, np.floating) else x, state)
    return jax.block_until_ready(state)


def nbytes(tree) -> int:
    return sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(tree))


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Clock:
    """Wall and process CPU time (all threads) of one call."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def same(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return (jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
            and all(np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(np.asarray(x), np.asarray(y))
                    for x, y in zip(la, lb)))


def bench(state, root: Path, repeats: int) -> dict:
    """Each repeat saves with every method in turn, then restores with each, so a changing load hits all alike."""
    import orbax.checkpoint as ocp

    times = {k: {"wall": [], "cpu": []} for k in (
        "msgpack_save", "orbax_sync_save", "orbax_async_blocking", "orbax_async_commit",
        "msgpack_restore", "orbax_restore")}

    def note(key, clock, step):
        if step == 1:  # step 1 warms up every path; it is not counted
            return
        times[key]["wall"].append(clock.wall)
        times[key]["cpu"].append(clock.cpu)

    def manager(name, asynchronous):
        return ocp.CheckpointManager(root / name, options=ocp.CheckpointManagerOptions(
            max_to_keep=3, enable_async_checkpointing=asynchronous, create=True))

    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
    restored = {}
    with manager("orbax_sync", False) as sync, manager("orbax_async", True) as async_:
        for step in range(1, repeats + 2):
            with Clock() as c:
                checkpoint.save(root / "msgpack", step, state, keep=3)
            note("msgpack_save", c, step)
            with Clock() as c:
                sync.save(step, args=ocp.args.StandardSave(state))
            note("orbax_sync_save", c, step)
            with Clock() as commit:
                with Clock() as blocking:
                    async_.save(step, args=ocp.args.StandardSave(state))
                async_.wait_until_finished()
            note("orbax_async_blocking", blocking, step)
            note("orbax_async_commit", commit, step)
            with Clock() as c:
                restored["msgpack"] = checkpoint.restore(root / "msgpack" / f"ckpt_{step}.msgpack", state)
            note("msgpack_restore", c, step)
            with Clock() as c:
                restored["orbax"] = jax.block_until_ready(
                    sync.restore(step, args=ocp.args.StandardRestore(abstract)))
            note("orbax_restore", c, step)
        last = sync.latest_step()
    return {"times_s": times,
            "msgpack_mb": (root / "msgpack" / f"ckpt_{last}.msgpack").stat().st_size / 1e6,
            "orbax_mb": dir_bytes(root / "orbax_sync" / str(last)) / 1e6,
            "bit_identical": {k: same(state, v) for k, v in restored.items()}}


def orbax_checks(root: Path) -> dict:
    """What orbax says on a wrong-shape template and on a corrupted data file, and what a killed save leaves."""
    import orbax.checkpoint as ocp

    def attempt(fn) -> str:
        try:
            fn()
            return "no error"
        except Exception as err:  # reported, whatever it is
            return f"{type(err).__name__}: {str(err)[:300]}".replace("\n", " ")

    state = {"params": {"w": np.ones((4, 3), np.float32)}, "step": np.asarray(5, np.int32),
             "bank": np.random.default_rng(0).normal(size=(500, 28, 28, 1)).astype(np.float32)}
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
    options = ocp.CheckpointManagerOptions(enable_async_checkpointing=False)
    out = {}
    with ocp.CheckpointManager(root / "errors", options=options) as manager:
        manager.save(5, args=ocp.args.StandardSave(state))
        wrong = {**abstract, "params": {"w": jax.ShapeDtypeStruct((4, 5), np.float32)}}
        out["wrong_shape"] = attempt(lambda: manager.restore(5, args=ocp.args.StandardRestore(wrong)))
        extra = {**abstract, "ema": jax.ShapeDtypeStruct((4, 3), np.float32)}
        out["extra_field"] = attempt(lambda: manager.restore(5, args=ocp.args.StandardRestore(extra)))
    biggest = max((p for p in (root / "errors" / "5").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = biggest.read_bytes()
    biggest.write_bytes(data[: len(data) // 3])
    with ocp.CheckpointManager(root / "errors", options=options) as manager:
        out["truncated_file"] = attempt(lambda: manager.restore(5, args=ocp.args.StandardRestore(abstract)))
    # A child saves step 1, then is killed while saving step 2 (a state large enough to take a while).
    child = (f"import numpy as np, orbax.checkpoint as ocp\n"
             f"big = {{'bank': np.full((8000, 28, 28, 1), 2, np.float32), 'x': np.ones((3000, 3000), np.float32)}}\n"
             f"with ocp.CheckpointManager({str(root / 'killed')!r}, options=ocp.CheckpointManagerOptions("
             f"enable_async_checkpointing=False)) as m:\n"
             f"    m.save(1, args=ocp.args.StandardSave(big)); print('saved', flush=True)\n"
             f"    m.save(2, args=ocp.args.StandardSave(big))\n")
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "saved"
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    out["after_killed_save"] = sorted(p.name for p in (root / "killed").iterdir())
    with ocp.CheckpointManager(root / "killed", options=options) as manager:
        restored = manager.restore(manager.latest_step())
        out["killed_save_latest_step"] = manager.latest_step()
        out["killed_save_previous_intact"] = bool(np.all(np.asarray(restored["bank"]) == 2))
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the checkpoints (default: a temp dir)")
    parser.add_argument("--checks", action="store_true",
                        help="also report orbax's errors on a wrong-shape template and a truncated file, "
                             "and what a save killed part-way leaves")
    args = parser.parse_args(argv)
    import orbax.checkpoint as ocp

    med = lambda xs: statistics.median(xs)  # noqa: E731
    results = {"jax": jax.__version__, "orbax_checkpoint": ocp.__version__, "repeats": args.repeats,
               "load_average_start": os.getloadavg(), "cases": {}}
    for name, spec in CONFIGS.items():
        state = build_state(spec)
        root = Path(tempfile.mkdtemp(prefix="ckpt_bench_", dir=args.dir))
        try:
            case = {"state_mb": nbytes(state) / 1e6, **bench(state, root, args.repeats)}
        finally:
            shutil.rmtree(root, ignore_errors=True)
        t = case["times_s"]
        ms = {f"{k}_ms": 1e3 * med(v["wall"]) for k, v in t.items()}
        cpu_ms = {f"{k}_cpu_ms": 1e3 * med(v["cpu"]) for k, v in t.items()}
        case["summary"] = {
            **ms,
            "save_ratio_sync": ms["orbax_sync_save_ms"] / ms["msgpack_save_ms"],
            "save_ratio_async_blocking": ms["orbax_async_blocking_ms"] / ms["msgpack_save_ms"],
            "save_ratio_async_commit": ms["orbax_async_commit_ms"] / ms["msgpack_save_ms"],
            "restore_ratio": ms["orbax_restore_ms"] / ms["msgpack_restore_ms"],
            **cpu_ms,
            "msgpack_mb": case["msgpack_mb"], "orbax_mb": case["orbax_mb"],
            "bit_identical": case["bit_identical"],
        }
        results["cases"][name] = case
        print(f"{name}: state {case['state_mb']:.1f} MB")
        for key, value in case["summary"].items():
            print(f"  {key}: {value:.3g}" if isinstance(value, float) else f"  {key}: {value}")
    if args.checks:
        root = Path(tempfile.mkdtemp(prefix="ckpt_checks_", dir=args.dir))
        try:
            results["orbax_checks"] = orbax_checks(root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        for key, value in results["orbax_checks"].items():
            print(f"{key}: {value}")
    results["load_average_end"] = os.getloadavg()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
