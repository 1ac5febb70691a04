"""Optimizers by name, built from optax, and the training run's learning rate.

The run's optimizer (:func:`training_optimizer`) keeps its base learning rate
in an ``optax.inject_hyperparams`` state, so that a rollback can lower it, and
multiplies the update by the schedule after it. :func:`learning_rate` and
:func:`scale_learning_rate` find the rate in that state by name, with optax's
tree utilities, whatever the chain's order.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax
import optax.tree_utils as otu

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")


def make_optimizer(name: str, learning_rate: float, weight_decay: float = 0.0, **kwargs) -> optax.GradientTransformation:
    """The outer-loop optimizer.

    ``weight_decay`` follows PyTorch's convention for the optimizers the paper
    used: for ``sgd`` and ``adam`` it is an L2 term added to the gradient
    before the update (``torch.optim.SGD``/``Adam(weight_decay=...)``), for
    ``adamw`` it is decoupled (Loshchilov & Hutter).

    Args:
      name: one of ``OPTIMIZERS``.
      learning_rate: ε > 0.
      weight_decay: ≥ 0.
      **kwargs: passed to the optax constructor (e.g. ``b1``, ``b2``, ``momentum``).

    Raises:
      ValueError: naming the field and the valid values.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer.name={name!r} is not one of {sorted(OPTIMIZERS)}")
    if name == "adamw":
        return optax.adamw(learning_rate, weight_decay=weight_decay, **kwargs)
    base = optax.sgd(learning_rate, **kwargs) if name == "sgd" else optax.adam(learning_rate, **kwargs)
    if weight_decay:
        return optax.chain(optax.add_decayed_weights(weight_decay), base)
    return base


def lr_multiplier(schedule: str, total_steps: int, final_fraction: float = 0.0, warmup_steps: int = 0):
    """``multiplier(step)`` applied to the base learning rate.

    ``constant``: 1. ``cosine``: from 1 at step 0 down to ``final_fraction``
    at ``total_steps`` along a half cosine. ``warmup_steps > 0`` first ramps
    the multiplier linearly from 0 at step 0 to 1 at ``warmup_steps``; the
    schedule then runs over the remaining ``total_steps - warmup_steps``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"optimizer.schedule={schedule!r} is not one of {sorted(SCHEDULES)}")
    if schedule == "constant":
        after = lambda step: jnp.ones((), jnp.float32)  # noqa: E731
    else:
        after = optax.cosine_decay_schedule(1.0, max(total_steps - warmup_steps, 1), alpha=final_fraction)
    if not warmup_steps:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, 1.0, warmup_steps), after], [warmup_steps])


def training_optimizer(optimizer, total_steps: int):
    """The run's ``(tx, multiplier)`` from a config's ``optimizer`` block.

    ``tx`` is ``optimizer.name`` with its base rate held in an
    ``inject_hyperparams`` state, followed by ``scale_by_schedule(multiplier)``;
    ``multiplier`` is :func:`lr_multiplier` over ``total_steps``.
    """
    o = optimizer
    multiplier = lr_multiplier(o.schedule, total_steps, o.final_lr_fraction, o.warmup_steps)
    tx = optax.chain(
        optax.inject_hyperparams(lambda learning_rate: make_optimizer(o.name, learning_rate, o.weight_decay))(
            learning_rate=o.learning_rate
        ),
        optax.scale_by_schedule(multiplier),
    )
    return tx, multiplier


def learning_rate(opt_state, multiplier):
    """The learning rate of the next update: the injected base rate times ``multiplier`` at the schedule's count."""
    count = otu.tree_get(opt_state, "ScaleByScheduleState").count
    return otu.tree_get(opt_state, "learning_rate") * multiplier(count)


def scale_learning_rate(opt_state, factor: float):
    """``opt_state`` with its injected base learning rate times ``factor``."""
    return otu.tree_set(opt_state, learning_rate=otu.tree_get(opt_state, "learning_rate") * factor)
