"""Command line: ``python -m jebm.main --config=configs/gmm_sghmc.py --workdir=/tmp/run``.

Overrides: ``--config.sampler.step_size=0.005``; presets:
``--config=configs/gmm_sgld.py:pcd``. Re-running with the same ``--workdir``
resumes from its newest checkpoint. ``--mode=eval --workdir=W`` re-evaluates
W's newest checkpoint with its own config.json and writes ``eval_<step>.json``.
``--mode=sample --workdir=W --num_samples=N --out=F.npy [--num_steps=L] [--seed=S]``
draws N samples from fresh chains on W's newest checkpoint (``jebm.sample``).
Neither needs ``--config``.
"""

import os

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
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import jax

    from jebm import config_validation, train

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
    app.run(main)
