"""Langevin step and noise sizes as other EBM code writes them, in jebm's (η, T).

jebm's SGLD (:mod:`jebm.samplers.sgld`) is

.. math::  x' = x - \\eta \\nabla_x E(x) + \\sqrt{2 \\eta T}\\, \\xi, \\qquad \\xi \\sim \\mathcal{N}(0, I).

Much PyTorch EBM code (IGEBM's, JEM's) writes the same update with a step
size ``λ`` and a noise standard deviation ``σ`` chosen independently,

.. math::  x' = x - \\lambda \\nabla_x E(x) + \\sigma \\xi,

which is jebm's with ``η = λ`` and ``T = σ² / (2λ)``: the pair (λ, σ) fixes
the temperature the chain samples, ``exp(-E/T)``, usually far below 1.
Code that adds the noise first and takes the gradient step at the noisy
point runs the same chain: its noisy points are jebm's states.

BlackJAX's ``sgld`` moves along ``∇ log p`` with
``x' = x + η ∇log p(x) + √(2Tη) ξ``; with ``log p = -E`` its ``step_size`` and
``temperature`` are jebm's η and T unchanged.
"""

from __future__ import annotations

from jebm.samplers import base


def from_step_and_noise(step: float, noise_std: float) -> dict[str, float]:
    """jebm's SGLD parameters for ``x ← x − λ∇E(x) + σξ``.

    Args:
      step: λ > 0, the gradient step.
      noise_std: σ > 0, the noise's standard deviation.

    Returns:
      ``{"step_size": λ, "temperature": σ² / (2λ)}``, to pass as
      ``jebm.samplers.sgld(energy_fn, **params)``.
    """
    base.check_positive("step", step)
    base.check_positive("noise_std", noise_std)
    return {"step_size": step, "temperature": noise_std**2 / (2 * step)}


def to_step_and_noise(step_size: float, temperature: float) -> tuple[float, float]:
    """The ``(λ, σ) = (η, √(2ηT))`` of jebm's SGLD with step size η at temperature T."""
    base.check_positive("step_size", step_size)
    base.check_positive("temperature", temperature)
    return step_size, (2 * step_size * temperature) ** 0.5
