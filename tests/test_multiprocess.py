"""Training with several processes on JAX's own runtime (``--coordinator_address/--num_processes/--process_id``).

Two CLI processes with one CPU device each, talking over gloo on 127.0.0.1,
must train the model one process with two CPU devices trains; write one copy
of every output; stop with a clear error when the other process dies, and
resume from their shared checkpoints; and reject bad flags before joining.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import ROOT
from jebm import checkpoint, config_lib, train

pytestmark = pytest.mark.slow  # CLI subprocesses: `pytest -m "not slow"` leaves them out

CONFIG = "configs/gmm_sgld.py:smoke"
# Long enough to kill mid-way, short in time: a step takes milliseconds; evaluation without AIS.
EXTRA = ["--config.training.max_steps=120", "--config.training.checkpoint_every=4", "--config.training.log_every=4",
         "--config.eval.long_run_steps=5", "--config.eval.ais_temps=0"]
TIMEOUT = 240
# Compiles dominate these runs: XLA's optimisation passes off (the checks compare runs made alike), and
# one compilation cache for the module's runs, so a rerun of the same programs compiles nothing.
CACHE = ROOT / ".pytest_cache" / "jebm_multiprocess_xla"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict:
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", "")).strip()
    if devices > 1:
        flags = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    return dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu", JEBM_COMPILATION_CACHE=str(CACHE),
                JAX_DISABLE_MOST_OPTIMIZATIONS="true")


def _cmd(workdir, *extra, config=CONFIG):
    return [sys.executable, "-m", "jebm.main", f"--config={config}", f"--workdir={workdir}", *EXTRA, *extra]


def _start_two(workdir, *extra, port=None, devices=1):
    """Both processes of a 2-process run (``devices`` CPU devices each), logging to ``workdir``.log0/1; returns the Popen objects."""
    port = port or _free_port()
    procs = []
    for i in range(2):
        log = open(f"{workdir}.log{i}", "w")
        cmd = _cmd(workdir, f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}",
                   "--initialization_timeout=60", "--heartbeat_timeout=10", *extra)
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=_env(devices), stdout=log, stderr=subprocess.STDOUT))
        log.close()
    return procs


def _wait_all(procs, workdir, timeout=TIMEOUT):
    deadline = time.time() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(1, deadline - time.time()))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"process {i}: rc {p.returncode}\n" + _log(workdir, i)[-3000:]


def _log(workdir, i) -> str:
    return open(f"{workdir}.log{i}").read()


def run_two(workdir, *extra):
    _wait_all(_start_two(workdir, *extra), workdir)


def run_one(workdir, *extra, devices=2):
    proc = subprocess.run(_cmd(workdir, "--config.sharding.enabled=True", *extra), cwd=ROOT, env=_env(devices),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]


def final_state(workdir):
    """The newest checkpoint of a run as host arrays (a multi-process one assembled from its shard files)."""
    config = config_lib.config_from_json(workdir / "config.json")
    template = train.create_train_state(config, train.build_parts(config))
    state, step = checkpoint.restore_latest(checkpoint.checkpoint_dir(workdir), template)
    return state, step


def _files(workdir):
    return sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*")
                  if p.is_file() and "checkpoints" not in p.parts and "tensorboard" not in p.parts)


def _metric_steps(workdir):
    return [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def pcd_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("pcd")
    two, one = base / "two", base / "one"
    run_two(two, "--config.chain_init.persistent=True")
    run_one(one, "--config.chain_init.persistent=True")
    return two, one


def _assert_same_run(two, one):
    s2, step2 = final_state(two)
    s1, step1 = final_state(one)
    assert step2 == step1 == 120
    for a, b in zip(jax.tree_util.tree_leaves(s2), jax.tree_util.tree_leaves(s1)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.load(two / "samples.npy"), np.load(one / "samples.npy"), rtol=1e-5, atol=1e-6)
    # One copy of each output and of each metrics line: the files of one process's run, no more.
    assert _files(two) == _files(one)
    assert _metric_steps(two) == _metric_steps(one) == list(range(4, 121, 4))
    events = lambda d: len(list((d / "tensorboard").glob("events.*")))  # noqa: E731 -- training's and the summary's
    assert events(two) == events(one) == 2
    kept = checkpoint.available_steps(two / "checkpoints")
    expected = sorted([f"ckpt_{s}.msgpack" for s in kept] + [f"ckpt_{s}.shard{i}of2.msgpack" for s in kept for i in (0, 1)])
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == expected
    summary = json.loads((two / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["ks"] == pytest.approx(json.loads((one / "summary.json").read_text())["ks"], abs=0.05)


def test_two_processes_train_what_one_process_with_two_devices_trains(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    snapshots = "--config.training.sample_every=60"  # drawn by process 0 alone, into grids/
    run_two(two, snapshots)
    run_one(one, snapshots)
    _assert_same_run(two, one)
    assert [f for f in _files(two) if f.startswith("grids/")] == ["grids/fit_step0000060.png", "grids/fit_step0000120.png"]
    assert "Process 1 of 2, 1 local / 2 global devices" in _log(two, 1)


def test_two_processes_with_a_persistent_bank_split_over_them(pcd_runs):
    two, one = pcd_runs
    _assert_same_run(two, one)
    # Each process kept only its half of the bank (64 chains): 32 rows in each shard file.
    step = checkpoint.available_steps(two / "checkpoints")[-1]
    for i in (0, 1):
        raw = checkpoint.read_raw(checkpoint.shard_path(two / "checkpoints", step, i, 2))
        (piece,) = raw["arrays"]["bank/position"]["shards"].values()
        assert piece["data"].shape == (32, 2) and int(piece["start"][0]) == 32 * i


# Process 1 dead: process 0's next collective fails and jebm says so. Process 0 (the coordinator) dead:
# JAX's client ends process 1 itself, or its collective fails first, whichever comes first.
LOST = {1: r"process 0 of 2 lost contact with another process of this run \(.*\)\. It probably died or was killed"
           r".*Start all 2 processes again with the same flags",
        0: r"process 1 of 2 lost contact with another process of this run|Terminating process because the JAX "
           r"distributed service detected fatal errors"}


# Killing process 0 (the coordinator) passed too at commit ab2712f (30 s more); it is left out of the suite
# for CI's time budget: add 0 to this list to run it.
@pytest.mark.parametrize("victim", [1])
def test_killed_process_stops_the_other_and_a_rerun_resumes(pcd_runs, tmp_path, victim):
    full, _ = pcd_runs
    survivor = 1 - victim
    workdir = tmp_path / "killed"
    procs = _start_two(workdir, "--config.chain_init.persistent=True")
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and not any(s >= 40 for s in checkpoint.available_steps(workdir / "checkpoints")):
        assert all(p.poll() is None for p in procs), _log(workdir, 0)[-2000:]
        time.sleep(0.02)
    procs[victim].send_signal(signal.SIGKILL)
    t0 = time.time()
    try:
        procs[survivor].wait(timeout=60)  # bounded: no hang on a dead peer
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    stopped_after = time.time() - t0
    killed_at = checkpoint.available_steps(workdir / "checkpoints")
    assert killed_at and killed_at[-1] < 120, f"the run was not interrupted mid-way: {killed_at}"
    assert procs[survivor].returncode != 0
    log = _log(workdir, survivor)
    assert re.search(LOST[victim], log, re.S), log[-3000:]
    assert stopped_after < 60

    run_two(workdir, "--config.chain_init.persistent=True")
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["resumed_from"] == killed_at[-1] and summary["steps_run"] == 120 - killed_at[-1]
    resumed, _ = final_state(workdir)
    uninterrupted, _ = final_state(full)
    for a, b in zip(jax.tree_util.tree_leaves(resumed), jax.tree_util.tree_leaves(uninterrupted)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.load(workdir / "samples.npy"), np.load(full / "samples.npy"))
    assert _metric_steps(workdir) == _metric_steps(full)


def test_resuming_with_another_process_count_names_both_counts(pcd_runs, tmp_path):
    two, _ = pcd_runs
    copy = tmp_path / "copy"
    shutil.copytree(two, copy)
    proc = subprocess.run(_cmd(copy, "--config.chain_init.persistent=True", "--config.training.max_steps=124"),
                          cwd=ROOT, env=_env(1), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode != 0
    assert re.search(r"ckpt_120.msgpack was written by 2 process\(es\) and this run has 1: "
                     r"resume with the same --num_processes=2", proc.stderr), proc.stderr[-3000:]
    # One process can still read the run for evaluation and sampling: the bank assembled from both shard files.
    state, _ = final_state(two)
    assert state.bank.position.shape == (64, 2) and np.all(np.isfinite(state.bank.position))
    import jebm

    restored = jebm.restore(two)
    x = jebm.sample(restored, jax.random.key(0), 8, num_steps=3)
    assert x.shape == (8, 2) and np.all(np.isfinite(x))


def test_resuming_with_another_device_count_per_process_names_both_counts(pcd_runs, tmp_path):
    two, _ = pcd_runs
    copy = tmp_path / "copy"
    shutil.copytree(two, copy)
    procs = _start_two(copy, "--config.chain_init.persistent=True", "--config.training.max_steps=124", devices=2)
    for p in procs:
        p.wait(timeout=TIMEOUT)
    message = r"ckpt_120.msgpack was written with 2 devices in all and this run has 4: resume with the same devices"
    assert procs[0].returncode == 1 and re.search(message, _log(copy, 0)), _log(copy, 0)[-3000:]
    # Process 1 says the same, unless process 0's exit (the coordinator's) ends it first.
    assert procs[1].returncode != 0
    assert re.search(message + "|Terminating process because the JAX distributed service", _log(copy, 1)), \
        _log(copy, 1)[-3000:]
    assert checkpoint.available_steps(copy / "checkpoints")[-1] == 120  # nothing was overwritten


@pytest.mark.parametrize("flags,message", [
    (["--coordinator_address=127.0.0.1:1234", "--num_processes=2", "--process_id=2"],
     r"--process_id=2: must be in 0\.\.1 \(--num_processes=2\)"),
    (["--coordinator_address=127.0.0.1:1234", "--num_processes=2", "--process_id=-1"], r"--process_id=-1: must be in 0\.\.1"),
    (["--coordinator_address=127.0.0.1:1234", "--num_processes=0", "--process_id=0"], r"--num_processes=0: must be >= 1"),
    (["--coordinator_address=localhost", "--num_processes=2", "--process_id=0"],
     r"--coordinator_address='localhost': must be HOST:PORT"),
    (["--num_processes=2", "--process_id=1"], r"go together; missing --coordinator_address"),
    (["--coordinator_address=127.0.0.1:1234", "--num_processes=2", "--process_id=1", "--initialization_timeout=0"],
     r"--initialization_timeout=0: must be >= 1 second"),
])
def test_bad_distributed_flags_are_rejected_before_joining(tmp_path, flags, message):
    proc = subprocess.run(_cmd(tmp_path / "run", *flags), cwd=ROOT, env=_env(1), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and re.search(message, proc.stderr), proc.stderr[-2000:]
    assert not (tmp_path / "run").exists()


def test_unreachable_coordinator_is_a_clear_error_after_the_timeout(tmp_path):
    port = _free_port()  # nothing listens there
    t0 = time.time()
    proc = subprocess.run(_cmd(tmp_path / "run", f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                               "--process_id=1", "--initialization_timeout=2"),
                          cwd=ROOT, env=_env(1), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert re.search(rf"--coordinator_address=127.0.0.1:{port}: no coordinator answered within "
                     r"--initialization_timeout=2 s \(Connection refused\)", proc.stderr), proc.stderr[-2000:]
    assert time.time() - t0 < 60
    assert not (tmp_path / "run").exists()


def test_distributed_without_flags_outside_a_cluster_says_what_to_give(tmp_path):
    env = {k: v for k, v in _env(1).items() if not k.startswith(("SLURM_", "OMPI_", "JAX_COORDINATOR"))}
    proc = subprocess.run(_cmd(tmp_path / "run", "--config.sharding.distributed=True"), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert re.search(r"jax.distributed.initialize failed: coordinator_address should be defined\. Without "
                     r"--coordinator_address, --num_processes and --process_id JAX must detect a cluster", proc.stderr), \
        proc.stderr[-2000:]
