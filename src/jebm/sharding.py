"""Data parallelism over devices with JAX's own sharding.

With ``config.sharding.enabled`` the chains and the data batch are split over
a one-axis mesh named ``data`` (all devices of all hosts), parameters and
optimizer state are replicated, and the CD gradient, a mean over the batch,
becomes an all-reduce that XLA inserts: the optimizer step is a data-parallel
mean. Everything is expressed through ``NamedSharding`` on the jitted train
step, so the same code runs on one device, 8 simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``), a multi-GPU host,
or several processes and hosts after ``jax.distributed.initialize()`` (the
CLI calls it with ``--coordinator_address/--num_processes/--process_id``, or
with ``sharding.distributed=True`` alone where JAX detects the cluster, e.g.
SLURM). The mesh then spans the devices of every process, and ``host_local``
brings arrays back to one host.

On a CPU-only machine JAX sees one CPU device, which spreads a large batch over
the cores with XLA's threads but runs a small one (a training step's 64 chains)
on about one core. ``sharding.num_cpu_devices=N`` (``use_cpu_devices``) splits the host's
CPU into N XLA devices before JAX starts, so that ``sharding.enabled`` spreads
the chains over N cores (the same mechanism as ``--xla_force_host_platform_device_count``,
set from the config).

The evaluation's chains are not split: a batch of hundreds of chains already
keeps every core of a CPU busy through XLA's own threads (500 MNIST chains on
a 2-core CPU: 9.0 s per 300 steps on one device, 12.7 s split over two by a
sharding constraint, 8.5 s by ``shard_map``), while the training's 64 chains do
not (0.155 s per step split over two devices, 0.28-0.31 s on one).

Batches are computed on device from the step (``TrainData.batch``) with a
data-sharded output, so each device draws only its own shard and no host
ever holds the global batch.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    """A one-axis mesh ``data`` over ``devices`` (default: every device of every host)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """Leading axis split over ``data``; the rest replicated."""
    return NamedSharding(mesh, P(AXIS))


def state_shardings(state, mesh: Mesh):
    """Shardings for a ``TrainState``: the PCD bank split over ``data``, all else replicated."""
    rep, split = replicated(mesh), batch_sharded(mesh)
    shardings = jax.tree_util.tree_map(lambda _: rep, state)
    if state.bank is not None:
        shardings = shardings.replace(bank=jax.tree_util.tree_map(lambda _: split, state.bank))
    return shardings


def host_local(tree):
    """Every array of ``tree`` as a NumPy array on this host.

    A replicated array (parameters) is read from this process's own copy, with no
    communication; an array split over several processes' devices is gathered
    with ``multihost_utils.process_allgather``, which every process must call
    together.
    """
    from jax.experimental import multihost_utils

    def one(x):
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return np.asarray(x)
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree_util.tree_map(one, tree)


def use_cpu_devices(n: int) -> None:
    """Makes JAX's CPU backend ``n`` devices (``jax_num_cpu_devices``); ``n = 0`` leaves JAX's default.

    The option only takes effect before JAX starts its backends (before any JAX
    operation in the process); the CLI's training and ``train.train`` call this first. It
    overrides ``XLA_FLAGS=--xla_force_host_platform_device_count``.

    Raises:
      ValueError: JAX's backend already started with another number of CPU devices.
    """
    if not n or jax.config.jax_num_cpu_devices == n:
        return
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # the backend is already up: fine if it has n CPU devices anyway
        have = len(jax.devices("cpu"))
        if have != n:
            raise ValueError(
                f"sharding.num_cpu_devices={n}, but JAX already started with {have} CPU device(s) in this process: "
                f"the field must take effect before any JAX operation. Call jebm.sharding.use_cpu_devices({n}) right "
                f"after importing jax, run in a new process, or set sharding.num_cpu_devices=0") from None


def check_divisible(mesh: Mesh, **sizes: int) -> None:
    """Every sharded size must split evenly over the devices.

    Raises:
      ValueError: naming the field, its value and the device count.
    """
    n = mesh.devices.size
    for field, size in sizes.items():
        if size % n:
            raise ValueError(f"{field}={size} must be divisible by the {n} devices of the 'data' axis when sharding.enabled")


def train_state_shardings(config, num_chains: int, state):
    """A ``TrainState``'s shardings over all devices of all processes, or ``None`` unless ``sharding.enabled``.

    Raises:
      ValueError: a sharded size (batch, chains, bank) does not divide by the device count, or
        several processes run without ``sharding.enabled``.
    """
    if not config.sharding.enabled:
        if jax.process_count() > 1:
            raise ValueError(f"{jax.process_count()} processes train one model only with sharding.enabled=True "
                             "(the CLI sets it when distributed); it is False")
        return None
    mesh = make_mesh()
    sizes = {"training.batch_size": config.training.batch_size, "sampler.num_chains": num_chains}
    if state.bank is not None:
        sizes["chain_init.bank_size"] = config.chain_init.bank_size
    check_divisible(mesh, **sizes)
    return state_shardings(state, mesh)


def place(tree, shardings):
    """``tree`` put on devices as ``shardings`` says; unchanged when ``shardings`` is ``None`` (no sharding)."""
    return tree if shardings is None else jax.device_put(tree, shardings)
