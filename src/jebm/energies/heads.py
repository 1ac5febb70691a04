"""Heads: the output activation turning a backbone's ``f(x)`` into ``E(x)``.

With ``u = f(x) + c`` (``c`` the head offset, see below) the heads are

* ``linear``:    ``E = u``;
* ``quadratic``: ``E = ½ u²`` (paper Eq. 20), so ``∇ₓE = u ∇ₓf``;
* ``beta``:      ``E = u + (β/2) u²``, ``β`` learnable, initialised near 0;
* ``gamma``:     ``E = u + γ √n ‖x‖²``, ``γ`` learnable, initialised near 0,
  ``n`` the number of elements of one example (784 for MNIST, 2 for the toy);
* ``beta_gamma``: ``E = u + (β/2) u² + γ √n ‖x‖²``, both terms.

``β`` can be fixed instead of learned (``beta_learnable=False`` with
``beta_init``, the report's hand-tuned β), or learned from a chosen start
(``beta_init``); by default it is learned from N(0, init_std²).

The head offset and the quadratic stall
    A freshly initialised network often has ``f ≈ 0`` (the paper author drew
    every linear layer from N(0, 0.01²)). The quadratic head then gives
    ``E ≈ 0`` and ``∇ₓE = f ∇ₓf ≈ 0``: the sampler performs a pure random
    walk, and the contrastive-divergence gradient ``∂E/∂θ = f ∂f/∂θ`` is ≈ 0
    too, so training barely starts (with ``f ≡ 0`` it never does). Adding a
    constant ``c`` before the head, ``E = ½ (f + c)²``, removes the stall:
    at initialisation ``∇ₓE ≈ c ∇ₓf``, the linear head's gradient for
    ``c = 1``. It changes nothing the network can represent (the final
    layer's bias absorbs ``c``), so it is purely a choice of starting point;
    the offset is used rather than a bias initialiser because it works the
    same for every backbone. Its default is 1 for ``quadratic`` and 0 for
    the other heads, where it would only shift ``E`` by a constant.
    ``quadratic_stall_report`` detects the stall from a first batch.
"""

from __future__ import annotations

import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from jebm.energies.networks import check_choice, flatten_examples

Array = jax.Array

HEADS = ("beta", "beta_gamma", "gamma", "linear", "quadratic")
BETA_HEADS = ("beta", "beta_gamma")  # the heads with a β
GAMMA_HEADS = ("beta_gamma", "gamma")  # the heads with a γ

# Why 1 for quadratic: see the module docstring ("the quadratic stall").
DEFAULT_HEAD_OFFSETS = {"beta": 0.0, "beta_gamma": 0.0, "gamma": 0.0, "linear": 0.0, "quadratic": 1.0}

# Below this mean |u| the quadratic head damps ∇ₓE by at least 10x relative
# to the linear head, which is when sampling starts as a near random walk.
DEFAULT_STALL_TOL = 0.1


def quadratic_energy(u: Array) -> Array:
    """``E = ½ u²`` (paper Eq. 20)."""
    return 0.5 * jnp.square(u)


def beta_energy(u: Array, beta: Array) -> Array:
    """``E = u + (β/2) u²``."""
    return u + 0.5 * beta * jnp.square(u)


def gamma_energy(u: Array, x: Array, gamma: Array) -> Array:
    """``E = u + γ √n ‖x‖²`` with ``n`` the number of elements of one example.

    Args:
      u: head input, shape ``(batch,)``.
      x: the network's inputs, shape ``(batch, ...)``; flattened per example.
      gamma: scalar. A negative ``γ`` makes ``exp(-E)`` unnormalisable in
        general; it is left unconstrained as in the paper.

    Returns:
      Energies of shape ``(batch,)``.
    """
    x_flat = flatten_examples(x)
    sq_norm = jnp.sum(jnp.square(x_flat), axis=1)
    return u + gamma * math.sqrt(x_flat.shape[1]) * sq_norm


def head_values(params) -> dict:
    """The learnable head scalars in ``params``: ``{"beta": β}`` and/or ``{"gamma": γ}`` as floats.

    Empty for heads without parameters (and without ``beta`` when β is fixed).
    Works on single-model parameters (what training logs every ``log_every``
    steps and reports in ``summary.json``).
    """
    if hasattr(params, "get") and "params" in params:  # a Flax variables dict
        params = params["params"]
    head = params.get("energy_head", {}) if hasattr(params, "get") else {}
    return {name: float(head[name]) for name in ("beta", "gamma") if name in head}


def resolve_head_offset(head: str, head_offset: Optional[float]) -> float:
    """The offset added to ``f`` before ``head``: ``head_offset`` or the head's default."""
    check_choice("head", head, HEADS)
    return DEFAULT_HEAD_OFFSETS[head] if head_offset is None else float(head_offset)


class EnergyHead(nn.Module):
    """Applies the head named ``kind`` to ``u``, owning its parameters.

    Attributes:
      kind: one of ``HEADS``.
      init_std: ``β`` and ``γ`` start from N(0, init_std²), i.e. "randomly
        initialised around 0" as in the paper; 0 starts them exactly at 0.
      beta_learnable: ``False`` fixes ``β = beta_init`` (a constant, not a
        parameter), the report's hand-tuned β.
      beta_init: ``None`` draws the learnable β from N(0, init_std²); a number
        starts it there (or fixes it there, with ``beta_learnable=False``).
    """

    kind: str = "linear"
    init_std: float = 0.01
    beta_learnable: bool = True
    beta_init: Optional[float] = None

    def _beta(self) -> Array:
        if not self.beta_learnable:
            if self.beta_init is None:
                raise ValueError("energy.beta_learnable=False needs a number for energy.beta_init (the fixed β)")
            return jnp.asarray(self.beta_init, jnp.float32)
        if self.beta_init is None:
            init = nn.initializers.normal(stddev=self.init_std)
        else:
            init = nn.initializers.constant(self.beta_init)
        return self.param("beta", init, (), jnp.float32)

    @nn.compact
    def __call__(self, u: Array, x: Array) -> Array:
        """Return energies ``(batch,)`` from head inputs ``u`` and inputs ``x``."""
        check_choice("head", self.kind, HEADS)
        init = nn.initializers.normal(stddev=self.init_std)
        if self.kind == "quadratic":
            return quadratic_energy(u)
        energy = u
        if self.kind in BETA_HEADS:
            energy = beta_energy(u, self._beta())
        if self.kind in GAMMA_HEADS:
            energy = gamma_energy(energy, x, self.param("gamma", init, (), jnp.float32))
        return energy


class EnergyModel(nn.Module):
    """``E(x) = head(backbone(x) + head_offset)``, one energy per example.

    Parameters live under ``"backbone"`` and (for ``beta``/``gamma``)
    ``"energy_head"``.

    Attributes:
      backbone: a module mapping ``(n, ...)`` inputs to ``f`` of shape ``(n,)``.
      head: one of ``HEADS``.
      head_offset: constant ``c`` added to ``f`` before the head; ``None``
        takes the head's default (1 for ``quadratic``, else 0). See the module
        docstring for why.
      head_init_std: std of the initial ``β`` or ``γ``.
      beta_learnable, beta_init: see ``EnergyHead``.
    """

    backbone: nn.Module
    head: str = "linear"
    head_offset: Optional[float] = None
    head_init_std: float = 0.01
    beta_learnable: bool = True
    beta_init: Optional[float] = None

    def __post_init__(self):
        # Fail at construction rather than at the first init/apply.
        check_choice("head", self.head, HEADS)
        super().__post_init__()

    def setup(self):
        """Creates the head (flax's ``setup`` hook)."""
        self.energy_head = EnergyHead(kind=self.head, init_std=self.head_init_std,
                                      beta_learnable=self.beta_learnable, beta_init=self.beta_init)

    @property
    def offset(self) -> float:
        """The offset actually used: ``head_offset`` or the head's default."""
        return resolve_head_offset(self.head, self.head_offset)

    def features(self, x: Array) -> Array:
        """The head's input ``u = f(x) + offset``, shape ``(n,)``."""
        return self.backbone(x) + self.offset

    def __call__(self, x: Array) -> Array:
        """Energies ``E(x)`` of shape ``(n,)`` for inputs ``(n, ...)``."""
        return self.energy_head(self.features(x), x)


def quadratic_stall_report(head_inputs: Array, grad_norms: Array, *, tol: float = DEFAULT_STALL_TOL) -> dict:
    """Tell whether the quadratic head starts stalled, from one batch.

    Pure and jittable; call ``bool(report["stalled"])`` outside ``jit`` to
    decide whether to warn.

    Args:
      head_inputs: ``u = f(x) + offset`` on a batch, shape ``(n,)``
        (``model.apply(params, x, method=EnergyModel.features)``).
      grad_norms: per-example ``‖∇ₓE(x)‖``, shape ``(n,)``.
      tol: ``mean |u|`` below which the head counts as stalled; since
        ``∇ₓE = u ∇ₓf``, this is the factor by which the quadratic head damps
        the gradient relative to the linear one.

    Returns:
      ``{"mean_abs_f": mean |u|, "mean_grad_norm": mean ‖∇ₓE‖,
      "stalled": mean |u| < tol}`` as JAX scalars.
    """
    mean_abs_f = jnp.mean(jnp.abs(head_inputs))
    return {
        "mean_abs_f": mean_abs_f,
        "mean_grad_norm": jnp.mean(grad_norms),
        "stalled": mean_abs_f < tol,
    }
