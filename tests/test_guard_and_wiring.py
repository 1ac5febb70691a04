"""The parts of training a wrong implementation could get past the other tests: the divergence guard's
gradient-norm branch, a rollback that recovers, the multiseed ``diverged`` flag per seed, the config-to-sampler
wiring of every sampler, integrator and mass convention, and evaluation on fresh chains rather than the PCD bank."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jebm
from conftest import load_config
from jebm import checkpoint, multiseed, train
from jebm.evaluation import chains
from jebm.samplers import factory
from jebm.samplers.chain import run_chain


def test_guard_stops_on_the_gradient_norm_alone(tmp_path):
    """Energies finite and small, only ‖∇ₓE‖ over ``guard.max_grad_norm``: the run stops, names the field,
    and writes ``summary.json`` with ``status: diverged``."""
    config = load_config("gmm_sgld", "smoke")
    config.guard.max_grad_norm = 1e-9
    with pytest.raises(train.DivergenceError, match=r"diverged at step 1: ‖∇ₓE‖ at the negatives reached .* "
                                                    r"> guard.max_grad_norm=1e-09") as err:
        train.train_and_evaluate(config, tmp_path)
    assert "|energy|" not in str(err.value) and " is nan" not in str(err.value)
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"


def _one_false_alarm(monkeypatch, at_step: int):
    """``check_divergence`` reports one problem, the first time it sees ``at_step``; real checks otherwise."""
    real, fired = train.check_divergence, []

    def check(metrics, step, guard):
        if step == at_step and not fired:
            fired.append(step)
            return f"training diverged at step {step}: injected by the test"
        return real(metrics, step, guard)

    monkeypatch.setattr(train, "check_divergence", check)
    return fired


@pytest.mark.parametrize("lr_factor", [0.5, 1.0])
def test_a_rollback_recovers_with_a_new_seed_and_the_lower_learning_rate(tmp_path, monkeypatch, lr_factor):
    """Diverge once at step 5 with a checkpoint at 4: the run goes back to step 4, then trains to the end with
    lr × ``lr_factor`` and a new chain seed. With ``lr_factor = 1`` only the seed changes, and the result must
    still differ from the uninterrupted run (a rollback that reused the old randomness would repeat it)."""
    config = load_config("gmm_sgld", "smoke")
    config.training.max_steps, config.training.checkpoint_every, config.training.log_every = 8, 4, 1
    config.guard.on_divergence, config.guard.max_rollbacks, config.guard.lr_factor = "rollback", 1, lr_factor
    clean_state, _, clean_info = train.train(config, tmp_path / "clean")
    fired = _one_false_alarm(monkeypatch, at_step=5)
    state, parts, info = train.train(config, tmp_path / "rolled")
    assert fired == [5] and info["rollbacks"] == 1 and int(state.step) == 8
    assert info["steps_run"] == 8 + 1  # steps 1-5, the rejected 5th included, then 5-8 again
    records = [json.loads(line) for line in (tmp_path / "rolled" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["rollback"]) for r in records if "rollback" in r] == [(4, 1)]
    lr = {r["step"]: r["learning_rate"] for r in records if "learning_rate" in r}
    base = config.optimizer.learning_rate
    assert lr[4] == pytest.approx(base) and lr[8] == pytest.approx(base * lr_factor)
    leaves = lambda s: np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(s.params)])  # noqa: E731
    assert np.all(np.isfinite(leaves(state)))
    assert not np.allclose(leaves(state), leaves(clean_state), rtol=1e-6, atol=0)


def test_multiseed_flags_exactly_the_seed_that_diverged(monkeypatch):
    """Seed 3 starts from parameters scaled by 1e30 (infinite energies, NaN loss); seed 0 is healthy."""
    real = train.create_train_state

    def create(config, parts):
        state = real(config, parts)
        if config.seed == 3:
            state = state.replace(params=jax.tree_util.tree_map(lambda p: p * 1e30, state.params))
        return state

    monkeypatch.setattr(train, "create_train_state", create)
    config = load_config("gmm_sgld", "smoke")
    _, _, _, info = multiseed.train_seeds(config, [0, 3])
    assert info["diverged"] == [False, True]


def _quadratic(x):
    return 0.5 * jnp.sum(x ** 2, axis=-1) * 4.0


def _sampler_cfg(**fields):
    config = load_config("gmm_sghmc")
    config.sampler.update(fields)
    return config.sampler


def _one_chain(algorithm, cfg):
    x0 = jnp.linspace(-1.0, 1.0, 8).reshape(4, 2)
    state = algorithm.init(x0, jax.random.key(1) if cfg.momentum_init == "random" else None)
    state, _ = run_chain(jax.random.key(2), algorithm, state, 5)
    return np.asarray(state.position)


SGHMC_CASES = [(i, m) for i in ("symplectic_euler", "explicit_euler", "baoab") for m in ("mass", "inverse_mass")]


@pytest.mark.parametrize("integrator,convention", SGHMC_CASES)
def test_sghmc_config_reaches_the_kernel(integrator, convention):
    """``make_sampler`` hands every SGHMC field to the kernel: the same chain as the kernel called by hand with
    M = m (``mass``) or 1/m (``inverse_mass``), and a different chain whenever one field changes."""
    cfg = _sampler_cfg(name="sghmc", step_size=0.05, friction=0.7, mass=2.0, temperature=0.5,
                       integrator=integrator, mass_convention=convention)
    got = _one_chain(factory.make_sampler(cfg, _quadratic), cfg)
    mass = 2.0 if convention == "mass" else 0.5
    by_hand = jebm.samplers.sghmc(_quadratic, 0.05, friction=0.7, mass=mass, integrator=integrator, temperature=0.5)
    np.testing.assert_array_equal(got, _one_chain(by_hand, cfg))
    for field, value in [("step_size", 0.04), ("friction", 0.9), ("mass", 3.0), ("temperature", 1.0),
                         ("integrator", next(i for i, _ in SGHMC_CASES if i != integrator)),
                         ("mass_convention", "mass" if convention == "inverse_mass" else "inverse_mass")]:
        other = _sampler_cfg(**{**cfg.to_dict(), field: value})
        assert not np.allclose(_one_chain(factory.make_sampler(other, _quadratic), other), got), field


@pytest.mark.parametrize("name", ["sgld", "mala"])
def test_first_order_config_reaches_the_kernel(name):
    cfg = _sampler_cfg(name=name, step_size=0.05, temperature=0.5, bounds=(-0.6, 0.6))
    got = _one_chain(factory.make_sampler(cfg, _quadratic), cfg)
    by_hand = getattr(jebm.samplers, name)(_quadratic, 0.05, temperature=0.5, bounds=(-0.6, 0.6))
    np.testing.assert_array_equal(got, _one_chain(by_hand, cfg))
    assert np.all(np.abs(got) <= 0.6)
    if name == "sgld":  # SGLD projects onto the box (some chains sit on its faces); MALA rejects moves out of it
        assert np.any(np.abs(got) == 0.6)
    for field, value in [("step_size", 0.04), ("temperature", 1.0), ("bounds", None)]:
        other = _sampler_cfg(**{**cfg.to_dict(), field: value})
        assert not np.allclose(_one_chain(factory.make_sampler(other, _quadratic), other), got), field


def test_evaluation_samples_fresh_chains_not_the_bank(tmp_path):
    """A PCD run's ``samples.npy`` is the sampler run from fresh noise with the evaluation's key, and none of
    its points is a bank chain (the bank holds the training chains, which evaluation must not report)."""
    config = load_config("gmm_sgld", "smoke,pcd")
    train.train_and_evaluate(config, tmp_path)
    restored = jebm.restore(tmp_path)
    state, _ = checkpoint.restore_latest(checkpoint.checkpoint_dir(tmp_path),
                                         train.create_train_state(restored.config, restored.parts))
    assert state.bank is not None
    k_short = jax.random.split(chains.eval_key(config), 4)[0]
    steps = config.eval.sampler_steps or config.sampler.num_steps
    samples = np.load(tmp_path / "samples.npy")
    fresh = jebm.sample(restored, k_short, samples.shape[0], num_steps=steps)
    np.testing.assert_allclose(samples, fresh, rtol=1e-5, atol=1e-6)
    bank = np.asarray(state.bank).reshape(-1, samples.shape[1])
    nearest = np.min(np.linalg.norm(samples[:, None, :] - bank[None, :, :], axis=-1), axis=1)
    assert np.all(nearest > 1e-4), nearest.min()
