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


def check_divisible(mesh: Mesh, **sizes: int) -> None:
    """Every sharded size must split evenly over the devices.

    Raises:
      ValueError: naming the field, its value and the device count.
    """
    n = mesh.devices.size
    for field, size in sizes.items():
        if size % n:
            raise ValueError(f"{field}={size} must be divisible by the {n} devices of the 'data' axis when sharding.enabled")
