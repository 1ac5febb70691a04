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


def distributed_options(f) -> dict | None:
    """The keyword arguments of ``jax.distributed.initialize`` the flags ask for, validated.

    ``None`` when none of ``--coordinator_address``, ``--num_processes``,
    ``--process_id`` is given (the config's ``sharding.distributed`` then decides,
    with JAX's cluster auto-detection); otherwise all three are required.

    Raises:
      app.UsageError: naming the flag and its valid values.
    """
    given = {name: getattr(f, name) for name in ("coordinator_address", "num_processes", "process_id")}
    for name, value in (("initialization_timeout", f.initialization_timeout), ("heartbeat_timeout", f.heartbeat_timeout)):
        if value < 1:
            raise app.UsageError(f"--{name}={value}: must be >= 1 second")
    if all(v is None for v in given.values()):
        return None
    missing = [f"--{name}" for name, v in given.items() if v is None]
    if missing:
        raise app.UsageError(f"--coordinator_address, --num_processes and --process_id go together; missing {', '.join(missing)}")
    host, sep, port = f.coordinator_address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise app.UsageError(f"--coordinator_address={f.coordinator_address!r}: must be HOST:PORT with a port "
                             "in 1..65535, e.g. 127.0.0.1:12345")
    if f.num_processes < 1:
        raise app.UsageError(f"--num_processes={f.num_processes}: must be >= 1")
    if not 0 <= f.process_id < f.num_processes:
        raise app.UsageError(f"--process_id={f.process_id}: must be in 0..{f.num_processes - 1} "
                             f"(--num_processes={f.num_processes})")
    if f.mode != "train":
        raise app.UsageError(f"--mode={f.mode} runs in one process; --coordinator_address, --num_processes and "
                             "--process_id apply to --mode=train only")
    return dict(given, **_timeouts(f))


def _timeouts(f) -> dict:
    """``jax.distributed.initialize``'s timeout arguments from the two timeout flags."""
    return dict(initialization_timeout=f.initialization_timeout, heartbeat_timeout_seconds=f.heartbeat_timeout)


def wait_for_coordinator(address: str, timeout: float) -> float:
    """Waits until a TCP connection to ``address`` (HOST:PORT) succeeds; returns the seconds waited.

    Raises:
      app.UsageError: nothing accepted a connection there within ``timeout`` seconds.
    """
    import socket
    import time

    clock = time.monotonic
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    t0 = clock()
    last = None
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                return clock() - t0
        except OSError as err:
            last = err
        if clock() - t0 >= timeout:
            raise app.UsageError(
                f"--coordinator_address={address}: no coordinator answered within --initialization_timeout={timeout:g} s "
                f"({last.strerror or last if last else 'no answer'}). Process 0 runs the coordinator: start it with the "
                "same --coordinator_address (its host and a free port), and check that this machine can reach it.")
        time.sleep(0.2)


def initialize_distributed(options: dict | None) -> None:
    """Joins the other processes: ``jax.distributed.initialize(**options)``, with gloo CPU collectives.

    ``options`` from :func:`distributed_options`; without ``coordinator_address``,
    ``num_processes`` and ``process_id`` (only timeouts, or ``None``): JAX's
    cluster auto-detection (SLURM, Open MPI, TPU pods). The CPU backend's
    cross-process collectives are set to gloo first (the option only affects
    CPU devices, so it is harmless on GPUs).

    Raises:
      app.UsageError: the coordinator could not be reached in time (naming the address and
        timeout), or no cluster was detected without the flags.
    """
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    options = dict(options or {})
    if options.get("process_id", 0) != 0:
        # JAX's client aborts the whole process (no Python exception) when the coordinator
        # cannot be reached in time; check first, so that the error can say what is wrong.
        waited = wait_for_coordinator(options["coordinator_address"], options["initialization_timeout"])
        options["initialization_timeout"] = max(1, int(options["initialization_timeout"] - waited))
    try:
        jax.distributed.initialize(**options)
    except Exception as err:  # XlaRuntimeError (DEADLINE_EXCEEDED, UNAVAILABLE...) or ValueError from auto-detection
        if "coordinator_address" in options:
            hint = (f"Start every process with the same --coordinator_address={options['coordinator_address']} and "
                    f"--num_processes={options['num_processes']}, process 0 among them, within "
                    f"--initialization_timeout={options['initialization_timeout']} s, and check that every machine "
                    "reaches that address.")
        else:
            hint = ("Without --coordinator_address, --num_processes and --process_id JAX must detect a cluster it "
                    "knows (SLURM, Open MPI, Cloud TPU); elsewhere give the three flags.")
        first = (str(err).splitlines()[0] if str(err) else type(err).__name__).rstrip(".")
        raise app.UsageError(f"jax.distributed.initialize failed: {first}. {hint}"
        ) from err
    logging.info("Process %d of %d, %d local / %d global devices", jax.process_index(), jax.process_count(),
                 jax.local_device_count(), jax.device_count())


# Seconds process 0 waits after its own error before exiting (see run_or_exit).
COORDINATOR_GRACE_S = 3.0

# Substrings of the runtime errors a process sees when another process of the run is gone.
_PEER_LOST = ("Gloo", "Connection reset", "Connection closed", "UNAVAILABLE", "heartbeat", "DEADLINE_EXCEEDED")


def run_or_exit(fn, workdir: str):
    """``fn()`` in one process of a multi-process run; on any error, log it and exit at once with status 1.

    Exiting with ``os._exit`` skips JAX's shutdown barrier, which would otherwise
    keep a failed process waiting (up to 5 minutes) for peers that may be dead
    or still running. An error from the collectives (a peer killed, its machine
    lost) is reported as such, with how to resume.
    """
    import time

    import jax

    try:
        return fn()
    except BaseException as err:  # noqa: BLE001 -- every failure must end the process, not wait at shutdown
        me, n = jax.process_index(), jax.process_count()
        if isinstance(err, jax.errors.JaxRuntimeError) and any(s in str(err) for s in _PEER_LOST):
            logging.error(
                "process %d of %d lost contact with another process of this run (%s). It probably died or was "
                "killed: its log says why. Start all %d processes again with the same flags; they resume from the "
                "newest checkpoint in --workdir=%s.", me, n, str(err).splitlines()[0], n, workdir)
        else:
            logging.exception("process %d of %d failed; stopping it (the other processes stop when they next "
                              "need it)", me, n)
            if me == 0:
                # Process 0 runs the coordinator, and its exit ends the others at once: give those that
                # fail the same way (a config or checkpoint every process reads) time to say so.
                time.sleep(COORDINATOR_GRACE_S)
        logging.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import jax

    from jebm import config_lib, config_validation, sharding, train

    distributed = distributed_options(flags.FLAGS)
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
        initialize_distributed(distributed or _timeouts(flags.FLAGS))
    logging.info("Config:\n%s", config)
    if jax.process_count() > 1:
        summary = run_or_exit(lambda: train.train_and_evaluate(config, flags.FLAGS.workdir), flags.FLAGS.workdir)
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
    app.run(main, argv=resolve_config_argv(sys.argv))
