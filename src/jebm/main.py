"""Command line: ``python -m jebm.main --config=configs/gmm_sghmc.py --workdir=/tmp/run``.

Overrides: ``--config.sampler.step_size=0.005``; presets:
``--config=configs/gmm_sgld.py:pcd``. Re-running with the same ``--workdir``
resumes from its newest checkpoint. ``--mode=eval --workdir=W`` re-evaluates
W's newest checkpoint with its own config.json and writes ``eval_<step>.json``.
``--mode=sample --workdir=W --num_samples=N --out=F.npy [--num_steps=L] [--seed=S]``
draws N samples from fresh chains on W's newest checkpoint (``jebm.sample``).
Neither needs ``--config``. ``--imports=mod_or_file.py,...`` imports a user's
modules first (those that register their own energies or datasets). After a regular (non-editable) install,
``--config=configs/<name>.py`` works from any directory: see :func:`resolve_config_argv`.
"""

import importlib.resources
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Config file (optionally :preset).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, samples and figures.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "sample"],
                  "train: train (or resume) then evaluate; eval: re-evaluate the workdir's newest checkpoint; "
                  "sample: draw --num_samples from fresh chains on it into --out.")
flags.DEFINE_integer("num_samples", 1000, "--mode=sample: number of fresh chains.")
flags.DEFINE_integer("num_steps", None, "--mode=sample: sampler steps (default: the run's eval.sampler_steps).")
flags.DEFINE_integer("seed", 0, "--mode=sample: seed of the chains' randomness.")
flags.DEFINE_string("out", None, "--mode=sample: the .npy file to write, shape (num_samples, *example_shape).")
flags.DEFINE_list("imports", [], "Python modules or .py files to import first, e.g. ones that add a user's "
                  "energy or dataset with jebm.energies.register / jebm.data.register.")
flags.mark_flags_as_required(["workdir"])


def resolve_config_argv(argv):
    """Points ``--config=configs/NAME.py[:presets]`` at the installed ``jebm.configs`` where needed.

    A ``--config=configs/NAME.py`` (or ``--config configs/NAME.py``) whose file does
    not exist relative to the working directory becomes the same file of the
    installed package, presets kept; every other argument is returned unchanged. In
    a clone ``configs`` links to src/jebm/configs, so there nothing changes.
    """
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            argv[i] = "--config=" + _packaged_config(arg[len("--config="):])
        elif arg == "--config" and i + 1 < len(argv):
            argv[i + 1] = _packaged_config(argv[i + 1])
    return argv


def _packaged_config(value):
    path, sep, presets = value.partition(":")
    name = path.removeprefix("configs/")
    if name == path or "/" in name or os.path.exists(path):
        return value
    packaged = importlib.resources.files("jebm.configs") / name
    return str(packaged) + sep + presets if packaged.is_file() else value


def import_user_modules(names) -> None:
    """Imports each ``--imports`` entry: a module name, or the path of a ``.py`` file.

    Raises:
      app.UsageError: for a file or module that cannot be found.
    """
    import importlib
    import importlib.util

    for name in names:
        if name.endswith(".py"):
            if not os.path.isfile(name):
                raise app.UsageError(f"--imports: no file {name!r}")
            module_name = os.path.splitext(os.path.basename(name))[0]
            spec = importlib.util.spec_from_file_location(module_name, name)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        else:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as err:
                raise app.UsageError(f"--imports: cannot import {name!r}: {err}") from err


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import jax

    from jebm import config_validation, train

    import_user_modules(flags.FLAGS.imports)
    # Compile once per config and machine: later runs reuse XLA's output.
    cache = os.environ.get("JEBM_COMPILATION_CACHE", os.path.expanduser("~/.cache/jebm/xla"))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    if flags.FLAGS.mode == "sample":
        _sample(flags.FLAGS)
        return
    if flags.FLAGS.mode == "eval":
        summary = train.evaluate_workdir(flags.FLAGS.workdir, flags.FLAGS.config)
        logging.info("Evaluated: %s", {k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
        return
    config = flags.FLAGS.config
    if config is None:
        raise app.UsageError("--config is required with --mode=train")
    config_validation.validate(config)
    if config.sharding.distributed:
        jax.distributed.initialize()
    logging.info("Config:\n%s", config)
    summary = train.train_and_evaluate(config, flags.FLAGS.workdir)
    logging.info("Done: %s", {k: v for k, v in summary.items() if isinstance(v, (int, float, str))})


def _sample(f):
    import jax
    import numpy as np

    from jebm import api, fileio

    if not f.out or not f.out.endswith(".npy"):
        raise app.UsageError(f"--mode=sample needs --out=FILE.npy, got --out={f.out!r}")
    if f.num_samples < 1 or (f.num_steps is not None and f.num_steps < 1):
        raise app.UsageError(f"--num_samples and --num_steps must be >= 1, got {f.num_samples} and {f.num_steps}")
    restored = api.restore(f.workdir)
    samples = api.sample(restored, jax.random.key(f.seed), f.num_samples, num_steps=f.num_steps)
    fileio.save_npy(f.out, samples)
    logging.info("Wrote %s: %s samples from step %d of %s (%.1f%% of values non-finite)", f.out, samples.shape,
                 restored.step, f.workdir, 100 * float(np.mean(~np.isfinite(samples))))


if __name__ == "__main__":
    app.run(main, argv=resolve_config_argv(sys.argv))
