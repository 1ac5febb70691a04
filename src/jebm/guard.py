"""The divergence guard of the training loop: what counts as a step that blew up, and the error it raises.

``check_divergence`` reads one step's host-side metrics against the config's
``guard`` bounds; the loop then stops with :class:`DivergenceError` or, with
``guard.on_divergence="rollback"``, goes back to the last checkpoint at a lower
learning rate.
"""

from __future__ import annotations

import math


class DivergenceError(RuntimeError):
    """Training produced non-finite or out-of-bound values; ``step`` is the step that did."""

    def __init__(self, message: str, step: int | None = None):
        super().__init__(message)
        self.step = step


def check_divergence(metrics: dict, step: int, guard) -> str | None:
    """What blew up at ``step`` (host-side metrics), or None if the step is healthy."""
    problems = [
        f"{name} is {float(metrics[name])}"
        for name in ("loss", "energy_pos", "energy_neg", "grad_norm", "param_grad_norm")
        if not math.isfinite(float(metrics[name]))
    ]
    if not bool(metrics["chains_finite"]):
        problems.append("the sampler's chains contain NaN/Inf")
    max_energy, grad_norm = float(metrics["max_abs_energy"]), float(metrics["grad_norm"])
    if math.isfinite(max_energy) and max_energy > guard.max_abs_energy:
        problems.append(f"|energy| reached {max_energy:.3g} > guard.max_abs_energy={guard.max_abs_energy:g}")
    if math.isfinite(grad_norm) and grad_norm > guard.max_grad_norm:
        problems.append(f"‖∇ₓE‖ at the negatives reached {grad_norm:.3g} > guard.max_grad_norm={guard.max_grad_norm:g}")
    if not problems:
        return None
    return (
        f"training diverged at step {step}: " + "; ".join(problems) + ". "
        "Usual fixes: a smaller sampler.step_size (η), a smaller optimizer.learning_rate, "
        "or an energy penalty loss.l2_energy > 0 (e.g. 0.1); or set guard.on_divergence=rollback."
    )
