"""jebm.restore / jebm.sample and ``--mode=sample``: a finished run comes back and samples as its evaluation did."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import jebm
from conftest import ROOT, load_config
from jebm.evaluation import chains


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("api_run")
    config = load_config("gmm_sghmc", "smoke")
    config.training.checkpoint_every = 2
    jebm.train_and_evaluate(config, workdir)
    return config, workdir


def test_restore_then_sample_reproduces_the_runs_own_samples(run):
    config, workdir = run
    restored = jebm.restore(workdir)
    assert restored.step == config.training.max_steps
    # evaluate_toy draws samples.npy with the first of four keys split from the evaluation key.
    key = jax.random.split(chains.eval_key(config), 4)[0]
    again = jebm.sample(restored, key, config.eval.num_samples)
    np.testing.assert_array_equal(again, np.load(workdir / "samples.npy"))


def test_restore_an_earlier_step_gives_other_parameters(run):
    config, workdir = run
    early, late = jebm.restore(workdir, step=2), jebm.restore(workdir)
    assert early.step == 2
    leaves = lambda r: jax.tree_util.tree_leaves(r.params)  # noqa: E731
    assert any(not np.array_equal(a, b) for a, b in zip(leaves(early), leaves(late)))
    with pytest.raises(FileNotFoundError, match=r"step=3 has no checkpoint .* it has steps \[2, 4, 6\]"):
        jebm.restore(workdir, step=3)


def test_sample_takes_another_sampler_and_length(run):
    _, workdir = run
    restored = jebm.restore(workdir)
    x = jebm.sample(restored, jax.random.key(0), 50, num_steps=7, sampler={"name": "mala", "step_size": 1e-3})
    assert x.shape == (50, 2) and np.all(np.isfinite(x))
    assert not np.array_equal(x, jebm.sample(restored, jax.random.key(0), 50, num_steps=7))


@pytest.mark.parametrize("kwargs,message", [
    ({"num_samples": 0}, r"num_samples must be an int >= 1, got 0"),
    ({"num_steps": -1}, r"num_steps must be an int >= 1, got -1"),
    ({"sampler": {"stepsize": 0.1}}, r"sampler fields \['stepsize'\] do not exist"),
    ({"sampler": "hmc"}, r"sampler.name.*'hmc'.*mala.*sghmc.*sgld"),
])
def test_sample_rejects_bad_arguments(run, kwargs, message):
    restored = jebm.restore(run[1])
    args = {"num_samples": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        jebm.sample(restored, jax.random.key(0), args.pop("num_samples"), **args)


def test_restore_of_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        jebm.restore(tmp_path)


@pytest.mark.slow
def test_mode_sample_writes_what_jebm_sample_returns(run, tmp_path):
    _, workdir = run
    out = tmp_path / "s.npy"
    env = {**os.environ, "JEBM_COMPILATION_CACHE": ""}
    cmd = [sys.executable, "-m", "jebm.main", "--mode=sample", f"--workdir={workdir}", "--num_samples=20",
           "--num_steps=5", "--seed=3", f"--out={out}"]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    expected = jebm.sample(jebm.restore(workdir), jax.random.key(3), 20, num_steps=5)
    np.testing.assert_array_equal(np.load(out), expected)
    bad = subprocess.run(cmd[:-1] + [f"--out={tmp_path / 's.txt'}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--mode=sample needs --out=FILE.npy" in bad.stderr
    assert json.loads((workdir / "summary.json").read_text())["status"] == "ok"


@pytest.mark.parametrize("sampler", [None, {"integrator": "baoab", "unroll": 4}])
def test_sample_with_progress_gives_the_same_samples_bit_for_bit(run, sampler, caplog):
    """progress=True runs the chains in segments (a report after each): the same per-step keys, the same samples.
    SGHMC, whose initial momentum XLA simplifies with the first step, and an unrolled scan, whose groups of
    steps the segments must keep."""
    restored = jebm.restore(run[1])
    assert restored.config.training.progress is False  # the smoke preset: jebm.sample's default is no report
    plain = jebm.sample(restored, jax.random.key(4), 20, num_steps=57, sampler=sampler)
    with caplog.at_level("INFO"):
        reported = jebm.sample(restored, jax.random.key(4), 20, num_steps=57, sampler=sampler, progress=True)
    np.testing.assert_array_equal(reported, plain)
    assert "sample: step 57/57 (100%)" in caplog.text  # stderr is no terminal here: training's log line
