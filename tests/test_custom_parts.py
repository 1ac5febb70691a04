"""A user's own energy and data: registries, the array pipeline, and a whole run through the public API."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jebm
from jebm import config_lib, config_validation, energies, train
from jebm import data as jebm_data
from jebm.data import pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def custom_energy():
    """experiments/custom_energy.py, imported for this module only: importing it registers ``moons_mlp`` and
    ``two_moons``, which would otherwise leak into every other test's list of valid names."""
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        module = importlib.import_module("custom_energy")
        yield module
    finally:
        sys.path.remove(str(ROOT / "experiments"))
        sys.modules.pop("custom_energy", None)
        for unregister, name in ((energies.unregister, "moons_mlp"), (jebm_data.unregister, "two_moons")):
            try:
                unregister(name)
            except (KeyError, ValueError):
                pass


class Quadratic(nn.Module):
    """E(x) = a·‖x‖², a learnable: a user energy with a known shape."""

    @nn.compact
    def __call__(self, x):
        a = self.param("a", nn.initializers.constant(0.5), ())
        return a * jnp.sum(x.reshape(x.shape[0], -1) ** 2, axis=1)


class PerPixel(nn.Module):
    """A wrong energy: one value per coordinate instead of one per example."""

    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(x)


def test_with_head_none_is_the_module_itself_and_others_wrap_it():
    module = Quadratic()
    assert energies.with_head(module, head="none") is module
    wrapped = energies.with_head(module, head="quadratic", head_offset=0.0)
    x = jnp.ones((3, 2))
    params = wrapped.init(jax.random.key(0), x)
    # E = ½(f + 0)² with f = 0.5·‖x‖² = 1: E = 0.5
    np.testing.assert_allclose(wrapped.apply(params, x), 0.5, rtol=1e-6)
    with pytest.raises(ValueError, match=r"energy.head='cubic' is not one of .*'none'"):
        energies.with_head(module, head="cubic")
    with pytest.raises(ValueError, match="energy must be a flax.linen.Module"):
        energies.with_head(lambda x: x, head="none")


def test_register_energy_makes_a_config_name_and_refuses_jebms_own():
    energies.register("test_quadratic", Quadratic)
    try:
        c = config_lib.base_config()
        c.energy.name, c.energy.head = "test_quadratic", "none"
        config_validation.validate(c)
        parts = train.build_parts(c)
        params = parts.model.init(jax.random.key(0), jnp.zeros((1, 2)))
        np.testing.assert_allclose(parts.model.apply(params, jnp.ones((4, 2))), 1.0)
        c.energy.activation = "tanh"  # Quadratic takes no options: the error names them
        with pytest.raises(ValueError, match=r"energy.name='test_quadratic' .* does not take the options \['activation'\]"):
            train.build_parts(c)
    finally:
        energies.unregister("test_quadratic")
    with pytest.raises(config_validation.ConfigError, match=r"energy.name='test_quadratic' is not one of"):
        config_validation.validate(c)
    with pytest.raises(ValueError, match="is jebm's own"):
        energies.register("mlp", Quadratic)
    with pytest.raises(ValueError, match="not a registered one"):
        energies.unregister("mlp")


def test_array_data_holds_out_a_fixed_share_and_batches_the_rest():
    points = np.arange(200, dtype=np.float32).reshape(100, 2)
    d = pipeline.array_data(points, batch_size=10, seed=3, held_out_fraction=0.1)
    assert d.example_shape == (2,) and d.held_out.shape == (10, 2) and d.train_examples.shape == (90, 2)
    assert d.steps_per_epoch == 9 and d.value_range == (0.0, 199.0)
    held, trained = {tuple(p) for p in d.held_out}, {tuple(p) for p in d.train_examples}
    assert not held & trained and len(held | trained) == 100  # a partition of the data
    epoch = np.concatenate([np.asarray(d.batch(s)) for s in range(9)])
    assert {tuple(p) for p in epoch} == trained  # one epoch sees every training example once
    again = pipeline.array_data(points, batch_size=10, seed=3, held_out_fraction=0.1)
    np.testing.assert_array_equal(again.held_out, d.held_out)  # the split is a function of the seed


@pytest.mark.parametrize("bad,match", [
    (np.zeros(5), r"shape \(n, \*example_shape\) with n >= 2"),
    (np.zeros((1, 2)), r"n >= 2 examples, got shape \(1, 2\)"),
    (np.array([[0.0, np.nan], [1.0, 1.0]]), "1 non-finite values"),
    ([["a", "b"], ["c", "d"]], "data must be a numeric array"),
])
def test_array_data_rejects_bad_arrays(bad, match):
    with pytest.raises(ValueError, match=match):
        pipeline.array_data(bad, batch_size=1, seed=0)


def test_register_dataset_and_its_errors():
    jebm_data.register("test_line", lambda cfg: np.linspace(-1, 1, 40, dtype=np.float32).reshape(20, 2))
    try:
        c = config_lib.base_config()
        c.dataset.name, c.training.batch_size = "test_line", 6
        config_validation.validate(c)
        parts = train.build_parts(c)
        assert parts.data.name == "test_line" and parts.data.held_out.shape == (2, 2)
        c.dataset.held_out_fraction = 0.9
        with pytest.raises(config_validation.ConfigError, match=r"dataset.held_out_fraction=0.9"):
            config_validation.validate(c)
    finally:
        jebm_data.unregister("test_line")
    with pytest.raises(ValueError, match="is jebm's own"):
        jebm_data.register("mnist", lambda cfg: None)


def test_an_energy_must_give_one_value_per_example(custom_energy):
    c = custom_energy.get_config("smoke")
    parts = train.build_parts(c, energy=PerPixel(), data=custom_energy.two_moons(200))
    with pytest.raises(ValueError, match=r"maps inputs of shape \(2, \*\(2,\)\) to \(2, 1\); it must return one energy per example"):
        train.create_train_state(c, parts)


@pytest.mark.slow
def test_user_energy_and_data_train_restore_and_sample(tmp_path, custom_energy):
    """The example end to end: it learns (held-out data below noise, KS far below noise's), restores and samples."""
    workdir = tmp_path / "moons"
    assert custom_energy.main(["--workdir", str(workdir), "--preset", "smoke"]) == 0
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["energy"] == "user module MoonsEnergy with head linear"
    assert summary["data"].startswith("array: 7200 training and 800 held-out examples")
    # 40 steps: the energy already ranks held-out points below the chains' noise by a wide margin
    assert summary["energy_held_out"] < summary["energy_noise"] - 1.0, summary
    assert summary["ks"] < 0.3 and summary["ks_floor"] < 0.1, summary  # uniform noise on [-3, 3]² scores ~0.5
    assert np.isfinite(summary["nll_exact"]) and "log_z_ais" in summary["likelihood"]
    for name in ("samples.npy", "samples_long.npy", "energy_grid.npz", "energy_fit.png", "training_curves.png"):
        assert (workdir / name).exists(), name
    points = custom_energy.two_moons()
    restored = jebm.restore(workdir, energy=custom_energy.MoonsEnergy(), data=points)
    assert restored.step == 40
    # jebm.sample with the evaluation's key and length reproduces samples.npy
    from jebm.evaluation import chains

    again = jebm.sample(restored, chains.eval_key(restored.config), 200)
    np.testing.assert_allclose(again, np.load(workdir / "samples.npy"), rtol=1e-5, atol=1e-5)

    out = tmp_path / "cli.npy"
    run = subprocess.run(
        [sys.executable, "-m", "jebm.main", "--mode=sample", f"--workdir={workdir}",
         f"--imports={ROOT / 'experiments' / 'custom_energy.py'}", "--num_samples=50", "--num_steps=20", f"--out={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert np.load(out).shape == (50, 2)


def test_subpackages_are_attributes_after_import_jebm():
    """``import jebm`` alone gives ``jebm.energies.register`` etc., as ``jax.numpy`` after ``import jax``.
    In a fresh interpreter: here the test modules' own imports would already have bound them."""
    code = (
        "import sys, jebm\n"
        "assert 'jebm.energies' not in sys.modules and 'jebm.train' not in sys.modules  # lazy\n"
        "assert callable(jebm.energies.register) and callable(jebm.data.register)\n"
        "assert callable(jebm.samplers.sgld) and callable(jebm.evaluation.metrics.ks2d)\n"
        "assert {'data', 'energies', 'evaluation', 'samplers'} <= set(dir(jebm))\n"
        "try:\n"
        "    jebm.no_such_part\n"
        "except AttributeError as err:\n"
        "    assert 'no_such_part' in str(err)\n"
        "else:\n"
        "    raise AssertionError('jebm.no_such_part did not raise')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_a_shipped_config_runs_with_a_registered_energy_swapped_in(caplog):
    """configs/gmm_sghmc.py sets the toy MLP's energy.param_init; with the user's energy in its place that field
    is ignored with a warning (it belongs to jebm's MLPs), not an error, and the factory never sees it."""
    from conftest import load_config

    received = []

    def factory(**options):
        received.append(options)
        return Quadratic()

    energies.register("test_swapped", factory)
    try:
        c = load_config("gmm_sghmc", "smoke")
        assert c.energy.param_init == "lecun_normal"
        c.energy.name = "test_swapped"
        c.energy.spectral_norm = 2  # a CNN field: ignored just the same
        config_validation.validate(c)
        with caplog.at_level("WARNING"):
            parts = train.build_parts(c)
        assert received == [{}]
        for field in ("param_init='lecun_normal'", "spectral_norm=2"):
            assert any(f"energy.{field} is ignored" in r.getMessage() and "'test_swapped' is a registered energy"
                       in r.getMessage() for r in caplog.records), (field, caplog.text)
        assert parts.model.init(jax.random.key(0), jnp.zeros((1, 2)))["params"]["backbone"]["a"] == 0.5
        # On another of jebm's own networks the same field is still an error naming the field.
        c.energy.name, c.energy.spectral_norm = "lenet", 0
        with pytest.raises(config_validation.ConfigError, match=r"energy.param_init='lecun_normal' applies to "
                                                                 r"energy.name in \['mlp', 'toy_mlp'\], not 'lenet'"):
            config_validation.validate(c)
    finally:
        energies.unregister("test_swapped")
