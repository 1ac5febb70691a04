"""A config's ``energy`` block as a model: the options it gives the factory, and the checks on what it builds.

``from_config(config.energy)`` is the model a run trains: ``energy.name``'s
network (or a user's Flax module) under the head the block names.
:func:`resolve_conv_impl` picks the CNN's convolution for the backend when
``energy.conv_impl`` is left empty.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jebm.energies.factory import CNN_NETWORKS, make_energy, with_head


def resolve_conv_impl(conv_impl: str, backend: str | None = None) -> str:
    """``energy.conv_impl`` as the CNN gets it: ``""`` picks by backend.

    On the CPU the im2col convolution makes a sampler step of the same
    function 2.2-2.7x faster than XLA's (benchmarks/README.md); on GPUs and TPUs XLA's
    convolution (cuDNN, the TPU's MXU) is the one to use.
    """
    if conv_impl:
        return conv_impl
    return "im2col" if (backend or jax.default_backend()) == "cpu" else "xla"


def head_options(e) -> dict:
    """The ``energy.*`` fields the head takes, as keyword arguments of ``make_energy`` / ``with_head``."""
    options = dict(head=e.head, head_offset=e.head_offset, beta_learnable=bool(e.get("beta_learnable", True)))
    if e.get("beta_init") is not None:
        options["beta_init"] = float(e.beta_init)
    return options


def backbone_options(e) -> dict:
    """The ``energy.*`` fields a built-in (or registered) network takes, as keyword arguments."""
    options = {}
    if e.activation:
        options["activation"] = e.activation
    if e.hidden is not None:
        options["hidden"] = tuple(e.hidden)
    if e.out_init_std is not None:
        options["out_init_std"] = e.out_init_std
    if e.param_init:
        options["param_init"] = e.param_init
    if e.name in CNN_NETWORKS:
        options["conv_impl"] = resolve_conv_impl(e.conv_impl)
    if e.get("channels", 0):
        options["channels"] = int(e.channels)
    if e.get("spectral_norm", 0):
        options["spectral_norm"] = int(e.spectral_norm)
    return options


def from_config(e, energy=None):
    """The model of the ``energy`` config block ``e``: ``energy.name``'s network, or the module ``energy``, under its head."""
    if energy is not None:
        return with_head(energy, **head_options(e))
    return make_energy(e.name, **head_options(e), **backbone_options(e))


def check_energy_shape(model, params, example_shape) -> None:
    """An energy must give one value per example: ``(2, *example_shape) -> (2,)``.

    Raises:
      ValueError: naming the shape the model returned.
    """
    out = jax.eval_shape(lambda p, x: model.apply(p, x), params, jax.ShapeDtypeStruct((2, *example_shape), jnp.float32))
    if getattr(out, "shape", None) != (2,):
        raise ValueError(f"the energy maps inputs of shape (2, *{tuple(example_shape)}) to "
                         f"{getattr(out, 'shape', type(out).__name__)}; it must return one energy per example, shape (2,)")


def describe(e, energy=None) -> str:
    """The energy in words, for ``summary.json``: the network and its head."""
    net = f"user module {type(energy).__name__}" if energy is not None else e.name
    return net if e.head == "none" else f"{net} with head {e.head}"
