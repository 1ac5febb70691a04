"""Direct known-answer tests of the small public functions that were reached only through their callers,
and the check that every public function is named by some test (tests/untested_public.py)."""

import importlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ml_collections import config_dict

from conftest import ROOT, load_config
from jebm import config_lib, config_validation, losses, optim, sharding, train
from jebm.data import pipeline
from jebm.energies import heads, networks
from jebm.evaluation import chains, classifier, likelihood, metrics, plots, quality
from jebm.evaluation.evaluators import images as image_evaluator
from jebm.evaluation.evaluators import likelihood_scores
from jebm.samplers import base, factory, registry


def test_every_public_function_is_named_by_a_test():
    """tests/untested_public.py prints nothing: no public function of jebm goes unnamed by the tests
    (a static search; its docstring says what that can and cannot see)."""
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "untested_public.py")], capture_output=True,
                          text=True, check=True)
    assert done.stdout == "", done.stdout


# ---------------------------------------------------------------- configs and presets


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "configs").glob("*.py") if p.stem != "__init__"))
def test_every_preset_of_every_config_applies_and_validates(name):
    """Each preset alone on its config gives a valid config (config_validation.validate raises otherwise)."""
    module = importlib.import_module(f"jebm.configs.{name}")
    for preset in module.PRESETS:
        config_validation.validate(load_config(name, preset))


def test_apply_presets_in_order_and_rejects_unknown_names():
    c = config_dict.ConfigDict({"x": 0})
    presets = {"one": lambda c: setattr(c, "x", 1), "two": lambda c: setattr(c, "x", c.x * 10 + 2)}
    assert config_lib.apply_presets(c, "one,two", presets).x == 12
    assert config_lib.apply_presets(config_dict.ConfigDict({"x": 0}), None, presets, default="two").x == 2
    with pytest.raises(ValueError, match=r"config preset 'three' is not one of \['one', 'two'\]"):
        config_lib.apply_presets(c, "three", presets)


def test_shared_presets_set_their_fields():
    c = config_lib.base_config()
    config_lib.torch_init(c)
    assert c.energy.param_init == "torch"
    config_lib.lecun_init(c)
    assert c.energy.param_init == "lecun_normal"
    config_lib.eq20(c)
    assert (c.energy.head, c.energy.head_offset) == ("quadratic", 0.0)
    config_lib.beta_head(c)
    assert c.energy.head == "beta"
    config_lib.gamma_head(c)
    assert c.energy.head == "gamma"


# ---------------------------------------------------------------- losses and optimizers


def test_cd_loss_and_make_loss():
    e_pos, e_neg = jnp.array([1.0, 3.0]), jnp.array([-1.0, 0.0])
    assert float(losses.cd_loss(e_pos, e_neg)) == pytest.approx(2.0 - (-0.5))
    # α(mean E⁺² + mean E⁻²) = 0.1 (5 + 0.5)
    assert float(losses.cd_loss(e_pos, e_neg, 0.1)) == pytest.approx(2.5 + 0.55)
    assert float(losses.make_loss("cd", 0.1)(e_pos, e_neg)) == pytest.approx(3.05)
    with pytest.raises(ValueError, match=r"loss.name='bad' is not one of \['cd'\]"):
        losses.make_loss("bad")


def test_make_optimizer_steps_and_weight_decay():
    params, grads = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([0.5, 0.5])}

    def one_update(tx):
        updates, _ = tx.update(grads, tx.init(params), params)
        return np.asarray(optax.apply_updates(params, updates)["w"])

    np.testing.assert_allclose(one_update(optim.make_optimizer("sgd", 0.1)), [0.95, -2.05])
    # torch's SGD weight decay: the gradient gets + λθ before the step.
    np.testing.assert_allclose(one_update(optim.make_optimizer("sgd", 0.1, 0.5)), [0.9, -1.95])
    # Adam's first step moves every coordinate by the learning rate against the gradient's sign.
    np.testing.assert_allclose(one_update(optim.make_optimizer("adam", 0.1)), [0.9, -2.1], rtol=1e-5)
    # AdamW decouples the decay: θ − lr(sign step + λθ).
    np.testing.assert_allclose(one_update(optim.make_optimizer("adamw", 0.1, 0.5)), [0.85, -2.0], rtol=1e-5)
    with pytest.raises(ValueError, match=r"optimizer.name='lbfgs' is not one of"):
        optim.make_optimizer("lbfgs", 0.1)


# ---------------------------------------------------------------- data and energies


def test_dataset_names_lists_builtins_and_registered():
    assert set(pipeline.DATASETS) <= set(pipeline.dataset_names())
    pipeline.register("jebm_test_points", lambda cfg: np.zeros((10, 2), np.float32))
    try:
        assert "jebm_test_points" in pipeline.dataset_names()
    finally:
        pipeline._REGISTERED.pop("jebm_test_points", None)


def test_unit_range_maps():
    x = np.array([-1.0, 0.0, 1.0])
    np.testing.assert_allclose(pipeline.to_unit_range(x, "minus_one_one"), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(pipeline.to_unit_range(x, "zero_one"), x)
    assert image_evaluator.data_range("minus_one_one") == (-1.0, 1.0) and image_evaluator.data_range("zero_one") == (0.0, 1.0)
    images = np.array([[[-1.0] * 28] * 28, [[np.nan] + [1.0] * 27] * 28])
    out, bad = classifier.to_unit_interval(images, "minus_one_one")
    assert out.shape == (2, 28, 28, 1) and bad == 1
    assert out[0].max() == 0.0 and out[1, 0, 0, 0] == 0.0 and out[1, 0, 1, 0] == 1.0
    raw, _ = classifier.to_unit_interval(np.full((1, 28, 28), 255, np.uint8), "minus_one_one")
    assert raw.max() == 1.0
    with pytest.raises(ValueError, match="Unknown scale 'bad'"):
        classifier.to_unit_interval(images, "bad")


def test_head_energies_and_offsets():
    u, x = jnp.array([1.0, -2.0]), jnp.ones((2, 2, 2))
    np.testing.assert_allclose(heads.quadratic_energy(u), [0.5, 2.0])
    np.testing.assert_allclose(heads.beta_energy(u, 0.5), [1.25, -1.0])
    # γ√n‖x‖² with n = 4 elements, ‖x‖² = 4: 0.1 · 2 · 4 = 0.8
    np.testing.assert_allclose(heads.gamma_energy(u, x, 0.1), [1.8, -1.2], rtol=1e-6)
    assert heads.resolve_head_offset("quadratic", None) == 1.0 and heads.resolve_head_offset("linear", None) == 0.0
    assert heads.resolve_head_offset("quadratic", 0.25) == 0.25
    with pytest.raises(ValueError, match=r"head='cubic' is not one of"):
        heads.resolve_head_offset("cubic", None)


def test_network_helpers():
    with pytest.raises(ValueError, match=r"energy.name='x' is not one of \['a', 'b'\]"):
        networks.check_choice("energy.name", "x", ("b", "a"))
    networks.check_choice("energy.name", "a", ("a",))
    assert networks.flatten_examples(jnp.zeros((3, 4, 5))).shape == (3, 20)
    assert networks.as_nhwc(jnp.zeros((2, 28, 28))).shape == (2, 28, 28, 1)
    assert networks.as_nhwc(jnp.zeros((2, 28, 28, 1))).shape == (2, 28, 28, 1)
    with pytest.raises(ValueError):
        networks.as_nhwc(jnp.zeros((2, 1, 28, 28)))
    kernel = networks.output_kernel_init(0.01)(jax.random.key(0), (4000, 1))
    assert float(jnp.std(kernel)) == pytest.approx(0.01, rel=0.05)
    assert networks.output_kernel_init(None) is networks.nn.linear.default_kernel_init


def test_spectrally_normalized_dense_has_unit_spectral_norm():
    import flax.linen as nn

    assert networks.spectrally_normalized(nn.Dense, 0) is nn.Dense
    layer = networks.spectrally_normalized(nn.Dense, 50)(features=3, use_bias=False)
    params = layer.init(jax.random.key(0), jnp.zeros((1, 5)))
    kernel = np.asarray(params["params"]["kernel"])
    # The layer applies W/σ(W): its output on the top right-singular vector has norm 1.
    _, s, vt = np.linalg.svd(kernel.T)
    out = layer.apply(params, jnp.asarray(vt[:1]))
    assert float(jnp.linalg.norm(out)) == pytest.approx(1.0, rel=1e-3)


# ---------------------------------------------------------------- sampler helpers


def test_per_chain_reductions_and_tree_algebra():
    tree = {"a": jnp.array([[1.0, 2.0], [3.0, 4.0]]), "b": jnp.array([[[1.0]], [[-2.0]]])}
    np.testing.assert_allclose(base.per_chain_sum(tree), [4.0, 5.0])
    np.testing.assert_allclose(base.per_chain_sq_norm(tree), [6.0, 29.0])
    np.testing.assert_allclose(base.tree_axpy(2.0, tree, tree)["a"], 3 * tree["a"])
    picked = base.tree_where(jnp.array([True, False]), tree, jax.tree_util.tree_map(jnp.zeros_like, tree))
    np.testing.assert_allclose(picked["a"], [[1.0, 2.0], [0.0, 0.0]])
    np.testing.assert_allclose(picked["b"], [[[1.0]], [[0.0]]])
    np.testing.assert_allclose(base.clip_to_bounds(tree, (-1.0, 1.5))["a"], [[1.0, 1.5], [1.5, 1.5]])
    assert base.clip_to_bounds(tree, None) is tree


def test_sampler_argument_checks_name_the_field():
    base.check_positive("step_size", 0.1)
    base.check_positive("step_size", jnp.asarray(-1.0))  # traced or array values pass through
    with pytest.raises(ValueError, match=r"step_size must be > 0, got 0"):
        base.check_positive("step_size", 0)
    with pytest.raises(ValueError, match=r"integrator='x' is not one of \['a', 'b'\]"):
        base.check_choice("integrator", "x", ("b", "a"))
    assert base.check_grad_clip(None) is None and base.check_grad_clip(2) == 2.0
    for bad in (0.0, -1.0, float("inf"), "x"):
        with pytest.raises(ValueError, match="grad_clip must be None or"):
            base.check_grad_clip(bad)
    assert base.check_bounds(None) is None and base.check_bounds([-1, 1]) == (-1.0, 1.0)
    for bad in ((1.0, -1.0), (0.0,), "ab"):
        with pytest.raises(ValueError, match="bounds must"):
            base.check_bounds(bad)


def test_effective_mass_and_noise_init():
    assert factory.effective_mass(2.0, "mass") == 2.0 and factory.effective_mass(2.0, "inverse_mass") == 0.5
    with pytest.raises(ValueError, match=r"sampler.mass_convention='m' is not one of"):
        factory.effective_mass(2.0, "m")
    cfg = config_lib.base_config().chain_init
    cfg.low, cfg.high = 1.0, 3.0
    x = np.asarray(factory.make_noise_init(cfg, (2, 3))(jax.random.key(0), 5000))
    assert x.shape == (5000, 2, 3) and x.min() >= 1.0 and x.max() < 3.0
    assert x.mean() == pytest.approx(2.0, abs=0.03)
    cfg.name, cfg.mean, cfg.std = "gaussian", -1.0, 0.5
    x = np.asarray(factory.make_noise_init(cfg, (2,))(jax.random.key(0), 20000))
    assert x.mean() == pytest.approx(-1.0, abs=0.02) and x.std() == pytest.approx(0.5, rel=0.03)


def test_make_sampler_passes_a_registered_constructor_the_config_fields_it_takes():
    seen = {}

    def constructor(energy_fn, step_size, *, temperature=1.0):
        seen.update(step_size=step_size, temperature=temperature)
        return registry.sgld(energy_fn, step_size, temperature=temperature)

    registry.register("jebm_test_sampler", constructor)
    try:
        cfg = load_config("gmm_sgld").sampler
        cfg.name, cfg.step_size, cfg.temperature = "jebm_test_sampler", 0.03, 0.7
        factory.make_sampler(cfg, lambda x: jnp.sum(x ** 2, axis=1))
        assert seen == {"step_size": 0.03, "temperature": 0.7}
        cfg.bounds = (-1.0, 1.0)
        with pytest.raises(ValueError, match="takes no 'bounds'"):
            factory.make_sampler(cfg, lambda x: jnp.sum(x ** 2, axis=1))
    finally:
        registry.unregister("jebm_test_sampler")


# ---------------------------------------------------------------- evaluation helpers


def test_grid_points_layout_and_effective_sample_size():
    pts = metrics.grid_points([0.0, 1.0, 2.0], [10.0, 20.0])
    np.testing.assert_array_equal(pts, [[0, 10], [1, 10], [2, 10], [0, 20], [1, 20], [2, 20]])
    assert likelihood.effective_sample_size(np.zeros(8)) == pytest.approx(8.0)
    assert likelihood.effective_sample_size([0.0, -np.inf, -np.inf]) == pytest.approx(1.0)
    # Weights 1 and 3: (1 + 3)² / (1 + 9) = 1.6
    assert likelihood.effective_sample_size(np.log([1.0, 3.0])) == pytest.approx(1.6)


def test_box_kde_centres():
    u = likelihood.box_kde_centres(np.array([[0.0, 0.5], [2.0, -2.0]]), box=2.0, margin=0.01)
    np.testing.assert_allclose(u, [[0.0, np.arctanh(0.25)], [np.arctanh(0.99), -np.arctanh(0.99)]], rtol=1e-6)
    with pytest.raises(ValueError, match="must lie in the box"):
        likelihood.box_kde_centres(np.array([[3.0]]), box=2.0)
    with pytest.raises(ValueError, match="centre_margin"):
        likelihood.box_kde_centres(np.array([[0.0]]), box=2.0, margin=1.0)


def test_long_run_lengths():
    config = config_lib.base_config()
    config.eval.long_run_curve, config.eval.long_run_steps = (100, 3000, 300), 1000
    assert chains.long_run_lengths(config) == [100, 300, 1000]


# ---------------------------------------------------------------- training helpers


def test_drift_noise_summary_names_the_regime():
    records = [{"drift_noise_ratio": r} for r in (0.001, 0.002, 0.5)] + [{"loss": 1.0}]
    from jebm.evaluation import diagnostics

    summary = diagnostics.drift_noise_summary(records, num_steps=10)
    assert summary["regime"] == "random_walk" and summary["fraction_below"] == pytest.approx(2 / 3)
    assert summary["median"] == pytest.approx(0.002) and summary["num_steps"] == 10
    assert diagnostics.drift_noise_summary([{"drift_noise_ratio": 50.0}], 5)["regime"] == "gradient_descent"
    assert diagnostics.drift_noise_summary([{"drift_noise_ratio": 1.0}], 5)["regime"] == "balanced"
    assert diagnostics.drift_noise_summary([{"loss": 1.0}], 5) == {}


def test_backbone_options_and_describe_energy():
    from jebm.energies import options

    config = load_config("gmm_sgld")
    assert options.backbone_options(config.energy) == {"param_init": "torch"}
    config.energy.hidden, config.energy.out_init_std = [8, 4], 0.01
    assert options.backbone_options(config.energy) == {"param_init": "torch", "hidden": (8, 4), "out_init_std": 0.01}
    assert options.describe(config.energy) == f"{config.energy.name} with head {config.energy.head}"
    config.energy.head = "none"

    class Mine:
        pass

    assert options.describe(config.energy, Mine()) == "user module Mine"
    config.energy.name, config.energy.channels = "nonlocal_cnn", 8
    config.energy.hidden, config.energy.param_init = None, ""
    assert options.backbone_options(config.energy) == {"out_init_std": 0.01, "conv_impl": "im2col", "channels": 8}


def test_host_local_and_check_divisible():
    tree = {"a": jnp.arange(3.0), "b": 2}
    out = sharding.host_local(tree)
    assert isinstance(out["a"], np.ndarray) and out["a"].tolist() == [0.0, 1.0, 2.0]
    mesh = sharding.make_mesh(jax.devices()[:1])
    sharding.check_divisible(mesh, **{"training.batch_size": 7})
    fake = type("Mesh", (), {"devices": np.zeros(2)})()
    with pytest.raises(ValueError, match=r"training.batch_size=7 must be divisible by the 2 devices"):
        sharding.check_divisible(fake, **{"training.batch_size": 7})


def test_mesh_shardings_put_the_bank_on_the_data_axis():
    mesh = sharding.make_mesh(jax.devices()[:1])
    assert sharding.batch_sharded(mesh).spec == jax.sharding.PartitionSpec("data")
    from jebm.samplers import PersistentBank

    state = train.TrainState(step=jnp.zeros((), jnp.int32), params={"w": jnp.zeros(3)}, opt_state=(),
                             bank=PersistentBank(jnp.zeros((8, 2))), rng=jnp.zeros(2, jnp.uint32))
    shardings = sharding.state_shardings(state, mesh)
    assert shardings.bank.position.spec == jax.sharding.PartitionSpec("data")
    assert all(s.spec == jax.sharding.PartitionSpec() for s in jax.tree_util.tree_leaves(shardings.params))


def test_training_images_and_ais_options_read_their_fields():
    from jebm import multiseed
    from jebm.data import mnist

    config = load_config("mnist_sgld", "smoke")
    data = mnist.MnistData(np.zeros((5, 28, 28), np.uint8), np.arange(5, dtype=np.uint8),
                           np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.uint8), source="test")
    config.dataset.max_train_images = 3
    assert image_evaluator.training_images(config, data)[1].tolist() == [0, 1, 2]
    config.dataset.max_train_images = 0
    assert len(image_evaluator.training_images(config, data)[0]) == 5
    config.eval.ais_base, config.sampler.temperature = "uniform", 0.5
    options = likelihood_scores.ais_options(config, 1.0)
    assert options.base == "uniform" and options.base_scale == 1.0 and options.temperature == 0.5
    assert options.kernel == "mala" and options.centres is None
    config.eval.ais_base = "box_kde"
    options = likelihood_scores.ais_options(config, 1.0, centres=np.zeros((2, 784)))
    assert options.base == "box_kde" and options.base_scale == config.eval.ais_kde_scale and options.box == 1.0
    assert options.centre_margin == config.eval.ais_kde_margin and options.centres.shape == (2, 784)
    params = [{"params": {"energy_head": {"beta": 0.5}}}, {"params": {"energy_head": {"beta": -1.0}}}]
    assert multiseed.head_parameters(params) == {"beta": [0.5, -1.0]}
    assert multiseed.head_parameters([{"params": {}}]) == {}


def test_read_png_rgb_round_trip(tmp_path):
    import matplotlib.image

    grey = np.linspace(0, 1, 12).reshape(3, 4)
    matplotlib.image.imsave(tmp_path / "g.png", grey, cmap="gray", vmin=0, vmax=1)
    rgb = np.asarray(plots.read_png_rgb(tmp_path / "g.png"))
    assert rgb.shape == (3, 4, 3)
    np.testing.assert_allclose(rgb[..., 0], grey, atol=1 / 255 + 1e-6)


# ---------------------------------------------------------------- the homes of the loop's former plumbing


def test_energy_options_build_the_configs_model_and_check_its_shape():
    import flax.linen as nn

    from jebm.energies import options

    config = load_config("mnist_convergent", "smoke")
    assert options.head_options(config.energy) == {"head": "linear", "head_offset": None, "beta_learnable": True}
    model = options.from_config(config.energy)
    assert model.backbone.channels == 4 and model.head == "linear"
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    options.check_energy_shape(model, params, (28, 28, 1))
    flat = nn.Dense(3)  # one energy per example is required: (2, 5) -> (2, 3) is refused
    with pytest.raises(ValueError, match=r"it must return one energy per example, shape \(2,\)"):
        options.check_energy_shape(flat, flat.init(jax.random.key(0), jnp.zeros((1, 5))), (5,))


def test_writable_workdir_creates_the_folder_and_names_an_unwritable_one(tmp_path):
    from jebm import fileio

    assert fileio.writable_workdir(str(tmp_path / "a" / "b")) == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and not any((tmp_path / "a" / "b").iterdir())
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match=r"--workdir=.*file/run is not writable"):
        fileio.writable_workdir(str(tmp_path / "file" / "run"))


def test_read_metrics_keeps_the_records_up_to_a_step_and_skips_torn_lines(tmp_path):
    from jebm import reporting

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 0.5}\n{"step": 2}\n{"step": 3, "lo')
    assert reporting.read_metrics(path) == [{"step": 1, "loss": 0.5}, {"step": 2}]
    assert reporting.read_metrics(path, 1) == [{"step": 1, "loss": 0.5}]
    assert reporting.read_metrics(tmp_path / "none.jsonl") == []


def test_launch_timeouts_and_compilation_cache(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from jebm import launch

    flags = SimpleNamespace(initialization_timeout=7, heartbeat_timeout=9)
    assert launch.timeout_options(flags) == {"initialization_timeout": 7, "heartbeat_timeout_seconds": 9}
    before = jax.config.jax_compilation_cache_dir
    try:
        monkeypatch.setenv("JEBM_COMPILATION_CACHE", str(tmp_path))
        launch.use_compilation_cache()
        assert jax.config.jax_compilation_cache_dir == str(tmp_path)
        monkeypatch.setenv("JEBM_COMPILATION_CACHE", "")  # off: the setting is left alone
        jax.config.update("jax_compilation_cache_dir", before)
        launch.use_compilation_cache()
        assert jax.config.jax_compilation_cache_dir == before
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_train_state_shardings_are_none_without_sharding_and_check_sizes():
    from types import SimpleNamespace

    from jebm import sharding

    config = load_config("gmm_sgld", "smoke")
    state = SimpleNamespace(bank=None)
    assert sharding.train_state_shardings(config, 16, state) is None
    config.sharding.enabled = True
    n = jax.device_count()
    if n > 1:
        config.training.batch_size = n + 1
        with pytest.raises(ValueError, match="training.batch_size"):
            sharding.train_state_shardings(config, 16, state)
