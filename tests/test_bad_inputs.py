"""The table of bad inputs: configs, CLI arguments, data files, checkpoints and workdirs.

Each case asserts the exact error type and the key words of its message: the
field or file it names, the value given, and what is allowed.
"""

import errno
import gzip
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, load_config
from jebm import checkpoint, config_lib, config_validation, train
from jebm.data import mnist
from jebm.data import toy

ConfigError = config_validation.ConfigError


def _set(config, dotted, value):
    node = config
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node[p]
    with config.unlocked():
        node[leaf] = value


# (overrides, words that must appear in the message)
CONFIG_CASES = [
    ({"sampler.step_size": 0.0}, ["sampler.step_size=0.0", "must be > 0"]),
    ({"sampler.step_size": -0.1}, ["sampler.step_size=-0.1", "must be > 0"]),
    ({"sampler.num_steps": 0}, ["sampler.num_steps=0", ">= 1"]),
    ({"training.batch_size": 0}, ["training.batch_size=0", ">= 1"]),
    ({"sampler.friction": 0.0}, ["sampler.friction=0.0", "> 0"]),
    ({"sampler.mass": -1.0}, ["sampler.mass=-1.0", "> 0"]),
    ({"chain_init.reinit_fraction": 1.5}, ["chain_init.reinit_fraction=1.5", "<= 1"]),
    ({"sampler.name": "hmc"}, ["sampler.name='hmc'", "['mala', 'sghmc', 'sgld']"]),
    ({"energy.name": "resnet"}, ["energy.name='resnet'", "'custom_cnn'", "'toy_mlp'"]),
    ({"energy.head": "cubic"}, ["energy.head='cubic'", "'quadratic'"]),
    ({"optimizer.name": "rmsprop"}, ["optimizer.name='rmsprop'", "['adam', 'adamw', 'sgd']"]),
    ({"dataset.name": "cifar"}, ["dataset.name='cifar'", "['fashion_mnist', 'gmm8', 'mnist', 'rings']"]),
    ({"chain_init.name": "zeros"}, ["chain_init.name='zeros'", "['gaussian', 'uniform']"]),
    ({"sampler.integrator": "leapfrog"}, ["sampler.integrator='leapfrog'", "'symplectic_euler'"]),
    ({"loss.name": "nce"}, ["loss.name='nce'", "['cd']"]),
    ({"eval.grid_size": 1}, ["eval.grid_size=1", ">= 2"]),
    ({"eval.num_samples": 0}, ["eval.num_samples=0", ">= 2"]),
    ({"chain_init.low": 2.0, "chain_init.high": -2.0}, ["chain_init.low=2.0", "must be < chain_init.high=-2.0"]),
    ({"chain_init.persistent": True, "chain_init.bank_size": 10}, ["chain_init.bank_size=10", "number of chains"]),
    ({"sampler.mass_convention": "kg"}, ["sampler.mass_convention='kg'", "['inverse_mass', 'mass']"]),
    ({"guard.on_divergence": "ignore"}, ["guard.on_divergence='ignore'", "['rollback', 'stop']"]),
    ({"energy.activation": "relu"}, ["energy.activation='relu'", "'swish'"]),
    ({"dataset.scale": "zero_to_255"}, ["dataset.scale='zero_to_255'", "'minus_one_one'"]),
    ({"energy.hidden": (32, 0)}, ["energy.hidden=(32, 0)", "positive integers"]),
    ({"optimizer.learning_rate": 0.0}, ["optimizer.learning_rate=0.0", "> 0"]),
    ({"dataset.source": "s3"}, ["dataset.source='s3'", "'npm'"]),
    ({"sampler.temperature": 0.0}, ["sampler.temperature=0.0", "> 0"]),
    ({"guard.lr_factor": 2.0}, ["guard.lr_factor=2.0", "<= 1"]),
    ({"energy.param_init": "xavier"}, ["energy.param_init='xavier'", "'torch'"]),
    # The validator's checks that are not single-field choice/number/integer/boolean ones
    # (those are all covered by test_every_validated_field_rejects_bad_values below).
    ({"energy.conv_impl": "fft"}, ["energy.conv_impl='fft'", "['', 'im2col', 'xla']"]),
    ({"energy.conv_impl": "xla"}, ["energy.conv_impl='xla' applies to energy.name in ['custom_cnn', 'lenet', 'nonlocal_cnn']"]),
    ({"energy.channels": 16}, ["energy.channels=16 applies to energy.name='nonlocal_cnn', not 'toy_mlp'"]),
    ({"training.convergence_every": 10}, ["training.convergence_every=10 needs image data", "'fashion_mnist', 'mnist'",
                                          "dataset.name='gmm8'"]),
    ({"training.convergence_lengths": (100, 0)}, ["training.convergence_lengths=(100, 0)", "chain lengths >= 1"]),
    ({"energy.param_init": "torch", "energy.name": "custom_cnn"}, ["energy.param_init='torch' applies to energy.name in ['mlp', 'toy_mlp']"]),
    ({"energy.spectral_norm": 1}, ["energy.spectral_norm=1 applies to energy.name in ['custom_cnn', 'lenet']"]),
    ({"energy.beta_learnable": False, "energy.head": "beta"}, ["energy.beta_learnable=False needs energy.beta_init"]),
    ({"energy.beta_init": 1.0}, ["apply to energy.head in ['beta', 'beta_gamma']"]),
    ({"sampler.bounds": (1.0, -1.0)}, ["sampler.bounds=(1.0, -1.0)", "low < high"]),
    ({"sampler.grad_clip": 1.0, "sampler.name": "mala"}, ["sampler.grad_clip=1.0 is for sampler.name in ['sghmc', 'sgld']"]),
    ({"eval.ais_curve": (10, 0)}, ["eval.ais_curve=(10, 0)", "temperature counts >= 1"]),
    ({"eval.long_run_curve": (100, -1)}, ["eval.long_run_curve=(100, -1)", "chain lengths >= 1"]),
    ({"eval.ais_base": "gaussian"}, ["eval.ais_base='gaussian'", "['box_kde', 'uniform']"]),
    ({"eval.ais_base": "box_kde"}, ["eval.ais_base='box_kde' needs training images", "dataset.name='gmm8'",
                                    "eval.ais_base='uniform'"]),
    ({"eval.ais_kde_margin": 1.0}, ["eval.ais_kde_margin=1.0 must be in (0, 1)"]),
    ({"eval.ais_kde_scale": 0.0}, ["eval.ais_kde_scale=0.0", "> 0"]),
    ({"eval.ais_kde_centres": 0}, ["eval.ais_kde_centres=0", ">= 1"]),
    ({"eval.ais_kde_tilt": -1.0}, ["eval.ais_kde_tilt=-1.0", ">= 0"]),
    ({"training.ema_decay": 1.0}, ["training.ema_decay=1.0 must be in [0, 1)"]),
]


@pytest.mark.parametrize("overrides,words", CONFIG_CASES, ids=[",".join(c[0]) for c in CONFIG_CASES])
def test_bad_config_values(overrides, words):
    config = load_config("gmm_sgld", "smoke")
    for field, value in overrides.items():
        _set(config, field, value)
    with pytest.raises(ConfigError) as err:
        config_validation.validate(config)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_all_config_errors_reported_at_once():
    config = load_config("gmm_sghmc", "smoke")
    _set(config, "sampler.step_size", -1.0)
    _set(config, "optimizer.name", "lbfgs")
    with pytest.raises(ConfigError) as err:
        config_validation.validate(config)
    assert "sampler.step_size=-1.0" in str(err.value) and "optimizer.name='lbfgs'" in str(err.value)


def test_every_shipped_config_and_preset_is_valid():
    for name, presets in [("gmm_sgld", ["nopcd", "pcd", "quadratic", "smoke"]),
                          ("gmm_sghmc", ["nopcd", "pcd", "quadratic", "inverse_mass", "explicit", "smoke"])]:
        for preset in [None, *presets]:
            config_validation.validate(load_config(name, preset))


# ---------------------------------------------------------------- CLI arguments

CLI_CASES = [
    (["--config=configs/gmm_sgld.py:smoke", "--config.sampler.stepsize=0.1"], ["stepsize", 'Did you mean "step_size"']),
    (["--config=configs/gmm_sgld.py:smok"], ["config preset 'smok' is not one of", "'smoke'"]),
    (["--config=configs/gmm_sgld.py:smoke", "--config.sampler.step_size=abc"], ["--config.sampler.step_size=abc", "could not convert"]),
    (["--config=configs/gmm_sgld.py:smoke", "--config.sampler.step_size=-1"], ["ConfigError", "sampler.step_size=-1.0", "must be > 0"]),
    (["--config=configs/no_such.py"], ["no_such.py"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("args,words", CLI_CASES, ids=["unknown_key", "unknown_preset", "bad_type", "bad_value", "missing_file"])
def test_bad_cli_arguments(tmp_path, args, words):
    env = dict(os.environ, JEBM_COMPILATION_CACHE="")
    proc = subprocess.run([sys.executable, "-m", "jebm.main", f"--workdir={tmp_path}/w", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    for w in words:
        assert w in proc.stderr, (w, proc.stderr[-2000:])
    assert not (tmp_path / "w" / "checkpoints").exists()  # nothing was trained


@pytest.mark.slow
def test_missing_workdir_flag():
    proc = subprocess.run([sys.executable, "-m", "jebm.main", "--config=configs/gmm_sgld.py:smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "workdir" in proc.stderr


# ---------------------------------------------------------------- data files


def _idx(array, code=0x08):
    return struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


DATA_CASES = [
    ("truncated", lambda: _idx(np.zeros((4, 28, 28), np.uint8))[:-100], ["truncated"]),
    ("bad_magic", lambda: b"\x12\x34" + _idx(np.zeros((2, 28, 28), np.uint8))[2:], ["magic"]),
    ("bad_dtype", lambda: _idx(np.zeros((2, 28, 28), np.uint8), code=0x07), ["0x07"]),
    ("trailing", lambda: _idx(np.zeros((2, 28, 28), np.uint8)) + b"xx", ["trailing"]),
    ("corrupt_gzip", lambda: gzip.compress(_idx(np.zeros((2, 28, 28), np.uint8)))[:-12], ["gzip"]),
]


@pytest.mark.parametrize("name,make,words", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_idx_files(tmp_path, name, make, words):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(make())
    before = path.read_bytes()
    with pytest.raises(mnist.MnistDataError) as err:
        mnist.read_idx(path)
    msg = str(err.value).lower()
    assert str(path).lower() in msg
    for w in words:
        assert w.lower() in msg, (w, msg)
    assert path.read_bytes() == before  # reading never damages the file


def test_mismatched_image_and_label_counts(tmp_path):
    images = np.zeros((5, 28, 28), np.uint8)
    for prefix, n_labels in (("train", 4), ("t10k", 5)):
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(images))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(np.zeros(n_labels, np.uint8)))
    with pytest.raises(mnist.MnistDataError) as err:
        mnist.load_idx_dir(tmp_path)
    assert "5" in str(err.value) and "4" in str(err.value)


def test_unknown_toy_dataset_and_mnist_source():
    with pytest.raises(ValueError, match=r"dataset.name='moons' is not one of \['gmm8', 'rings'\]"):
        toy.make_toy_dataset("moons")
    with pytest.raises(ValueError, match="data.source|dataset.source"):
        mnist.load_mnist("s3")


# ---------------------------------------------------------------- checkpoints and workdirs


def _small_config(hidden=(8, 8)):
    config = load_config("gmm_sgld", "smoke")
    config.energy.name = "mlp"
    config.energy.hidden = hidden
    config.training.max_steps = 2
    config.training.checkpoint_every = 1
    return config


def test_checkpoint_from_another_config(tmp_path):
    train.train(_small_config((8, 8)), tmp_path)
    with pytest.raises(checkpoint.CheckpointError) as err:
        train.train(_small_config((16, 8)), tmp_path)
    msg = str(err.value)
    assert "does not match this config" in msg and "shape" in msg and "fresh --workdir" in msg


def test_corrupted_checkpoint_file(tmp_path):
    config = _small_config()
    train.train(config, tmp_path)
    latest = tmp_path / "checkpoints" / "ckpt_2.msgpack"
    raw = checkpoint.read_raw(latest)  # the public raw reader sees the same state restore does
    restored = checkpoint.restore(latest, train.create_train_state(config, train.build_parts(config)))
    assert int(raw["step"]) == int(restored.step) == 2
    latest.write_bytes(latest.read_bytes()[: len(latest.read_bytes()) // 3])
    with pytest.raises(checkpoint.CheckpointError, match=r"ckpt_2.msgpack is unreadable.*delete it"):
        checkpoint.read_raw(latest)
    with pytest.raises(checkpoint.CheckpointError, match=r"ckpt_2.msgpack is unreadable.*delete it"):
        train.train(config, tmp_path)


def test_full_disk_while_checkpointing_keeps_earlier_files(tmp_path, monkeypatch):
    config = _small_config()
    state, parts, _ = train.train(config, tmp_path)
    ckpt_dir = tmp_path / "checkpoints"
    before = {p.name: p.read_bytes() for p in ckpt_dir.iterdir()}

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(checkpoint.CheckpointError, match="No space left on device.*earlier checkpoints are intact"):
        checkpoint.save(ckpt_dir, 99, state)
    assert {p.name: p.read_bytes() for p in ckpt_dir.iterdir()} == before  # no temp file, nothing damaged


def test_unwritable_workdir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match=r"--workdir=.*a_file/run is not writable"):
        train.train(_small_config(), blocker / "run")
    assert blocker.read_text() == "not a directory"


def test_batch_larger_than_dataset():
    config = load_config("gmm_sgld", "smoke")
    config.dataset.mode = "fixed"
    config.dataset.num_points = 10
    with pytest.raises(ValueError, match=r"training.batch_size=16 is larger than the dataset"):
        train.build_parts(config)


def _validated_fields():
    """Every single-field check of the schema (``config_schema.FIELDS``) of a kind below: (kind, field, bounds)."""
    from jebm import config_schema

    return [(f.check.kind, f.name, {k: float(v) for k, v in f.check.bounds.items()}) for f in config_schema.FIELDS
            if f.check is not None and f.check.kind in ("choice", "number", "integer", "boolean")]


VALIDATED = _validated_fields()


def _bad_values(kind, bounds):
    """Values the check must refuse: the wrong type, and each bound crossed."""
    if kind == "choice":
        return ["not_a_valid_choice"]
    if kind == "boolean":
        return ["yes"]
    out = ["twelve"] if kind == "number" else [1.5]
    if "gt" in bounds:
        out.append(bounds["gt"] if kind == "number" else int(bounds["gt"]))
    if "ge" in bounds:
        out.append(bounds["ge"] - 1 if kind == "integer" else bounds["ge"] - 0.5)
    if "le" in bounds:
        out.append(bounds["le"] + 0.5)
    if kind == "integer":
        out = [int(v) if isinstance(v, float) and v.is_integer() else v for v in out]
    return out


def test_the_schema_makes_base_config_and_checks_every_field():
    """base_config() has the schema's fields in its order (a name declared twice would be lost); each has help,
    a check (but dataset.data_dir, any path) and, when it defaults to None, a placeholder of its type."""
    from jebm import config_schema

    assert len({f for _, f, _ in VALIDATED}) >= 88  # 88 fields when written
    leaves = []

    def visit(node, order, prefix):  # ConfigDict.keys() are sorted; its JSON keeps the fields' order
        for key, value in order.items():
            if isinstance(value, dict):
                visit(node[key], value, f"{prefix}{key}.")
            else:
                leaves.append((f"{prefix}{key}", node.get_type(key)))

    config = config_lib.base_config()
    visit(config, json.loads(config.to_json()), "")
    fields = config_schema.FIELDS
    assert [name for name, _ in leaves] == [f.name for f in fields]
    assert all(f.help for f in fields), [f.name for f in fields if not f.help]
    assert [f.name for f in fields if f.check is None] == ["dataset.data_dir"]
    nones = {f.name: f.placeholder_type for f in fields if f.default is None}
    assert nones == {"energy.head_offset": float, "energy.beta_init": float, "energy.hidden": tuple,
                     "energy.out_init_std": float, "sampler.num_chains": int, "sampler.bounds": tuple,
                     "sampler.grad_clip": float, "eval.sampler_steps": int}
    assert {name: t for name, t in leaves if name in nones} == nones
    assert all(f.name in config_lib.describe() for f in fields)


def test_a_registered_energy_ignores_the_fields_of_jebms_networks():
    """configs/gmm_sghmc.py sets its MLP's energy.param_init; with a registered energy in its place that field (and
    a CNN's) passes validation (make_energy drops it with a warning: test_custom_parts). On another of jebm's own
    networks it stays an error."""
    import flax.linen as nn

    from jebm import energies

    energies.register("test_swapped", lambda **options: nn.Dense(1))
    try:
        config = load_config("gmm_sghmc", "smoke")
        assert config.energy.param_init == "lecun_normal"
        config.energy.name, config.energy.spectral_norm = "test_swapped", 2
        config_validation.validate(config)
        config.energy.name = "lenet"
        with pytest.raises(ConfigError) as err:
            config_validation.validate(config)
        assert "energy.param_init='lecun_normal' applies to energy.name in ['mlp', 'toy_mlp'], not 'lenet'" in str(err.value)
    finally:
        energies.unregister("test_swapped")
    config.energy.name = "test_swapped"  # unregistered now: an unknown name, whose fields are errors too
    with pytest.raises(ConfigError, match=r"(?s)energy.name='test_swapped' is not one of.*param_init='lecun_normal' "
                                          r"applies to energy.name in \['mlp', 'toy_mlp'\], not 'test_swapped'"):
        config_validation.validate(config)


def test_schema_type_tests_and_the_tuple_and_custom_checks():
    """is_number / is_int refuse bools; int_tuple and custom return None for a good value and "must be <words>"
    for a bad one (the words that follow ``<field>=<value>`` in the error)."""
    from fractions import Fraction

    from jebm import config_schema as schema

    assert [schema.is_number(v) for v in (1, 2.5, np.float32(0.5), Fraction(1, 3), True, "1", None, 1j)] == \
        [True, True, True, True, False, False, False, False]
    assert [schema.is_int(v) for v in (3, np.int64(-2), 3.0, False, "3", None)] == \
        [True, True, False, False, False, False]
    check = schema.int_tuple("a tuple of positive integers", ge=1, non_empty=True)
    assert (check.kind, check.type) == ("int_tuple", tuple)
    for good in ((1,), [4, 2], (np.int64(3),)):
        assert check.test(good) is None, good
    for bad in ((), [], (0, 2), (1.0,), (True,), "12", None, 3):
        assert check.test(bad) == "must be a tuple of positive integers", bad
    assert schema.int_tuple("x", ge=0).test(()) is None and schema.int_tuple("x", ge=0).test((0,)) is None
    assert schema.int_tuple("x", allow_none=True).test(None) is None
    check = schema.custom(lambda v: v in ("a", "b"), "'a' or 'b'", type=str)
    assert (check.kind, check.type, check.test("a"), check.test("c")) == ("custom", str, None, "must be 'a' or 'b'")


@pytest.mark.parametrize("kind,field,bounds", VALIDATED, ids=[f for _, f, _ in VALIDATED])
def test_every_validated_field_rejects_bad_values(kind, field, bounds):
    """A bad-value test for each field the validator checks: the error names the field and the value."""
    from ml_collections import config_dict

    from jebm import config_validation

    for bad in _bad_values(kind, bounds):
        config = config_dict.ConfigDict(load_config("gmm_sgld").to_dict(), type_safe=False)
        *parents, leaf = field.split(".")
        node = config
        for p in parents:
            node = node[p]
        node[leaf] = bad
        with pytest.raises(config_validation.ConfigError) as err:
            config_validation.validate(config)
        assert f"{field}={bad!r}" in str(err.value), (field, bad, str(err.value))


@pytest.mark.slow
def test_a_preset_field_can_be_set_back_to_none_from_the_command_line():
    # `--config.sampler.bounds=None` reaches the tuple field as (None,); the :cpu preset's
    # bounds must still be removable. A bad step size makes the run stop at validation,
    # whose message must then be about the step size alone.
    config = load_config("mnist_sgld", "cpu")
    config.lock()
    config.sampler.bounds = (None,)
    config.eval.long_run_curve = (None,)  # not None in base_config: left for validation to reject
    assert config_lib.none_from_command_line(config) == ["sampler.bounds"]
    assert config.sampler.bounds is None and config.eval.long_run_curve == (None,)
    env = dict(os.environ, JEBM_COMPILATION_CACHE="")
    proc = subprocess.run([sys.executable, "-m", "jebm.main", "--config=configs/mnist_sgld.py:cpu,smoke",
                           "--config.sampler.bounds=None", "--config.sampler.step_size=-1",
                           "--workdir=/nonexistent/never_written"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "sampler.step_size=-1.0" in proc.stderr and "sampler.bounds" not in proc.stderr, proc.stderr[-2000:]
