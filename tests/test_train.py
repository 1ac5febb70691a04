"""End-to-end training on the toy: the workdir contract, CLI, determinism, resume, guard."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

import jebm
from conftest import ROOT, load_config
from jebm import api, checkpoint, samplers, train
from jebm.evaluation import chains

CONTRACT = [
    "config.json", "metrics.jsonl", "samples.npy", "samples_long.npy", "energy_grid.npz", "summary.json",
    "toy_fit.png", "toy_fit_long.png", "training_curves.png", "ais_convergence.png",
]


EMA_DECAY, REINIT = 0.8, 0.25  # training.ema_decay (not ½: d and 1 − d would coincide), reinit_fraction


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke")
    config = load_config("gmm_sghmc", "smoke,pcd")
    config.chain_init.reinit_fraction = REINIT
    config.training.ema_decay = EMA_DECAY
    summary = train.train_and_evaluate(config, workdir)
    return config, workdir, summary


def test_smoke_run_writes_the_workdir_contract(smoke_run):
    config, workdir, summary = smoke_run
    for name in CONTRACT:
        assert (workdir / name).is_file(), name
    assert any((workdir / "tensorboard").iterdir())
    samples = np.load(workdir / "samples.npy")
    assert samples.shape == (config.eval.num_samples, 2) and samples.dtype == np.float32
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6]
    for key in ("loss", "energy_pos", "energy_neg", "grad_norm", "learning_rate", "wall_time"):
        assert all(np.isfinite(r[key]) for r in records), key
    assert records[0]["learning_rate"] == pytest.approx(config.optimizer.learning_rate)
    for key in ("ks", "ks_values", "ks_long", "b_star", "b_star_values", "kl", "mode_fractions", "wall_time_s"):
        assert key in summary
    assert len(summary["ks_values"]) == config.eval.ks_repeats
    assert sum(summary["mode_fractions"]) == pytest.approx(1.0)
    assert json.loads((workdir / "config.json").read_text())["sampler"]["name"] == "sghmc"
    assert checkpoint.available_steps(workdir / "checkpoints") == [3, 6]


def test_smoke_run_reports_likelihood_and_chain_diagnostics(smoke_run):
    config, workdir, summary = smoke_run
    lk = summary["likelihood"]
    # nll = mean E(held-out) + log Z: the two estimates differ exactly by their log Z.
    assert summary["nll_ais"] - summary["nll_exact"] == pytest.approx(lk["log_z_ais"] - lk["log_z_exact"], abs=1e-9)
    # The smoke model is nearly flat on the box [-2, 2]², so log Z is close to log 16.
    assert abs(lk["log_z_exact"] - np.log(16.0)) < 1.0
    assert abs(lk["log_z_ais"] - lk["log_z_exact"]) < 5 * lk["log_z_ais_std"] + 0.05
    assert [r["num_temps"] for r in lk["ais_convergence"]] == [5, config.eval.ais_temps]
    diag = summary["long_run_diagnostics"]
    assert diag["energy_diagnostics"]["draws_per_chain"] == 10 and diag["drift_noise_ratio"] > 0
    assert summary["drift_noise"]["num_steps"] == config.sampler.num_steps


def test_learnable_beta_and_gamma_are_logged_and_reported(tmp_path):
    config = load_config("gmm_sgld", "smoke,nopcd")
    config.energy.head = "beta_gamma"
    summary = train.train_and_evaluate(config, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "beta" in r]
    assert logged and all("gamma" in r for r in logged)
    assert set(summary["head"]) == {"beta", "gamma"}
    assert summary["head"]["beta"] == pytest.approx(logged[-1]["beta"], rel=1e-6)
    assert summary["head"]["beta"] != logged[0]["beta"]  # it trains
    # TensorBoard has the scalars too.
    # (training and the final evaluation each write an event file; glob's order is arbitrary)
    events = b"".join(p.read_bytes() for p in (tmp_path / "tensorboard").glob("events.*"))
    assert b"train/beta" in events and b"train/gamma" in events


def test_mala_logs_its_acceptance_rate(tmp_path):
    """MALA's training records carry the chains' mean MH acceptance probability: near 1 for a
    tiny step, near 0 for steps that leave the box [−2, 2]² (noise sd √(2η) = 14); samplers
    without an MH test log none."""
    def rates(name, step_size, workdir):
        config = load_config("gmm_sgld", "smoke,nopcd")
        config.sampler.name = name
        config.sampler.step_size = step_size
        config.sampler.bounds = (-2.0, 2.0)
        _, _, info = train.train(config, workdir)
        return [r.get("acceptance_rate") for r in info["records"] if "loss" in r]

    small, large = rates("mala", 1e-5, tmp_path / "small"), rates("mala", 100.0, tmp_path / "large")
    assert small and all(a is not None and 0.9 < a <= 1.0 for a in small)
    assert large and all(a is not None and 0.0 <= a < 0.05 for a in large)
    assert all(a is None for a in rates("sgld", 1e-2, tmp_path / "sgld"))


@pytest.mark.parametrize("field,value,message", [
    ("beta_learnable", False, r"energy.beta_learnable=False needs energy.beta_init"),
    ("beta_init", 1.0, r"energy.beta_learnable / energy.beta_init apply to energy.head in \['beta', 'beta_gamma'\]"),
])
def test_bad_beta_fields_are_rejected(field, value, message):
    from jebm import config_validation

    config = load_config("gmm_sgld", "smoke")
    config.energy[field] = value
    with pytest.raises(config_validation.ConfigError, match=message):
        config_validation.validate(config)


def test_train_and_evaluate_validates_the_config_before_writing(tmp_path):
    from jebm import config_validation

    config = load_config("gmm_sgld", "smoke")
    config.sampler.step_size = -0.1
    with pytest.raises(config_validation.ConfigError, match=r"sampler.step_size=-0.1 must be > 0"):
        train.train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_energy_grid_layout_is_energy_of_xs_j_ys_i(smoke_run):
    config, workdir, _ = smoke_run
    grid = np.load(workdir / "energy_grid.npz")
    xs, ys, energy = grid["xs"], grid["ys"], grid["energy"]
    assert energy.shape == (len(ys), len(xs)) == (config.eval.grid_size,) * 2
    parts = train.build_parts(config)
    state, _ = checkpoint.restore_latest(workdir / "checkpoints", train.create_train_state(config, parts))
    i, j = 3, 17
    e = parts.model.apply(state.eval_params, jnp.asarray([[xs[j], ys[i]]], jnp.float32))
    np.testing.assert_allclose(energy[i, j], float(e[0]), rtol=1e-5, atol=1e-6)


def test_same_seed_same_results_bit_for_bit(tmp_path):
    config = load_config("gmm_sgld", "smoke")
    a = train.train_and_evaluate(config, tmp_path / "a")
    b = train.train_and_evaluate(config, tmp_path / "b")
    np.testing.assert_array_equal(np.load(tmp_path / "a/samples.npy"), np.load(tmp_path / "b/samples.npy"))
    strip = lambda p: [{k: v for k, v in json.loads(l).items() if k != "wall_time"} for l in p.read_text().splitlines()]  # noqa: E731
    assert strip(tmp_path / "a/metrics.jsonl") == strip(tmp_path / "b/metrics.jsonl")
    assert a["ks_values"] == b["ks_values"] and a["kl"] == b["kl"]


def _cli(workdir, *extra, config="configs/gmm_sgld.py:smoke"):
    env = dict(os.environ, JEBM_COMPILATION_CACHE="")
    return [sys.executable, "-m", "jebm.main", f"--config={config}", f"--workdir={workdir}", *extra], env


@pytest.mark.slow
def test_cli_overrides_and_presets(tmp_path):
    cmd, env = _cli(tmp_path, "--config.sampler.step_size=0.005", "--config.training.max_steps=2",
                    config="configs/gmm_sgld.py:smoke,quadratic")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["sampler"]["step_size"] == 0.005 and saved["energy"]["head"] == "quadratic"
    assert (tmp_path / "summary.json").is_file()


@pytest.mark.slow
def test_kill_and_resume_is_bit_identical(tmp_path):
    """A run SIGKILLed mid-way and re-run with the same --workdir ends where an uninterrupted run ends."""
    extra = ["--config.training.max_steps=300", "--config.training.checkpoint_every=4",
             "--config.training.log_every=10", "--config.eval.long_run_steps=5"]
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    cmd, env = _cli(full_dir, *extra, config="configs/gmm_sghmc.py:smoke,pcd")
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)

    cmd, env = _cli(killed_dir, *extra, config="configs/gmm_sghmc.py:smoke,pcd")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not any(s >= 40 for s in checkpoint.available_steps(killed_dir / "checkpoints")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = checkpoint.available_steps(killed_dir / "checkpoints")
    assert killed_at and killed_at[-1] < 300, f"the run was not interrupted mid-way: {killed_at}"
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    # It resumed from the last checkpoint the killed run wrote, and ran only the remaining steps
    # (a restart from scratch would be bit-identical too: randomness depends only on the step).
    summary = json.loads((killed_dir / "summary.json").read_text())
    assert summary["resumed_from"] == killed_at[-1] and summary["steps_run"] == 300 - killed_at[-1]
    assert json.loads((full_dir / "summary.json").read_text())["steps_run"] == 300

    read = lambda d: serialization.msgpack_restore((d / "checkpoints/ckpt_300.msgpack").read_bytes())  # noqa: E731
    full, resumed = read(full_dir), read(killed_dir)
    for a, b in zip(jax.tree_util.tree_leaves(full), jax.tree_util.tree_leaves(resumed)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.load(full_dir / "samples.npy"), np.load(killed_dir / "samples.npy"))
    losses = lambda d: [(r["step"], r["loss"]) for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines())]  # noqa: E731
    assert losses(full_dir) == losses(killed_dir)


def test_divergence_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    config = load_config("gmm_sgld", "smoke")
    config.training.max_steps = 6
    config.training.checkpoint_every = 2
    # Pretend any |E| above 1e-9 is a blow-up: it triggers at the first step after the start.
    config.guard.max_abs_energy = 1e-9
    with pytest.raises(train.DivergenceError, match=r"diverged at step 1: \|energy\| reached .* > guard.max_abs_energy") as err:
        train.train_and_evaluate(config, tmp_path)
    assert "step_size" in str(err.value) and "learning_rate" in str(err.value) and "l2_energy" in str(err.value)


def test_divergence_names_nan_and_keeps_checkpoint(tmp_path):
    config = load_config("gmm_sgld", "smoke")
    config.training.max_steps = 20
    config.training.checkpoint_every = 1
    train.train_and_evaluate(config, tmp_path)  # a good run: checkpoints up to step 20
    before = (tmp_path / "checkpoints/ckpt_20.msgpack").read_bytes()
    (tmp_path / "training_curves.png").unlink()  # the good run's: the diverged run must draw its own
    config.training.max_steps = 30
    config.sampler.step_size = 1e30  # the chains overflow on the next step
    with pytest.raises(train.DivergenceError, match=r"diverged at step 21: .*(inf|nan|NaN/Inf).*last good checkpoint \(step 20\)"):
        train.train_and_evaluate(config, tmp_path)
    assert (tmp_path / "checkpoints/ckpt_20.msgpack").read_bytes() == before
    # summary.json now says why the run stopped (the good run's summary is replaced), and the curves stay.
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["step"] == 21 and "last good checkpoint (step 20)" in summary["reason"]
    assert [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()][-1] == 20
    assert (tmp_path / "training_curves.png").exists()


def test_rollback_policy_is_bounded_and_logged(tmp_path):
    config = load_config("gmm_sgld", "smoke")
    config.training.max_steps = 4
    config.training.checkpoint_every = 1
    train.train_and_evaluate(config, tmp_path)  # checkpoints to step 4
    config.training.max_steps = 8
    config.guard.max_abs_energy = 1e-9
    config.guard.on_divergence = "rollback"
    config.guard.max_rollbacks = 2
    with pytest.raises(train.DivergenceError, match="diverged at step 5"):
        train.train_and_evaluate(config, tmp_path)
    records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["rollback"] for r in records if "rollback" in r] == [1, 2]


def test_cosine_schedule_decays_the_logged_learning_rate(tmp_path):
    config = load_config("gmm_sgld", "smoke")
    config.optimizer.schedule = "cosine"
    config.optimizer.final_lr_fraction = 0.1
    state, parts, info = train.train(config, tmp_path)
    lrs = [r["learning_rate"] for r in info["records"]]  # logged at steps 2, 4, 6 of 6
    base = config.optimizer.learning_rate
    # The rate used by update s (0-based) is base * (0.1 + 0.9 * (1 + cos(pi s / 6)) / 2).
    expected = [base * (0.1 + 0.45 * (1 + np.cos(np.pi * s / 6))) for s in (1, 3, 5)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-5)


def test_mode_eval_reproduces_the_runs_own_evaluation(smoke_run, tmp_path):
    """``--mode=eval`` re-evaluates the newest checkpoint from config.json alone: the same numbers."""
    import shutil

    config, workdir, summary = smoke_run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    (copy / "samples.npy").unlink()
    again = api.evaluate_workdir(copy)
    # It samples with the moving average θ̄, as the run's own evaluation did (test_every_evaluation_...).
    np.testing.assert_array_equal(np.load(copy / "samples.npy"), np.load(workdir / "samples.npy"))
    assert again["checkpoint_step"] == 6
    for key in ("ks", "ks_long", "kl", "nll_exact", "nll_ais"):
        assert again[key] == summary[key], key
    assert json.loads((copy / "eval_6.json").read_text())["kl"] == summary["kl"]
    with pytest.raises(FileNotFoundError, match="no config.json"):
        api.evaluate_workdir(tmp_path / "empty")


# ---------------------------------------------------------------- wiring, against computations by hand
# Each test below recomputes the expected effect outside the code under test, from the step's own key
# and inputs (the sampler built by its public constructor, the loss and the moving average written
# out), and compares values: a comparison of one run with another could not see a bug both share.


def _raw_checkpoint(workdir, step):
    """A checkpoint's fields as stored (a dict of arrays), read without the TrainState that interprets them."""
    return serialization.msgpack_restore((workdir / "checkpoints" / f"ckpt_{step}.msgpack").read_bytes())


def _leaves(tree):
    return [np.asarray(x, np.float64) for x in jax.tree_util.tree_leaves(tree)]


def _step_by_hand(config, parts):
    """One training step written out and jitted once: which chains, the sampler's output, the loss's pieces."""
    s, n = config.sampler, parts.num_chains
    mass = s.mass if s.mass_convention == "mass" else 1.0 / s.mass

    @jax.jit
    def step(params, bank, rng, step, batch):
        k_init, k_momentum, k_chain = jax.random.split(jax.random.fold_in(rng, step), 3)
        x0, idx, reinit = samplers.bank_draw(k_init, bank, n, parts.noise_fn, config.chain_init.reinit_fraction)
        energy = lambda x: parts.model.apply(params, x)  # noqa: E731
        algorithm = samplers.sghmc(energy, s.step_size, friction=s.friction, mass=mass, integrator=s.integrator,
                                   temperature=s.temperature)
        x_neg = samplers.run_chain(k_chain, algorithm, algorithm.init(x0, k_momentum), s.num_steps)[0].position

        def cd(p):  # Algorithm 1's loss, mean E(data) − mean E(samples), written out
            return jnp.mean(parts.model.apply(p, batch)) - jnp.mean(parts.model.apply(p, x_neg))

        grads = jax.grad(cd)(params)
        grad_x = jax.grad(lambda x: jnp.sum(energy(x)))(x_neg)
        return {
            "x_neg": x_neg, "idx": idx, "reinit": reinit,
            "energy_pos": jnp.mean(parts.model.apply(params, batch)), "energy_neg": jnp.mean(energy(x_neg)),
            "param_grad_norm": jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree_util.tree_leaves(grads))),
            "grad_norm": jnp.mean(jnp.linalg.norm(grad_x, axis=1)),
        }

    return lambda state, batch: jax.tree_util.tree_map(
        np.asarray, step(state.params, state.bank, state.rng, state.step, batch))


@pytest.fixture(scope="module")
def one_step(smoke_run):
    """The smoke run's step 3 → 4 taken again by the jitted ``train_step``, and by hand."""
    config, workdir, _ = smoke_run
    parts = train.build_parts(config)
    before = checkpoint.restore(workdir / "checkpoints" / "ckpt_3.msgpack", train.create_train_state(config, parts))
    step_fn = jax.jit(train.make_train_step(config, parts))
    batch = parts.data.batch(before.step)
    after, step_metrics = step_fn(before, batch)
    by_hand = _step_by_hand(config, parts)
    return config, parts, before, after, step_metrics, by_hand(before, batch), step_fn, by_hand


def test_pcd_writes_the_sampler_output_back_into_the_drawn_rows(one_step):
    """After one jitted step the drawn rows of the bank hold exactly the chains the sampler returned,
    and every other row is unchanged."""
    _, _, before, after, _, expected, _, _ = one_step
    old, new = np.asarray(before.bank.position), np.asarray(after.bank.position)
    np.testing.assert_allclose(new[expected["idx"]], expected["x_neg"], rtol=1e-5, atol=1e-6)
    others = np.setdiff1d(np.arange(len(old)), expected["idx"])
    assert len(others) == len(old) - len(expected["idx"]) > 0
    np.testing.assert_array_equal(new[others], old[others])
    assert np.all(np.any(new[expected["idx"]] != old[expected["idx"]], axis=1))


def test_the_moving_average_takes_one_step(one_step):
    """θ̄' = d·θ̄ + (1 − d)·θ' after the step, with d = ``training.ema_decay`` and θ' the new parameters."""
    _, _, before, after, _, _, _, _ = one_step
    for got, old, new in zip(_leaves(after.ema_params), _leaves(before.ema_params), _leaves(after.params)):
        np.testing.assert_allclose(got, EMA_DECAY * old + (1 - EMA_DECAY) * new, rtol=1e-6, atol=1e-8)
    assert not all(np.allclose(a, b) for a, b in zip(_leaves(after.ema_params), _leaves(after.params)))


def test_logged_metrics_equal_a_recomputation(smoke_run, one_step):
    """The step's metrics, and metrics.jsonl's record of the same step, are the loss, energies and gradient
    norms recomputed from its parameters, bank and batch; the loss is exactly energy_pos − energy_neg (the
    CD loss without the L2 term)."""
    _, workdir, _ = smoke_run
    _, _, before, _, step_metrics, expected, _, _ = one_step
    records = {r["step"]: r for r in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())}
    for record in (records[int(before.step) + 1], {k: float(v) for k, v in step_metrics.items()}):
        for name in ("energy_pos", "energy_neg", "param_grad_norm", "grad_norm"):
            assert record[name] == pytest.approx(float(expected[name]), rel=1e-4, abs=1e-6), name
        loss = float(expected["energy_pos"] - expected["energy_neg"])
        assert record["loss"] == pytest.approx(loss, rel=1e-4, abs=1e-6)
        assert record["loss"] == pytest.approx(record["energy_pos"] - record["energy_neg"], rel=1e-5, abs=1e-7)


def test_reinitialisation_comes_back_at_the_configured_fraction(one_step):
    """A bank planted at 50 (far outside the noise box [−2, 2]²), one jitted step at each of 30 step numbers:
    exactly the drawn rows the step's own key marks come back inside the box, and they are the configured
    fraction of the 480 draws (standard error 2%)."""
    _, _, before, _, _, _, step_fn, by_hand = one_step
    planted = before.replace(bank=samplers.PersistentBank(jnp.full_like(before.bank.position, 50.0)))
    batch = jnp.zeros((16, 2), jnp.float32)
    inside_count = draws = 0
    for s in range(3, 33):
        state = planted.replace(step=jnp.asarray(s, jnp.int32))
        expected = by_hand(state, batch)
        new, _ = step_fn(state, batch)
        inside = np.all(np.abs(np.asarray(new.bank.position)) < 10.0, axis=1)
        np.testing.assert_array_equal(np.flatnonzero(inside), np.sort(expected["idx"][expected["reinit"]]))
        inside_count, draws = inside_count + inside.sum(), draws + len(expected["idx"])
    assert abs(inside_count / draws - REINIT) < 0.08, (inside_count, draws)


def test_every_evaluation_path_uses_the_moving_average(smoke_run):
    """With ``training.ema_decay`` set, the final evaluation's samples, ``jebm.restore``'s parameters and
    ``jebm.sample`` use the checkpoint's stored θ̄, by value, and samples with the raw θ differ (so the check
    tells the two apart). ``--mode=eval``: test_mode_eval_reproduces_the_runs_own_evaluation."""
    config, workdir, _ = smoke_run
    stored = _raw_checkpoint(workdir, config.training.max_steps)
    restored = jebm.restore(workdir)
    ema = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(restored.params),
                                       jax.tree_util.tree_leaves(stored["ema_params"]))
    raw = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(restored.params),
                                       jax.tree_util.tree_leaves(stored["params"]))
    for got, want in zip(_leaves(restored.params), _leaves(ema)):
        np.testing.assert_array_equal(got, want)
    k_short = jax.random.split(chains.eval_key(config), 4)[0]
    n, steps = config.eval.num_samples, chains.eval_sampler_steps(config)
    with_ema = chains.fresh_samples(config, restored.parts, ema, k_short, n, steps)
    with_raw = chains.fresh_samples(config, restored.parts, raw, k_short, n, steps)
    assert not np.array_equal(with_ema, with_raw)
    np.testing.assert_array_equal(np.load(workdir / "samples.npy"), with_ema)
    key = jax.random.key(5)
    np.testing.assert_array_equal(jebm.sample(restored, key, 32, num_steps=5),
                                  chains.fresh_samples(config, restored.parts, ema, key, 32, 5))
