"""Command line: ``python -m jebm.main --config=configs/gmm_sghmc.py --workdir=/tmp/run``.

Overrides: ``--config.sampler.step_size=0.005``; presets:
``--config=configs/gmm_sgld.py:pcd``. Re-running with the same ``--workdir``
resumes from its newest checkpoint. ``--mode=eval --workdir=W`` re-evaluates
W's newest checkpoint with its own config.json and writes ``eval_<step>.json``.
``--mode=sample --workdir=W --num_samples=N --out=F.npy [--num_steps=L] [--seed=S]``
draws N samples from fresh chains on W's newest checkpoint (``jebm.sample``).
Neither needs ``--config``. ``--imports=mod_or_file.py,...`` imports a user's
modules first (those that register their own energies or datasets). Several processes train one
model with ``--coordinator_address=HOST:PORT --num_processes=N --process_id=I`` on each (or, under
SLURM and other clusters JAX detects, ``--config.sharding.distributed=True`` alone): see the README's
"Multiple processes and machines". After a regular (non-editable) install,
``--config=configs/<name>.py`` works from any directory: see :func:`jebm.launch.resolve_config_argv`.
How a run starts (config lookup, ``--imports``, joining other processes) lives in :mod:`jebm.launch`;
this file holds the flags and what each ``--mode`` does.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jebm import launch

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
flags.DEFINE_string("coordinator_address", None, "Multi-process training: HOST:PORT of process 0's coordinator "
                    "(the same on every process). With --num_processes and --process_id; implies "
                    "sharding.distributed. None of the three: JAX's cluster auto-detection (e.g. SLURM).")
flags.DEFINE_integer("num_processes", None, "Multi-process training: how many processes take part.")
flags.DEFINE_integer("process_id", None, "Multi-process training: this process's id, 0 .. --num_processes - 1.")
flags.DEFINE_integer("initialization_timeout", 300, "Multi-process training: seconds to wait for every process to "
                     "reach the coordinator before failing.")
flags.DEFINE_integer("heartbeat_timeout", 100, "Multi-process training: seconds without a heartbeat after which a "
                     "process counts as dead and the others stop with an error.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import jax

    from jebm import config_lib, config_validation, sharding, train

    distributed = launch.distributed_options(flags.FLAGS)
    launch.import_user_modules(flags.FLAGS.imports)
    launch.use_compilation_cache()
    if flags.FLAGS.mode == "sample":
        _sample(flags.FLAGS)
        return
    if flags.FLAGS.mode == "eval":
        from jebm import api

        summary = api.evaluate_workdir(flags.FLAGS.workdir, flags.FLAGS.config)
        logging.info("Evaluated: %s", {k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
        return
    config = flags.FLAGS.config
    if config is None:
        raise app.UsageError("--config is required with --mode=train")
    config_lib.none_from_command_line(config)  # --config.FIELD=None on a tuple field
    if distributed is not None:  # the flags imply a distributed run
        config.sharding.distributed = True
    if config.sharding.distributed:  # several processes train one model by splitting it over all their devices
        config.sharding.enabled = True
    config_validation.validate(config)
    sharding.use_cpu_devices(config.sharding.num_cpu_devices)  # before the backend starts, and before distributed
    if config.sharding.distributed:
        launch.initialize_distributed(distributed or launch.timeout_options(flags.FLAGS))
    logging.info("Config:\n%s", config)
    if jax.process_count() > 1:
        summary = launch.run_or_exit(lambda: train.train_and_evaluate(config, flags.FLAGS.workdir), flags.FLAGS.workdir)
    else:
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
    app.run(main, argv=launch.resolve_config_argv(sys.argv))
