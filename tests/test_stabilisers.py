"""The MNIST stabilisers: sampler bounds, parameter EMA, learning-rate warm-up, range report."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from conftest import load_config
from jebm import config_validation, optim, samplers, train
from jebm.evaluation.evaluators import images as image_evaluator
from jebm.samplers import base

BOX = (-1.0, 1.0)


def quadratic(x):
    return 0.5 * jnp.sum(x**2, axis=-1)


def test_sgld_bounds_project_each_step_exactly():
    energy = lambda x: jnp.sum(-3.0 * x, axis=-1)  # noqa: E731  (pushes every coordinate up)
    kernel = samplers.sgld_module.build_kernel(bounds=BOX)
    state = samplers.sgld_module.init(jnp.full((4, 3), 0.9), energy)
    new, _ = kernel(jax.random.key(0), state, energy, 0.1, 1.0)
    w = base.normal_like(jax.random.key(0), state.position)
    expected = np.clip(0.9 + 0.1 * 3.0 + np.sqrt(0.2) * np.asarray(w), *BOX)
    np.testing.assert_allclose(new.position, expected, rtol=1e-6)
    assert np.all(np.asarray(new.energy) == np.asarray(energy(new.position)))


def test_sgld_without_bounds_is_unchanged():
    algo_a = samplers.sgld(quadratic, 0.05)
    algo_b = samplers.sgld(quadratic, 0.05, bounds=None)
    x0 = jnp.linspace(-3, 3, 12).reshape(6, 2)
    a, _ = samplers.run_chain(jax.random.key(1), algo_a, algo_a.init(x0), 20)
    b, _ = samplers.run_chain(jax.random.key(1), algo_b, algo_b.init(x0), 20)
    np.testing.assert_array_equal(a.position, b.position)


@pytest.mark.parametrize("name", ["sgld", "mala"])
def test_chains_never_leave_the_box(name):
    algorithm = getattr(samplers, name)(quadratic, 0.5, bounds=(-0.5, 0.5))
    state = algorithm.init(jax.random.normal(jax.random.key(2), (500, 3)) * 3)
    state, _ = jax.jit(lambda k, s: samplers.run_chain(k, algorithm, s, 50))(jax.random.key(3), state)
    x = np.asarray(state.position)
    assert x.min() >= -0.5 and x.max() <= 0.5


def test_mala_with_bounds_samples_the_truncated_target_exactly():
    """N(0, 1) restricted to [0.2, 1.5] in 1D: MALA's rejection is exact, SGLD's projection is not."""
    low, high = 0.2, 1.5
    truth = scipy.stats.truncnorm(low, high)
    x0 = jnp.full((20_000, 1), 0.8)
    run = lambda algo: np.asarray(  # noqa: E731
        jax.jit(lambda k, s: samplers.run_chain(k, algo, s, 400))(jax.random.key(4), algo.init(x0))[0].position[:, 0])
    mala = run(samplers.mala(quadratic, 0.3, bounds=(low, high)))
    sgld = run(samplers.sgld(quadratic, 0.3, bounds=(low, high)))
    assert scipy.stats.kstest(mala, truth.cdf).statistic < 0.015
    assert abs(mala.mean() - truth.mean()) < 0.01 and abs(mala.var() - truth.var()) < 0.01
    # The projection piles mass on the faces: a point mass at each end that the target does not have.
    assert np.mean((sgld == low) | (sgld == high)) > 0.05
    assert np.mean((mala == low) | (mala == high)) == 0.0


@pytest.mark.parametrize("bounds", [(1.0, -1.0), (0.0, 0.0), "ab", (1.0,)])
def test_bad_bounds_are_rejected(bounds):
    with pytest.raises(ValueError, match="bounds"):
        samplers.sgld(quadratic, 0.1, bounds=bounds)


def test_config_bounds_validation():
    config = load_config("mnist_sgld", "smoke")
    config.sampler.bounds = (1.0, -1.0)
    with pytest.raises(config_validation.ConfigError, match=r"sampler.bounds=\(1.0, -1.0\) must be None or \(low, high\)"):
        config_validation.validate(config)


@pytest.mark.parametrize("field,value,message", [
    ("training.ema_decay", 1.0, r"training.ema_decay=1.0 must be in \[0, 1\)"),
    ("training.ema_decay", -0.1, r"training.ema_decay=-0.1 must be >= 0"),
    ("optimizer.warmup_steps", -1, r"optimizer.warmup_steps=-1 must be an integer >= 0"),
    ("eval.long_run_samples", -1, r"eval.long_run_samples=-1 must be an integer >= 0"),
    ("eval.long_run_curve", (0, 10), r"eval.long_run_curve=\(0, 10\) must be a tuple of chain lengths >= 1"),
])
def test_new_fields_bad_values(field, value, message):
    config = load_config("gmm_sgld", "smoke")
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(config_validation.ConfigError, match=message):
        config_validation.validate(config)


def test_warmup_ramps_then_follows_the_schedule():
    mult = optim.lr_multiplier("cosine", total_steps=110, warmup_steps=10)
    assert float(mult(0)) == 0.0
    assert float(mult(5)) == pytest.approx(0.5)
    assert float(mult(10)) == pytest.approx(1.0)
    assert float(mult(60)) == pytest.approx(0.5, abs=1e-6)  # half-way through the 100-step cosine
    assert float(mult(110)) == pytest.approx(0.0, abs=1e-6)
    const = optim.lr_multiplier("constant", total_steps=50, warmup_steps=4)
    assert [float(const(s)) for s in (0, 2, 4, 40)] == pytest.approx([0.0, 0.5, 1.0, 1.0])


def test_learning_rate_is_found_in_the_optimizer_state_by_name_and_scaled():
    from ml_collections import config_dict

    o = config_dict.ConfigDict(dict(name="adam", learning_rate=0.1, weight_decay=0.0, schedule="cosine",
                                    final_lr_fraction=0.1, warmup_steps=0))
    tx, multiplier = optim.training_optimizer(o, total_steps=10)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    assert float(optim.learning_rate(state, multiplier)) == pytest.approx(0.1)
    for _ in range(5):
        _, state = tx.update(params, state, params)
    at_5 = 0.1 * (0.1 + 0.45 * (1 + np.cos(np.pi * 5 / 10)))  # cosine from 1 to 0.1 over 10 steps
    assert float(optim.learning_rate(state, multiplier)) == pytest.approx(at_5, rel=1e-6)
    halved = optim.scale_learning_rate(state, 0.5)
    assert jax.tree.structure(halved) == jax.tree.structure(state)
    assert float(optim.learning_rate(halved, multiplier)) == pytest.approx(at_5 / 2, rel=1e-6)


def test_ema_tracks_the_parameters_and_evaluation_uses_it():
    config = load_config("gmm_sgld", "smoke")
    config.training.ema_decay = 0.5
    config.training.max_steps = 3
    parts = train.build_parts(config)
    state = train.create_train_state(config, parts)
    step = jax.jit(train.make_train_step(config, parts))
    expected = state.params
    for s in range(3):
        state, _ = step(state, parts.data.batch(jnp.asarray(s)))
        expected = jax.tree_util.tree_map(lambda e, p: 0.5 * e + 0.5 * p, expected, state.params)
    for got, want in zip(jax.tree_util.tree_leaves(state.ema_params), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert state.eval_params is state.ema_params
    off = train.create_train_state(load_config("gmm_sgld", "smoke"), parts)
    assert off.ema_params is None and off.eval_params is off.params


def test_range_report_counts_pixels_outside_before_clipping():
    images = np.array([[[-1.5, 0.0], [1.0, 2.0]]], np.float32)
    report = image_evaluator.range_report(images, "minus_one_one")
    assert report["fraction_outside_range"] == 0.5
    assert (report["pixel_min"], report["pixel_max"]) == (-1.5, 2.0)
    assert image_evaluator.range_report(np.clip(images, 0, 1), "zero_one")["fraction_outside_range"] == 0.0


def test_drift_noise_ratio_is_logged_and_ema_trains_with_the_donating_step(tmp_path):
    config = load_config("gmm_sgld", "smoke")
    config.training.ema_decay = 0.9  # the CLI's step donates its state: θ̄ must not share θ's buffers
    summary = train.train_and_evaluate(config, tmp_path)
    import json

    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    s = config.sampler
    for r in records:
        expected = s.step_size * r["grad_norm_run_mean"] / np.sqrt(2 * s.step_size * s.temperature * 2)
        assert r["drift_noise_ratio"] == pytest.approx(expected, rel=1e-5)
    assert summary["drift_noise"]["mean"] == pytest.approx(np.mean([r["drift_noise_ratio"] for r in records]))


# --- Langevin gradient clipping (sampler.grad_clip, IGEBM's proj_norm) ---


def test_clip_grad_norm_caps_each_chain_over_all_leaves():
    tree = {"a": jnp.array([[3.0, 0.0], [0.3, 0.0]]), "b": jnp.array([[4.0], [0.4]])}  # chain norms 5 and 0.5
    clipped = base.clip_grad_norm(tree, 2.0)
    np.testing.assert_allclose(base.per_chain_norm(clipped), [2.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(clipped["a"][0], [1.2, 0.0], rtol=1e-6)  # direction kept: 3 · 2/5
    np.testing.assert_allclose(clipped["b"][0], [1.6], rtol=1e-6)
    np.testing.assert_array_equal(clipped["a"][1], tree["a"][1])  # under the cap: untouched
    assert base.clip_grad_norm(tree, None) is tree


def test_sgld_grad_clip_step_matches_its_equation():
    energy = lambda x: 0.5 * jnp.sum(jnp.array([1.0, 100.0]) * x**2, axis=-1)  # noqa: E731
    x0 = jnp.array([[1.0, 1.0], [0.01, 0.001]])
    kernel = samplers.sgld_module.build_kernel(grad_clip=3.0)
    state = samplers.sgld_module.init(x0, energy)
    new, info = kernel(jax.random.key(0), state, energy, 0.01, 1.0)
    g = np.array([[1.0, 100.0], [0.01, 0.1]])
    norms = np.linalg.norm(g, axis=1, keepdims=True)
    g_tilde = g * np.minimum(1.0, 3.0 / norms)
    w = np.asarray(base.normal_like(jax.random.key(0), x0))
    np.testing.assert_allclose(new.position, np.asarray(x0) - 0.01 * g_tilde + np.sqrt(0.02) * w, rtol=1e-5)
    # Info reports the unclipped gradient norm at the new position.
    np.testing.assert_allclose(info.grad_norm, base.per_chain_norm(jax.grad(lambda x: energy(x).sum())(new.position)),
                               rtol=1e-5)


def test_sghmc_grad_clip_kicks_with_the_capped_gradient():
    energy = lambda x: 0.5 * 400.0 * jnp.sum(x**2, axis=-1)  # noqa: E731
    x0 = jnp.array([[1.0], [0.001]])
    kernel = samplers.sghmc_module.build_kernel("symplectic_euler", grad_clip=2.0)
    state = samplers.sghmc_module.init(x0, energy)  # zero momentum without a key
    eta, friction = 0.01, 1.0
    new, _ = kernel(jax.random.key(1), state, energy, eta, friction, 1.0, 1.0)
    w = np.asarray(base.normal_like(jax.random.key(1), state.momentum))
    g_tilde = np.array([[2.0], [0.4]])  # 400 clipped to 2; 0.4 under the cap
    r = -eta * g_tilde + np.sqrt(2 * eta * friction) * w
    np.testing.assert_allclose(new.momentum, r, rtol=1e-5)
    np.testing.assert_allclose(new.position, np.asarray(x0) + eta * r, rtol=1e-5)


@pytest.mark.parametrize("name", ["sgld", "sghmc"])
def test_grad_clip_that_never_binds_changes_nothing(name):
    kwargs = {"friction": 1.0} if name == "sghmc" else {}
    plain = getattr(samplers, name)(quadratic, 0.05, **kwargs)
    capped = getattr(samplers, name)(quadratic, 0.05, grad_clip=1e6, **kwargs)
    x0 = jnp.linspace(-3, 3, 12).reshape(6, 2)
    a, _ = samplers.run_chain(jax.random.key(1), plain, plain.init(x0), 20)
    b, _ = samplers.run_chain(jax.random.key(1), capped, capped.init(x0), 20)
    np.testing.assert_allclose(a.position, b.position, rtol=1e-6, atol=1e-7)


def test_grad_clip_changes_the_stationary_law_to_the_clipped_energy():
    """E = ½x² with ∇E capped at c is Langevin on Ẽ = ½x² (|x| ≤ c), c|x| − c²/2 beyond: heavier tails.

    Its variance, by quadrature, is far above E's 1, and SGLD with the cap at small η matches it:
    the cap breaks exactness in a way that is known in closed form.
    """
    c = 0.5
    xs = np.linspace(-40, 40, 400_001)
    e_tilde = np.where(np.abs(xs) <= c, 0.5 * xs**2, c * np.abs(xs) - 0.5 * c**2)
    p = np.exp(-e_tilde)
    var_tilde = np.sum(xs**2 * p) / np.sum(p)
    assert var_tilde > 5.0  # about 7.3: the cap matters
    algo = samplers.sgld(quadratic, 0.02, grad_clip=c)
    state = algo.init(jnp.zeros((20_000, 1)))
    run = jax.jit(lambda k, s: samplers.run_chain(k, algo, s, 3000))
    state, _ = run(jax.random.key(5), state)
    x = np.asarray(state.position[:, 0])
    assert abs(x.var() / var_tilde - 1.0) < 0.06, (x.var(), var_tilde)


def test_bad_grad_clip_is_rejected():
    with pytest.raises(ValueError, match="grad_clip"):
        samplers.sgld(quadratic, 0.1, grad_clip=-1.0)
    config = load_config("gmm_sgld", "smoke")
    config.sampler.grad_clip = 0.0
    with pytest.raises(config_validation.ConfigError, match=r"sampler.grad_clip=0.0 must be > 0"):
        config_validation.validate(config)
    config = load_config("gmm_sgld", "smoke")
    config.sampler.name = "mala"
    config.sampler.grad_clip = 1.0
    with pytest.raises(config_validation.ConfigError, match=r"sampler.grad_clip=1.0 is for sampler.name in"):
        config_validation.validate(config)
