"""MNIST training end to end on a tiny fake IDX directory, and the pinned Table 3/4 recipe.

No network and no npm: every run reads four small IDX files written into a temporary
directory (``dataset.source="idx"``), and the quality classifier is trained on them
and cached under a temporary ``$JEBM_DATA_DIR``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from jebm import api, checkpoint, config_validation, train
from jebm.evaluation import chains, snapshots
from jebm.evaluation.evaluators import images as image_evaluator
from jebm.data import mnist

N_TRAIN, N_TEST = 48, 40


def idx_bytes(array: np.ndarray) -> bytes:
    """A uint8 array as an IDX file (type code 0x08, big-endian dimension sizes)."""
    array = np.asarray(array, np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes() + array.tobytes()


def write_fake_mnist(directory) -> None:
    """Blob "digits": a bright square whose position depends on the label, plus noise."""
    rng = np.random.default_rng(0)
    for images_name, labels_name, n in ((mnist.TRAIN_IMAGES, mnist.TRAIN_LABELS, N_TRAIN),
                                        (mnist.TEST_IMAGES, mnist.TEST_LABELS, N_TEST)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            r, c = 2 + 5 * (k // 5) * 2, 2 + 5 * (k % 5)
            images[i, r : r + 8, c : c + 6] = 230
        (directory / images_name).write_bytes(idx_bytes(images))
        (directory / labels_name).write_bytes(idx_bytes(labels))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fake_mnist")
    write_fake_mnist(directory)
    return directory


@pytest.fixture(scope="module")
def isolated_cache(tmp_path_factory):
    """Points $JEBM_DATA_DIR (classifier_cache.default_cache_dir's root) at a temporary folder."""
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("jebm_data")
        mp.setenv("JEBM_DATA_DIR", str(root))
        yield root


def smoke_config(name, presets, data_dir):
    config = load_config(name, presets)
    config.dataset.source = "idx"
    config.dataset.data_dir = str(data_dir)
    config_validation.validate(config)
    return config


@pytest.fixture(scope="module")
def default_run(tmp_path_factory, data_dir, isolated_cache):
    workdir = tmp_path_factory.mktemp("mnist_sgld_smoke")
    config = smoke_config("mnist_sgld", "smoke", data_dir)
    summary = train.train_and_evaluate(config, workdir)
    return config, workdir, summary


def test_training_grids_run_the_chains_as_long_as_the_evaluation(monkeypatch, tmp_path):
    # The :cpu recipe trains with L = 40 but is scored after eval.sampler_steps = 3,000: its grids
    # must show the 3,000-step samples, not 40-step noise.
    config = load_config("mnist_sgld", "smoke")
    lengths = []

    def fake_fresh_samples(config, parts, params, rng_key, num_samples, num_steps):
        lengths.append(num_steps)
        return np.zeros((num_samples, 28, 28, 1), np.float32)

    monkeypatch.setattr(chains, "fresh_samples", fake_fresh_samples)
    config.eval.sampler_steps = 3 * config.sampler.num_steps
    snapshots.write_training_grid(config, None, None, tmp_path, 1)
    config.eval.sampler_steps = None
    snapshots.write_training_grid(config, None, None, tmp_path, 2)
    assert lengths == [3 * config.sampler.num_steps, config.sampler.num_steps]
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == ["samples_step0000001.png", "samples_step0000002.png"]


def test_energy_by_class_groups_held_out_digits_by_label_and_samples_by_the_classifier(monkeypatch):
    from types import SimpleNamespace

    from jebm.evaluation import classifier, classifier_cache

    rng = np.random.default_rng(0)
    test_images = rng.integers(0, 256, size=(30, 28, 28)).astype(np.uint8)
    test_labels = np.repeat(np.arange(10), 3).astype(np.uint8)
    data = mnist.MnistData(test_images, test_labels, test_images, test_labels, "made up")
    model = SimpleNamespace(apply=lambda params, x: params * jnp.sum(x, axis=(1, 2, 3)))  # E = 2·(sum of pixels)
    parts = SimpleNamespace(model=model, data=SimpleNamespace(images=data, example_shape=(28, 28, 1)))
    config = load_config("mnist_sgld", "smoke")
    config.eval.quality_reference = 25  # digits 0..7 and one 8: class 9 has none
    samples = rng.uniform(-1, 1, size=(12, 28, 28)).astype(np.float32)
    predicted = np.array([0, 0, 0, 1, 1, 5, 5, 5, 5, 9, 9, 3])
    monkeypatch.setattr(classifier_cache, "load_or_train_classifier", lambda data: (None, 1.0, {}))
    monkeypatch.setattr(classifier, "classifier_outputs", lambda params, x: (None, np.eye(10)[predicted]))

    out = image_evaluator.energy_by_class(config, parts, 2.0, {"samples": samples})
    held_out_energy = 2.0 * (test_images[:25].astype(np.float64) / 127.5 - 1.0).sum(axis=(1, 2))
    for k in range(10):
        expected = held_out_energy[test_labels[:25] == k]
        assert out["held_out"][k] == (pytest.approx(np.median(expected), rel=1e-5) if len(expected) else None)
        expected = 2.0 * samples.sum(axis=(1, 2))[predicted == k]
        assert out["samples"][k] == (pytest.approx(np.median(expected), rel=1e-5) if len(expected) else None)
    assert out["held_out_all"] == pytest.approx(np.median(held_out_energy), rel=1e-5)
    assert out["samples_all"] == pytest.approx(np.median(2.0 * samples.sum(axis=(1, 2))), rel=1e-5)


def test_smoke_run_writes_the_mnist_workdir_contract(default_run, isolated_cache):
    config, workdir, _ = default_run
    for name in ("config.json", "metrics.jsonl", "samples.npy", "samples.png", "summary.json",
                 "training_curves.png", "samples_long.npy", "long_run.png", "ais_convergence.png"):
        assert (workdir / name).is_file(), name
    assert config.energy.head == "quadratic" and not config.chain_init.persistent

    samples = np.load(workdir / "samples.npy")
    assert samples.shape == (config.eval.num_samples, 28, 28) and samples.dtype == np.float32
    assert np.all(np.isfinite(samples))
    # The data's scale is [-1, 1] and the chains start from U(-1, 1); five small
    # SGLD steps cannot carry them far outside it.
    assert samples.min() >= -1.5 and samples.max() <= 1.5 and samples.min() < 0.0

    grids = sorted(p.name for p in (workdir / "grids").iterdir())
    assert grids == ["samples_step0000003.png"]  # written mid-training (4 steps in all)

    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in records)
    assert checkpoint.available_steps(workdir / "checkpoints") == [3, 4]

    on_disk = json.loads((workdir / "summary.json").read_text())
    assert on_disk["n_samples"] == config.eval.num_samples
    assert on_disk["sampler_steps"] == config.sampler.num_steps  # eval.sampler_steps None = L
    assert on_disk["samples_finite"] is True
    assert "32 training images" in on_disk["data"] and str(config.dataset.data_dir) in on_disk["data"]
    q = on_disk["quality"]
    assert q["n_samples"] == config.eval.num_samples and q["n_reference"] == config.eval.quality_reference
    for key in ("fid", "kid_mean", "class_entropy", "mean_confidence", "classifier_test_accuracy"):
        assert math.isfinite(q[key]), key
    assert sum(q["class_histogram"]) == config.eval.num_samples
    # The range is reported before any clipping, and the scores see the same pixels.
    outside = float(np.mean(np.abs(samples) > 1.0))
    assert on_disk["fraction_outside_range"] == pytest.approx(outside) == pytest.approx(q["fraction_outside_range"])
    # The long run: samples_long.npy and the scores at each length of the curve.
    long_samples = np.load(workdir / "samples_long.npy")
    assert long_samples.shape == (config.eval.long_run_samples, 28, 28) and long_samples.dtype == np.float32
    long_run = on_disk["long_run"]
    assert [r["steps"] for r in long_run["curve"]] == [10, config.eval.long_run_steps]
    assert all(math.isfinite(r["fid"]) and 0 <= r["class_entropy"] <= math.log(10) for r in long_run["curve"])
    assert set(long_run["energy_diagnostics"]) >= {"ess_bulk", "rhat"} and long_run["drift_noise_ratio"] > 0
    by_class = on_disk["energy_by_class"]
    assert len(by_class["held_out"]) == 10 and sum(v is not None for v in by_class["samples"]) >= 1
    assert math.isfinite(by_class["samples_long_all"])
    # AIS from the MNIST configs' box_kde base (chains start next to training digits, in atanh
    # space). An untrained energy is nearly flat, so log Z is close to 784·log 2 (the box's
    # volume); the kernel density is far from that flat target, so 20 temperatures give a lower
    # bound well below it, but never above it (a missing or wrong-signed Jacobian would be).
    ais = on_disk["ais"]
    assert ais["num_temps"] == config.eval.ais_temps and [r["num_temps"] for r in ais["convergence"]] == [5, 20]
    assert ais["base"] == "box_kde" and ais["kde_centres"] == min(config.eval.ais_kde_centres, 32)
    assert ais["log_z"] < 784 * math.log(2.0) + 5.0 and math.isfinite(ais["log_z"])
    assert math.isfinite(ais["bits_per_dim"]) and on_disk["drift_noise"]["regime"] in ("random_walk", "balanced", "gradient_descent")
    # The classifier was cached under the temporary $JEBM_DATA_DIR, not ~/.cache.
    assert list((isolated_cache / "classifier").glob("classifier-*.msgpack"))


def test_checkpoint_restores_into_a_fresh_train_state(default_run):
    """What experiments/mnist_long_run.py does: restore the final params and sample."""
    config, workdir, _ = default_run
    parts = train.build_parts(config)
    state, step = checkpoint.restore_latest(workdir / "checkpoints", train.create_train_state(config, parts))
    assert step == 4 and int(state.step) == 4
    energy = parts.model.apply(state.params, jnp.zeros((2, 28, 28, 1), jnp.float32))
    assert energy.shape == (2,) and bool(jnp.all(jnp.isfinite(energy)))


@pytest.mark.parametrize("name, presets", [
    ("mnist_sgld", "smoke,pcd"),
    ("mnist_sgld", "smoke,vanilla"),
    ("mnist_sghmc", "smoke"),
])
def test_other_presets_train(tmp_path, data_dir, isolated_cache, name, presets):
    config = smoke_config(name, presets, data_dir)
    # The default run covers the score and the grids; these cover training.
    config.eval.quality = False
    config.training.sample_every = 0
    summary = train.train_and_evaluate(config, tmp_path)
    samples = np.load(tmp_path / "samples.npy")
    assert samples.shape == (config.eval.num_samples, 28, 28) and np.all(np.isfinite(samples))
    assert summary["steps"] == config.training.max_steps == 4
    if "pcd" in presets or "vanilla" in presets:
        assert config.energy.head == "linear"
    if "pcd" in presets:
        assert config.chain_init.persistent
        state, _ = checkpoint.restore_latest(tmp_path / "checkpoints", train.create_train_state(config, train.build_parts(config)))
        assert state.bank is not None
    if name == "mnist_sghmc":
        assert json.loads((tmp_path / "config.json").read_text())["sampler"]["name"] == "sghmc"


def test_stabilisers_and_beta_gamma_head_train_on_mnist(tmp_path, data_dir, isolated_cache):
    """spectral_norm, grad_clip and the β+γ head reach the CNN, the sampler and the logs."""
    config = smoke_config("mnist_sgld", "smoke", data_dir)
    config.eval.quality = False
    config.training.sample_every = 0
    config.energy.spectral_norm = 2
    config.energy.head = "beta_gamma"
    config.sampler.grad_clip = 0.01
    summary = train.train_and_evaluate(config, tmp_path)
    parts = train.build_parts(config)
    assert parts.model.backbone.spectral_norm == 2 and parts.model.head == "beta_gamma"
    assert set(summary["head"]) == {"beta", "gamma"}
    samples = np.load(tmp_path / "samples.npy")
    assert np.all(np.isfinite(samples))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in records if "loss" in r)


def test_tiny_mnist_training_puts_digits_below_noise(tmp_path, data_dir, isolated_cache):
    """After 30 steps on the fake digits, held-out digits have lower energy than U(-1, 1) noise.

    Guards the sign of the loss: with it flipped, the digits' energy rises above the noise's
    (measured: 0.67 vs 0.49). It does not catch chains that ignore ∇ₓE (their negatives are
    noise too, so the gap still opens); test_training_is_right's toy run does.
    """
    config = smoke_config("mnist_sgld", "smoke", data_dir)
    config.eval.quality = False
    config.training.sample_every = 0
    config.training.max_steps = 30
    config.training.checkpoint_every = 30
    train.train_and_evaluate(config, tmp_path)
    parts = train.build_parts(config)
    state, _ = checkpoint.restore_latest(tmp_path / "checkpoints", train.create_train_state(config, parts))
    digits = jnp.asarray(mnist.preprocess(parts.data.images.test_images[:32], config.dataset.scale))
    noise = jax.random.uniform(jax.random.key(5), digits.shape, minval=-1.0, maxval=1.0)
    e_digits = float(jnp.mean(parts.model.apply(state.eval_params, digits)))
    e_noise = float(jnp.mean(parts.model.apply(state.eval_params, noise)))
    assert e_digits < e_noise, (e_digits, e_noise)


TABLE_4 = {
    "energy.name": "custom_cnn",
    "optimizer.name": "adam",
    "optimizer.learning_rate": 1e-4,
    "optimizer.weight_decay": 1e-4,
    "training.batch_size": 64,
    "training.num_epochs": 10,
    "training.max_steps": 0,
    "sampler.num_steps": 1000,
    "dataset.name": "mnist",
    "dataset.scale": "minus_one_one",
    "chain_init.name": "uniform",
    "chain_init.low": -1.0,
    "chain_init.high": 1.0,
    "chain_init.persistent": False,
    "energy.head": "quadratic",
    "eval.quality": True,
    "eval.num_samples": 1000,
    "eval.quality_reference": 1000,
}


def _get(config, field):
    for part in field.split("."):
        config = config[part]
    return config


@pytest.mark.parametrize("name", ["mnist_sgld", "mnist_sghmc"])
def test_default_is_table_4(name):
    config = load_config(name)
    for field, value in TABLE_4.items():
        assert _get(config, field) == value, field
    assert config.eval.sampler_steps in (None, config.sampler.num_steps)
    assert config.training.sample_every > 0
    config_validation.validate(config)
    if name == "mnist_sgld":
        assert config.sampler.name == "sgld" and config.sampler.step_size == 5e-6
    else:
        s = config.sampler
        assert s.name == "sghmc" and s.mass_convention == "mass"
        assert s.step_size / s.friction == pytest.approx(5e-6)  # overdamped limit = Table 4's η
        assert s.mass / (s.step_size * s.friction) == pytest.approx(10.0)


def test_custom_cnn_is_table_3():
    config = load_config("mnist_sgld")
    parts = train.build_parts(_no_data(config))
    x = jnp.zeros((2, 28, 28, 1), jnp.float32)
    # Shapes only (eval_shape traces without computing), which keeps the test fast.
    params = jax.eval_shape(lambda: parts.model.init(jax.random.PRNGKey(0), x))
    _, inter = jax.eval_shape(lambda p: parts.model.apply(p, x, capture_intermediates=True), params)
    # Paths look like "/backbone/conv1/__call__/0".
    outputs = {k.split("/")[-3]: leaf.shape for k, leaf in _flatten(inter["intermediates"])
               if k.startswith("/backbone/") and k.endswith("__call__/0")}
    assert outputs["conv1"] == (2, 16, 16, 16)
    assert outputs["conv2"] == (2, 8, 8, 32)
    assert outputs["conv3"] == (2, 4, 4, 64)
    assert outputs["conv4"] == (2, 2, 2, 64)
    assert outputs["fc1"] == (2, 64)
    assert outputs["fc2"] == (2, 1)
    kernels = {k.split("/")[-2]: v.shape for k, v in _flatten(params["params"]) if k.endswith("kernel")}
    assert kernels == {"conv1": (5, 5, 1, 16), "conv2": (3, 3, 16, 32), "conv3": (3, 3, 32, 64),
                       "conv4": (3, 3, 64, 64), "fc1": (256, 64), "fc2": (64, 1)}


def test_bad_spectral_norm_is_rejected():
    config = load_config("mnist_sgld", "smoke")
    config.energy.spectral_norm = -1
    with pytest.raises(config_validation.ConfigError, match=r"energy.spectral_norm=-1 must be an integer >= 0"):
        config_validation.validate(config)
    config = load_config("mnist_sgld", "smoke")
    config.energy.name = "toy_mlp"
    config.energy.spectral_norm = 3
    with pytest.raises(config_validation.ConfigError, match=r"energy.spectral_norm=3 applies to energy.name in"):
        config_validation.validate(config)


@pytest.mark.parametrize("conv_impl", ["", "xla", "im2col"])
def test_config_conv_impl_reaches_the_cnn(conv_impl):
    """energy.conv_impl="" resolves by backend (im2col on this CPU); a named one is kept."""
    config = load_config("mnist_sgld")
    config.energy.conv_impl = conv_impl
    parts = train.build_parts(_no_data(config))
    expected = conv_impl or ("im2col" if jax.default_backend() == "cpu" else "xla")
    assert parts.model.backbone.conv_impl == expected


def _no_data(config):
    """The model needs no data; a toy dataset keeps build_parts from loading MNIST."""
    config = config.copy_and_resolve_references()
    config.dataset.name = "gmm8"
    return config


def _flatten(tree, prefix=""):
    if isinstance(tree, dict) or hasattr(tree, "items"):
        for key, value in tree.items():
            yield from _flatten(value, f"{prefix}/{key}")
    elif isinstance(tree, tuple):
        for i, value in enumerate(tree):
            yield from _flatten(value, f"{prefix}/{i}")
    else:
        yield prefix, tree


@pytest.mark.parametrize("name", ["mnist_sgld", "mnist_sghmc"])
@pytest.mark.parametrize("presets", ["vanilla", "pcd", "quadratic", "cpu", "smoke", "cpu,vanilla", "cpu,pcd",
                                     "cpu_shortrun", "cpu_shortrun,pcd"])
def test_presets(name, presets):
    config = load_config(name, presets)
    config_validation.validate(config)
    names = presets.split(",")
    if "vanilla" in names or "pcd" in names:
        assert config.energy.head == "linear"
    else:
        assert config.energy.head == "quadratic"
    # The last preset that chooses the chains decides: cpu and pcd are persistent.
    chooser = [n for n in names if n in ("vanilla", "pcd", "quadratic", "cpu")]
    assert config.chain_init.persistent == (bool(chooser) and chooser[-1] in ("pcd", "cpu"))
    if "pcd" in names:
        assert config.chain_init.bank_size >= config.training.batch_size
    if "smoke" in names:
        assert 0 < config.dataset.max_train_images <= 64
        assert config.eval.num_samples <= 64 and config.eval.quality_reference <= 64
        assert config.training.max_steps <= 10 and config.sampler.num_steps <= 10
    if "cpu" in names:
        assert config.sampler.bounds == (-1.0, 1.0)
        if name == "mnist_sgld":  # the bank_500_6k recipe on two CPU devices; SGHMC's cpu stays on cpu_bank10k's
            assert config.eval.sampler_steps == 3000 and config.training.max_steps == (4 if "smoke" in names else 6000)
            assert config.sharding.num_cpu_devices == 2 and config.sharding.enabled
            assert config.optimizer.schedule == "cosine" and config.optimizer.final_lr_fraction == 0.0
            if "pcd" not in names:
                assert (config.chain_init.bank_size, config.chain_init.reinit_fraction) == (500, 0.01)
        else:
            assert config.eval.sampler_steps == 1000 and config.chain_init.bank_size == 10_000
    if "cpu" in names or "cpu_shortrun" in names:
        s = config.sampler
        assert config.training.max_steps > 0 and s.num_steps <= 100
        langevin_step = s.step_size if s.name == "sgld" else s.step_size / s.friction
        assert 0.01 <= math.sqrt(2 * langevin_step) <= 0.021  # noise sd in [-1, 1] pixels


@pytest.mark.usefixtures("fast_compiles")
def test_convergent_script_writes_the_issue_schema(default_run, tmp_path):
    """experiments/convergent.py on a smoke run: the curve from both starts, AIS at K and 3K, the cost curve,
    class masses, the energy gap, and the markdown/figure, in the schema results/convergent.json promises."""
    from experiments import convergent

    _, workdir, _ = default_run
    out = tmp_path / "c"
    assert convergent.main([f"--run=smoke={workdir}", "--recipe=mnist_sgld:smoke", "--lengths=2,3", "--chains=4",
                            "--temps=2", "--ais-chains=4", "--ais-curve=2,4", "--by-class=2", "--acceptance-steps=4",
                            f"--out-dir={out}"]) == 0
    (row,) = json.loads((out / "convergent.json").read_text())["rows"]
    assert (row["dataset"], row["recipe"], row["seed"]) == ("mnist", "mnist_sgld:smoke", 0)
    assert sorted((c["start"], c["steps"]) for c in row["curve"]) == [("data", 2), ("data", 3), ("noise", 2), ("noise", 3)]
    assert all(c["n"] == 4 and math.isfinite(c["fid"]) and 0 <= c["class_entropy"] <= math.log(10) + 1e-9
               for c in row["curve"])
    ais = row["ais"]
    assert set(ais["log_z"]) == {"2", "6"}  # K and 3K (JSON keys)
    assert ais["log_z_change"] == pytest.approx(ais["log_z"]["6"] - ais["log_z"]["2"])
    assert 0 < ais["ess_fraction"] <= 1 and math.isfinite(ais["bits_per_dim"])
    assert [c["num_temps"] for c in row["ais_cost"]] == [2, 4] and all(c["wall_s"] > 0 for c in row["ais_cost"])
    assert row["class_log_mass"] and all(math.isfinite(v) for v in row["class_log_mass"].values())
    assert row["negatives"] is None  # mnist_sgld:smoke has no persistent bank
    assert math.isfinite(row["energy_gap"])
    acc = row["step_acceptance"]
    assert (acc["steps"], acc["n"]) == (4, 4) and set(acc["acceptance"]) == {"data", "noise"}  # no bank to start from
    assert all(set(a) == {"1.0", "0.25", "0.0625"} and all(0 <= v <= 1 for v in a.values())
               for a in acc["acceptance"].values())
    md = (out / "convergent.md").read_text()
    assert "| mnist | mnist_sgld:smoke | 0 |" in md and "AIS against the number of temperatures" in md
    assert "Is the training step exact enough?" in md and "| smoke | 4, 4 | " in md
    assert (out / "convergent.png").stat().st_size > 0


def test_convergent_temperature_scale_samples_the_tempered_model(default_run, tmp_path, monkeypatch):
    """--temperature-scale S: the curve's chains from both starts run at S times the run's T (the config
    chain_curve is given), the row says so, and S <= 0 or NaN is refused before anything runs."""
    from experiments import convergent
    from jebm.evaluation import convergence

    config, workdir, _ = default_run
    seen = []
    real = convergence.chain_curve
    monkeypatch.setattr(convergence, "chain_curve",
                        lambda cfg, *a, **k: seen.append(cfg.sampler.temperature) or real(cfg, *a, **k))
    out = tmp_path / "t"
    assert convergent.main([f"--run=warm={workdir}", "--recipe=mnist_sgld:smoke", "--lengths=2", "--chains=4",
                            "--temps=0", "--acceptance-steps=0", "--temperature-scale=4", f"--out-dir={out}"]) == 0
    (row,) = json.loads((out / "convergent.json").read_text())["rows"]
    assert seen == [4 * config.sampler.temperature] * 2  # from noise and from data
    assert row["temperature"] == 4 * config.sampler.temperature and row["recipe"] == "mnist_sgld:smoke at 4·T"
    assert "step_acceptance" not in row
    for bad in ("0", "-1", "nan"):
        with pytest.raises(SystemExit):
            convergent.main([f"--run=warm={workdir}", f"--temperature-scale={bad}", f"--out-dir={tmp_path / 'x'}"])
    assert not (tmp_path / "x").exists()


@pytest.mark.usefixtures("fast_compiles")  # 13 small AIS programs: their compiles are the cost
def test_mnist_likelihood_script_scores_a_run_from_both_bases(default_run, tmp_path):
    from experiments import mnist_likelihood

    config, workdir, _ = default_run
    out = tmp_path / "a"
    assert mnist_likelihood.main([f"--run=smoke={workdir}", "--temps=2,3", "--chains=4", "--tilts=0,1",
                                  "--by-class=2", f"--out-dir={out}"]) == 0
    payload = json.loads((out / "mnist_likelihood.json").read_text())
    rows = payload["rows"]
    assert [(r["base"], r["ais"].get("kde_tilt")) for r in rows] == [("uniform", None), ("box_kde", 0.0), ("box_kde", 1.0)]
    for r in rows:
        assert [c["num_temps"] for c in r["ais"]["convergence"]] == [2, 3] and math.isfinite(r["ais"]["log_z"])
    assert rows[1]["ais"]["kde_effective_centres"] == pytest.approx(32)  # equal weights: every training image
    assert 1 <= rows[2]["ais"]["kde_effective_centres"] < 32  # tilted towards the low-energy images
    md = (out / "mnist_likelihood.md").read_text()
    assert "| smoke |" in md and "box_kde, tilt 1" in md and (out / "mnist_likelihood.png").stat().st_size > 0
    classes = payload["by_class"][0]["rows"]
    assert classes and all(math.isfinite(r["log_z"]) and 0 <= r["class"] <= 9 for r in classes)
    assert "## Where the mass is" in md
    # a second call tabulates the first's rows without rerunning them
    assert mnist_likelihood.main([f"--add-json={out / 'mnist_likelihood.json'}", "--temps=2,3", "--chains=4",
                                  f"--out-dir={tmp_path / 'b'}"]) == 0
    assert json.loads((tmp_path / "b" / "mnist_likelihood.json").read_text())["rows"] == rows
    with pytest.raises(SystemExit):  # merging rows scored at other temperatures would mislabel the table
        mnist_likelihood.main(["--add-json", str(out / "mnist_likelihood.json"), "--temps=2,4", "--chains=4",
                               f"--out-dir={tmp_path / 'c'}"])
    with pytest.raises(SystemExit):
        mnist_likelihood.main([f"--run=smoke={workdir}", "--merge", "--temps=2,4", "--chains=4", "--bases=uniform",
                               f"--out-dir={out}"])
    # --merge keeps the earlier rows, the earlier command and the hand-written reading, and reruns do not pile up blank lines
    md_path = out / "mnist_likelihood.md"
    md_path.write_text(md.replace("## Commands", "## What it shows\n\n- the hand-written reading\n\n## Commands"))
    for _ in range(2):
        assert mnist_likelihood.main(["--merge", "--temps=2,3", "--chains=4", "--bases=", f"--out-dir={out}"]) == 0
    merged = md_path.read_text()
    assert merged.count("- the hand-written reading") == 1 and "\n\n\n" not in merged
    assert f"--run=smoke={workdir}" in merged and json.loads((out / "mnist_likelihood.json").read_text())["rows"] == rows
    # naming a run again replaces only the rows it scores again (none here: --bases= is for --by-class alone)
    assert mnist_likelihood.main([f"--run=smoke={workdir}", "--merge", "--temps=2,3", "--chains=4", "--bases=",
                                  f"--out-dir={out}"]) == 0
    assert json.loads((out / "mnist_likelihood.json").read_text())["rows"] == rows


def test_convergent_smoke_runs_the_convergence_watch(tmp_path, data_dir, isolated_cache, monkeypatch):
    """mnist_convergent:cpu,smoke trains, and its watch at step 4 lands in metrics.jsonl and a figure (the non-local
    CNN of the default preset is checked on its own in test_energies, at a fraction of this compile)."""
    config = smoke_config("mnist_convergent", "cpu,smoke", data_dir)
    config.eval.ais_temps = 0
    config.eval.long_run_samples = 0
    config.training.sample_every = 0
    train.train_and_evaluate(config, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    watched = [r for r in records if "convergence" in r]
    assert [r["step"] for r in watched] == [4]
    rows = watched[0]["convergence"]
    assert [(r["start"], r["steps"]) for r in rows] == [("noise", 2), ("noise", 4), ("data", 2), ("data", 4)]
    for row in rows:
        assert row["n"] == 4 and row["finite"]
        assert {"fid", "class_entropy", "class_histogram", "distance", "energy_drift_nats", "decorrelation"} <= set(row)
        assert sum(row["class_histogram"]) == 4
    assert (tmp_path / "convergence.png").stat().st_size > 0
    assert config.training.convergence_every == 4 and config.energy.name == "custom_cnn"
    # experiments/convergent.py scores the persistent bank the last update drew its negatives from
    from experiments import convergent

    restored = api.restore(tmp_path)
    neg = convergent.negatives(restored, 6, lengths=(3, 2))
    assert (neg["n"], neg["bank_size"], sum(neg["class_histogram"])) == (6, 64, 6) and math.isfinite(neg["fid"])
    # run on from the bank: the chains move (distance > 0), and the scores are of the moved chains, not the bank
    assert [c["steps"] for c in neg["continued"]] == [2, 3]
    assert all(c["distance"] > 0 and sum(c["class_histogram"]) == 6 for c in neg["continued"])
    assert neg["continued"][0]["distance"] < neg["continued"][1]["distance"]
    assert neg["continued"][1]["fid"] != neg["fid"] and "3 steps on" in convergent._negatives(neg)
    plain = convergent.negatives(restored, 6)
    assert plain["fid"] == neg["fid"] and "continued" not in plain
    # the training step's MH acceptance from data, from the same bank chains and from noise, at the run's η and T
    from jebm.evaluation import convergence

    seen = []
    real = convergence.step_acceptance
    monkeypatch.setattr(convergence, "step_acceptance",
                        lambda fn, x0, key, **k: seen.append((np.asarray(x0), k)) or real(fn, x0, key, **k))
    acc = convergent.step_acceptance(restored, 6, 2)
    assert list(acc["acceptance"]) == ["data", "bank", "noise"] and len(seen) == 9
    bank = checkpoint.read_raw(checkpoint.checkpoint_dir(tmp_path) / f"ckpt_{restored.step}.msgpack")["bank"]["position"]
    pick = np.sort(np.random.default_rng(config.seed).permutation(len(bank))[:6])
    np.testing.assert_array_equal(seen[3][0], bank[pick])
    assert [k["step_size"] for _, k in seen[:3]] == [config.sampler.step_size * s for s in convergent.STEP_SCALES]
    assert all(k["temperature"] == config.sampler.temperature and k["num_steps"] == 2 for _, k in seen)


def test_old_negatives_keeps_three_batches_of_never_redrawn_chains():
    """mnist_convergent's old_negatives: a bank of 3 batches, so each chain is advanced on a third of the updates
    (~100,000 Langevin steps by the end of :cpu's 3,000 updates of L = 100)."""
    config = load_config("mnist_convergent", "cpu,box,old_negatives")
    config_validation.validate(config)
    ci, s = config.chain_init, config.sampler
    assert (ci.persistent, ci.bank_size, ci.reinit_fraction, s.bounds) == (True, 300, 0.0, (-1.0, 1.0))
    assert config.training.max_steps * s.num_steps * config.training.batch_size / ci.bank_size == 100_000


def test_reinit_redraws_five_percent_of_the_convergent_bank():
    """mnist_convergent's reinit: the anatomy recipe's bank of 8,000 chains, 5% of each batch re-drawn from noise
    (the recipe itself re-draws none)."""
    base, config = load_config("mnist_convergent", "cpu,box"), load_config("mnist_convergent", "cpu,box,reinit")
    config_validation.validate(config)
    assert (base.chain_init.reinit_fraction, config.chain_init.reinit_fraction) == (0.0, 0.05)
    assert config.chain_init.bank_size == base.chain_init.bank_size == 8_000 and config.chain_init.persistent


def test_rare_reinit_and_anneal_change_only_their_fields():
    """mnist_convergent's rare_reinit re-draws 1% of each batch; anneal takes SGD's rate to 0 by a cosine over
    training.max_steps. Each changes its own fields and nothing else, so ":cpu,box,rare_reinit,anneal" is the recipe
    its results rows name."""
    from jebm import optim

    base = load_config("mnist_convergent", "cpu,box")
    config = load_config("mnist_convergent", "cpu,box,rare_reinit,anneal")
    config_validation.validate(config)
    before = dict(_flatten(base))
    changed = {k: v for k, v in _flatten(config) if before.get(k, "absent") != v}
    assert changed == {"/chain_init/reinit_fraction": 0.01, "/optimizer/schedule": "cosine"}
    assert config.optimizer.final_lr_fraction == 0.0  # anneal sets it; it is also the schema's default
    multiplier = optim.lr_multiplier("cosine", config.training.max_steps, config.optimizer.final_lr_fraction)
    assert float(multiplier(0)) == 1.0 and abs(float(multiplier(config.training.max_steps))) < 1e-7


def test_convergence_write_figure_needs_a_check(tmp_path, monkeypatch):
    """convergence.write_figure: None (and no file) without records of the watch; with them, convergence.png
    drawn by plots.plot_convergence from the (step, rows) of those records alone."""
    import matplotlib.image

    from jebm.evaluation import convergence, plots

    drawn = []
    real = plots.plot_convergence
    monkeypatch.setattr(plots, "plot_convergence", lambda path, history: drawn.append(history) or real(path, history))

    records = [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.4}]
    assert convergence.write_figure(tmp_path, records) is None and list(tmp_path.iterdir()) == []
    row = {"start": "noise", "steps": 2, "fid": 50.0, "class_entropy": 2.0, "distance": 0.1, "energy_drift_nats": 0.0}
    records += [{"step": 2, "convergence": [row]}, {"step": 4, "convergence": [dict(row, fid=40.0)]}]
    path = convergence.write_figure(tmp_path, records)
    assert path == tmp_path / "convergence.png" and list(tmp_path.iterdir()) == [path]
    assert drawn == [[(2, [row]), (4, [dict(row, fid=40.0)])]]
    assert matplotlib.image.imread(path).shape[:2] == (432, 2520)  # plot_convergence's 5 panels at 120 dpi


def test_step_acceptance_against_closed_form_and_brute_force():
    """MALA's acceptance of the Langevin step: exactly 1 on a flat energy (a symmetric random walk); on the
    1-D Gaussian E = x²/(2σ²) from its stationary N(0, σ²T), the mean of min(1, r(x, w)) over x and the
    proposal's noise w, by a 2-D grid; it falls as the step grows."""
    from jebm.evaluation import convergence

    key = jax.random.key(0)
    flat = convergence.step_acceptance(lambda x: 0.0 * jnp.sum(x, axis=-1), np.zeros((64, 3), np.float32), key,
                                       step_size=0.3, temperature=2.0, num_steps=5)
    assert flat.shape == (5,) and np.all(flat == 1.0)

    sigma, temp = 1.5, 0.5
    grid_x = np.linspace(-9, 9, 3001) * sigma * math.sqrt(temp)
    w = np.linspace(-9, 9, 3001)
    x, w = np.meshgrid(grid_x, w, indexing="ij")

    def energy(x):
        return x**2 / (2 * sigma**2)

    def reference(eta):
        y = x - eta * x / sigma**2 + np.sqrt(2 * eta * temp) * w
        log_q = lambda a, b: -np.square(a - b + eta * b / sigma**2) / (4 * eta * temp)  # noqa: E731
        log_r = -(energy(y) - energy(x)) / temp + log_q(x, y) - log_q(y, x)
        weight = np.exp(-x**2 / (2 * sigma**2 * temp) - w**2 / 2)
        return float(np.sum(np.minimum(1.0, np.exp(log_r)) * weight) / np.sum(weight))

    x0 = np.asarray(sigma * math.sqrt(temp) * jax.random.normal(jax.random.key(1), (200_000, 1)), np.float32)
    got = []
    for eta in (0.5, 2.0, 4.0):
        alpha = convergence.step_acceptance(lambda v: energy(v[:, 0]), x0, jax.random.key(2), step_size=eta,
                                            temperature=temp, num_steps=3)
        assert np.all(np.abs(alpha - reference(eta)) < 0.005), (eta, alpha, reference(eta))
        got.append(float(alpha.mean()))
    assert got[0] > got[1] > got[2] and got[2] < 0.9
    with pytest.raises(ValueError, match="num_steps must be an int >= 1, got 0"):
        convergence.step_acceptance(energy, x0, key, step_size=1.0, temperature=1.0, num_steps=0)


def test_convergence_watch_measures_distance_and_drift_against_closed_forms(data_dir):
    """Zero energy: the chains are Brownian, x_L − x_0 ~ N(0, 2ηT·L) per pixel, so the RMS distance is √(2ηTL)
    and the energy drift is 0; the data start is the held-out images plus the data noise."""
    from types import SimpleNamespace

    from jebm.evaluation import convergence

    config = smoke_config("mnist_convergent", "smoke", data_dir)
    config.eval.quality = False
    config.sampler.step_size, config.sampler.temperature = 0.5, 1e-3
    config.dataset.noise_std = 0.0
    data = mnist.load_mnist("idx", data_dir)
    model = SimpleNamespace(apply=lambda params, x: 0.0 * jnp.sum(x, axis=(1, 2, 3)))
    parts = SimpleNamespace(model=model, data=SimpleNamespace(images=data, example_shape=(28, 28, 1)),
                            noise_fn=lambda key, n: jax.random.uniform(key, (n, 28, 28, 1), minval=-1.0, maxval=1.0))
    rows = convergence.chain_curve(config, parts, None, (10, 40), 32, jax.random.key(3), "data")
    for row in rows:
        assert row["distance"] == pytest.approx(math.sqrt(2 * 0.5 * 1e-3 * row["steps"]), rel=0.02)
        assert row["energy_drift_nats"] == 0.0
    # given starting points (a run's persistent chains): run from them, labelled "given"
    given = np.full((32, 28, 28, 1), 0.25, np.float32)
    rows = convergence.chain_curve(config, parts, None, (10,), 32, jax.random.key(3), given)
    assert rows[0]["start"] == "given"
    assert rows[0]["distance"] == pytest.approx(math.sqrt(2 * 0.5 * 1e-3 * 10), rel=0.02)
    # from one common point, chain i − chain j ~ N(0, 2·2ηT·l) and x_l − x_l' ~ N(0, 2ηT(l − l')) per pixel, so
    # decorrelation = √((l − l') / 2l): 10 → 40 steps √(30/80); from the start √(1/2)
    rows = convergence.chain_curve(config, parts, None, (10, 40), 32, jax.random.key(4), given)
    for row, previous in zip(rows, (0, 10)):
        ell = row["steps"]
        assert row["moved"] == pytest.approx(math.sqrt(2 * 0.5 * 1e-3 * (ell - previous)), rel=0.02)
        assert row["between_chains"] == pytest.approx(math.sqrt(4 * 0.5 * 1e-3 * ell), rel=0.02)
        assert row["decorrelation"] == pytest.approx(math.sqrt((ell - previous) / (2 * ell)), rel=0.03)
    assert rows[0]["moved"] == pytest.approx(rows[0]["distance"], rel=1e-6) and rows[1]["moved"] < rows[1]["distance"]
    # chains that stand still: moved 0, decorrelation 0, the chains still apart; fresh independent draws: 1
    apart = np.asarray(jax.random.normal(jax.random.key(5), (2, 4000, 64)))
    assert convergence._mixing(apart[0], apart[0]) == {"moved": 0.0, "between_chains": pytest.approx(math.sqrt(2), rel=0.01),
                                                     "decorrelation": 0.0}
    assert convergence._mixing(apart[1], apart[0])["decorrelation"] == pytest.approx(1.0, rel=0.02)
    assert convergence._mixing(apart[0][:1], apart[0][:1]) == {}
    with pytest.raises(ValueError, match="start holds 5 starting points for n=32"):
        convergence.chain_curve(config, parts, None, (10,), 32, jax.random.key(3), given[:5])
    with pytest.raises(ValueError, match=r"start='bank' is not one of \['noise', 'data'\]"):
        convergence.chain_curve(config, parts, None, (10,), 32, jax.random.key(3), "bank")
    start = convergence.held_out_start(config, parts, 5, jax.random.key(0))
    np.testing.assert_array_equal(start, mnist.preprocess(data.test_images[:5], config.dataset.scale))
    config.dataset.noise_std = 0.1
    noisy = convergence.held_out_start(config, parts, 5, jax.random.key(0))
    assert float(np.std(noisy - start)) == pytest.approx(0.1, rel=0.05)
    with pytest.raises(ValueError, match="training.convergence_chains"):
        convergence.held_out_start(config, parts, N_TEST + 1, jax.random.key(0))


def test_convergence_log_check_writes_the_record_scalars_and_figure(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from jebm.evaluation import convergence

    rows = [{"start": "noise", "steps": 2, "fid": 5.0, "distance": 0.5}]
    monkeypatch.setattr(convergence, "watch", lambda config, parts, params, step: rows)
    calls = []
    log = SimpleNamespace(records=[], write=lambda r: log.records.append(r),
                          snapshot=lambda png, scalars, step, **kw: calls.append((png, scalars, step, kw)))
    assert convergence.log_check(None, None, None, 7, tmp_path, log) == rows
    assert log.records == [{"step": 7, "convergence": rows}]
    assert calls == [(tmp_path / "convergence.png", {"noise_2/fid": 5.0, "noise_2/distance": 0.5}, 7,
                      {"prefix": "convergence", "image": "convergence"})]
    assert (tmp_path / "convergence.png").stat().st_size > 0
