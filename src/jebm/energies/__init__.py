"""Energy models ``E(x) = head(f(x) + c)``: backbones, heads and a factory.

Convention: a model maps inputs ``(n, ...)`` to energies ``(n,)``, one per
example, with ``p(x) ∝ exp(-E(x))``. ``register(name, factory)`` adds a user
backbone that configs select by ``energy.name``; ``with_head(module, head=...)``
puts one of jebm's heads on any Flax module; ``from_config(config.energy)``
is the model a run's ``energy`` block names.
"""

from jebm.energies.factory import (
    BUILT_IN_NETWORKS,
    DEFAULT_MLP_HIDDEN,
    NETWORKS,
    NO_HEAD,
    energy_fn,
    energy_grad_norms,
    features_fn,
    make_energy,
    quadratic_stall_check,
    register,
    unregister,
    with_head,
)
from jebm.energies.heads import (
    DEFAULT_HEAD_OFFSETS,
    HEADS,
    EnergyHead,
    EnergyModel,
    beta_energy,
    gamma_energy,
    quadratic_energy,
    quadratic_stall_report,
    resolve_head_offset,
)
from jebm.energies.options import from_config, resolve_conv_impl
from jebm.energies.networks import (
    ACTIVATIONS,
    MLP,
    CustomCNN,
    LeNet,
    ToyMLP,
    activation_fn,
)

__all__ = [
    "ACTIVATIONS",
    "BUILT_IN_NETWORKS",
    "NO_HEAD",
    "DEFAULT_HEAD_OFFSETS",
    "DEFAULT_MLP_HIDDEN",
    "HEADS",
    "NETWORKS",
    "CustomCNN",
    "EnergyHead",
    "EnergyModel",
    "LeNet",
    "MLP",
    "ToyMLP",
    "activation_fn",
    "beta_energy",
    "energy_fn",
    "energy_grad_norms",
    "features_fn",
    "from_config",
    "gamma_energy",
    "make_energy",
    "quadratic_energy",
    "quadratic_stall_check",
    "quadratic_stall_report",
    "register",
    "resolve_conv_impl",
    "resolve_head_offset",
    "unregister",
    "with_head",
]
