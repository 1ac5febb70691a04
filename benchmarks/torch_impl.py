"""The same networks and loops written plainly in PyTorch eager, for comparison.

The networks are built from the Flax parameters, so both frameworks compute
the same function on the same inputs (``check_cnn`` measures how closely).
The loops are what a PyTorch user would write: ``autograd.grad`` for ``∇ₓE``
with the parameters' ``requires_grad`` off while sampling, and the update
under ``no_grad``.

PyTorch is optional (the ``bench`` extra); ``available()`` says whether it is
installed.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from benchmarks.jax_cases import (
    CNN_SGHMC_FRICTION,
    CNN_SGHMC_STEP,
    CNN_SGLD_STEP,
    TOY_INIT_RANGE,
    TOY_LR,
    TOY_STEP,
)

try:
    import torch
except ImportError:  # the bench extra is not installed
    torch = None

# The toy network's LeakyReLU slope and the 8-Gaussian mixture (paper Sec. 4.1).
TOY_LEAKY_SLOPE = 0.05
GMM8_STD = 0.15


def available() -> bool:
    """Whether PyTorch is installed."""
    return torch is not None


def version() -> Optional[str]:
    """PyTorch's version, or None."""
    return None if torch is None else torch.__version__


def device_for(jax_backend: str) -> str:
    """``"cuda"`` when JAX runs on a GPU and this PyTorch build has CUDA, else ``"cpu"``."""
    if jax_backend == "gpu" and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def synchronize(device: str) -> None:
    """Waits for queued GPU work; CPU eager work is already done."""
    if device == "cuda":
        torch.cuda.synchronize()


def _tensor(array, device) -> "torch.Tensor":
    return torch.from_numpy(np.array(array, dtype=np.float32)).to(device)


class CustomCNN(torch.nn.Module if torch is not None else object):
    """The paper's Table 3 CNN with Swish, channels-first as PyTorch has it."""

    def __init__(self):
        super().__init__()
        conv = torch.nn.Conv2d
        self.conv1 = conv(1, 16, 5, stride=2, padding=4)
        self.conv2 = conv(16, 32, 3, stride=2, padding=1)
        self.conv3 = conv(32, 64, 3, stride=2, padding=1)
        self.conv4 = conv(64, 64, 3, stride=2, padding=1)
        self.fc1 = torch.nn.Linear(256, 64)
        self.fc2 = torch.nn.Linear(64, 1)

    def forward(self, x):
        act = torch.nn.functional.silu
        h = act(self.conv1(x))
        h = act(self.conv2(h))
        h = act(self.conv3(h))
        h = act(self.conv4(h))
        h = act(self.fc1(torch.flatten(h, 1)))
        return self.fc2(h)[:, 0]


def cnn_from_flax(params, device: str = "cpu", channels_last: bool = False) -> "CustomCNN":
    """A ``CustomCNN`` holding the Flax custom CNN's parameters.

    Flax stores conv kernels HWIO and PyTorch OIHW. Flax flattens the last
    feature map in (h, w, c) order, PyTorch in (c, h, w) order, so ``fc1``'s
    input rows are permuted to match.
    """
    backbone = params["params"]["backbone"]
    net = CustomCNN()
    with torch.no_grad():
        for name in ("conv1", "conv2", "conv3", "conv4"):
            layer = getattr(net, name)
            layer.weight.copy_(_tensor(np.transpose(backbone[name]["kernel"], (3, 2, 0, 1)), "cpu"))
            layer.bias.copy_(_tensor(backbone[name]["bias"], "cpu"))
        fc1 = np.asarray(backbone["fc1"]["kernel"]).reshape(2, 2, 64, 64)  # (h, w, c, out)
        net.fc1.weight.copy_(_tensor(np.transpose(fc1, (3, 2, 0, 1)).reshape(64, 256), "cpu"))
        net.fc1.bias.copy_(_tensor(backbone["fc1"]["bias"], "cpu"))
        net.fc2.weight.copy_(_tensor(np.asarray(backbone["fc2"]["kernel"]).T, "cpu"))
        net.fc2.bias.copy_(_tensor(backbone["fc2"]["bias"], "cpu"))
    net = net.to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.requires_grad_(False)
    return net


def images_from_jax(x, device: str = "cpu", channels_last: bool = False) -> "torch.Tensor":
    """``(n, 28, 28, 1)`` JAX images as an ``(n, 1, 28, 28)`` tensor."""
    t = _tensor(np.transpose(np.asarray(x), (0, 3, 1, 2)), device)
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t.contiguous()


def quadratic_energy(net, offset: float):
    """``E(x) = ½ (f(x) + offset)²``, jebm's quadratic head."""
    return lambda x: 0.5 * torch.square(net(x) + offset)


def grad_x(energy, x):
    """``∇ₓ sum E(x)``, the per-chain gradients."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy(x).sum(), x)
    return grad


def check_cnn(energy, x_torch, energy_jax: np.ndarray, grad_jax: np.ndarray) -> dict:
    """How far PyTorch's energies and ``∇ₓE`` are from JAX's on the same batch.

    Returns:
      ``{"energy_max_rel_err", "grad_max_rel_err"}``, each the largest
      absolute difference over the largest absolute value.
    """
    grad = grad_x(energy, x_torch).detach().cpu().numpy().transpose(0, 2, 3, 1)
    with torch.no_grad():
        e = energy(x_torch).cpu().numpy()
    scale_e = max(float(np.abs(energy_jax).max()), 1e-30)
    scale_g = max(float(np.abs(grad_jax).max()), 1e-30)
    return {
        "energy_max_rel_err": float(np.abs(e - energy_jax).max() / scale_e),
        "grad_max_rel_err": float(np.abs(grad - grad_jax).max() / scale_g),
    }


def sgld_chain(energy, x, n_steps: int, step_size: float = CNN_SGLD_STEP):
    """``n_steps`` of SGLD: ``x ← x − η ∇ₓE(x) + √(2η) w``."""
    noise_scale = math.sqrt(2.0 * step_size)
    for _ in range(n_steps):
        grad = grad_x(energy, x)
        with torch.no_grad():
            x = x - step_size * grad + noise_scale * torch.randn_like(x)
    return x


def sghmc_chain(
    energy,
    x,
    n_steps: int,
    step_size: float = CNN_SGHMC_STEP,
    friction: float = CNN_SGHMC_FRICTION,
    mass: float = 1.0,
):
    """``n_steps`` of SGHMC with jebm's symplectic Euler, momentum from zero.

    ``r ← r − η ∇ₓE(x) − η C r / m + √(2ηC) w``, then ``x ← x + η r / m``.
    """
    noise_scale = math.sqrt(2.0 * step_size * friction)
    momentum = torch.zeros_like(x)
    for _ in range(n_steps):
        grad = grad_x(energy, x)
        with torch.no_grad():
            momentum = (
                momentum - step_size * grad - (step_size * friction / mass) * momentum
                + noise_scale * torch.randn_like(x)
            )
            x = x + (step_size / mass) * momentum
    return x


# ---------------------------------------------------------------------------
# The 2D toy
# ---------------------------------------------------------------------------


def toy_mlp_from_flax(params, device: str = "cpu") -> "torch.nn.Sequential":
    """The paper's 2-32-64-64-64-1 LeakyReLU(0.05) net with the Flax ToyMLP's parameters."""
    backbone = params["params"]["backbone"]
    names = sorted(backbone, key=lambda n: int(n.split("_")[1]))  # Dense_0 ... Dense_4
    layers = []
    for i, name in enumerate(names):
        kernel = np.asarray(backbone[name]["kernel"])
        linear = torch.nn.Linear(*kernel.shape)
        with torch.no_grad():
            linear.weight.copy_(_tensor(kernel.T, "cpu"))
            linear.bias.copy_(_tensor(backbone[name]["bias"], "cpu"))
        layers.append(linear)
        if i < len(names) - 1:
            layers.append(torch.nn.LeakyReLU(TOY_LEAKY_SLOPE))
    return torch.nn.Sequential(*layers).to(device)


def gmm8_sample(n: int, device: str = "cpu"):
    """``n`` points of the paper's 8-Gaussian mixture (means on the unit circle, sd 0.15)."""
    angles = 2.0 * math.pi * torch.arange(8, device=device) / 8
    means = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    idx = torch.randint(0, 8, (n,), device=device)
    return means[idx] + GMM8_STD * torch.randn(n, 2, device=device)


class ToyIteration:
    """One toy training iteration per call, as a PyTorch user would write it.

    Data ``x⁺`` from the mixture; ``x⁻`` from ``n_steps`` of SGLD (η = 0.01)
    from U(−2, 2)²; loss ``mean E(x⁺) − mean E(x⁻)`` with ``x⁻`` detached;
    one SGD step (lr 0.01).
    """

    def __init__(self, params, n_chains: int, n_steps: int, device: str = "cpu"):
        self.net = toy_mlp_from_flax(params, device)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=TOY_LR)
        self.energy = lambda x: self.net(x)[:, 0]
        self.n_chains, self.n_steps, self.device = n_chains, n_steps, device

    def __call__(self):
        n = self.n_chains
        x_pos = gmm8_sample(n, self.device)
        x0 = (torch.rand(n, 2, device=self.device) * 2.0 - 1.0) * TOY_INIT_RANGE
        self.net.requires_grad_(False)  # sampling needs ∇ₓE only
        x_neg = sgld_chain(self.energy, x0, self.n_steps, TOY_STEP)
        self.net.requires_grad_(True)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.energy(x_pos).mean() - self.energy(x_neg.detach()).mean()
        loss.backward()
        self.optimizer.step()
        synchronize(self.device)
        return loss


# ---------------------------------------------------------------------------
# Kernels: matmul peak and one convolution, as in jax_cases
# ---------------------------------------------------------------------------


def matmul_run(n: int, device: str = "cpu"):
    """A blocking callable doing one float32 ``n × n`` matrix product."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)

    def run():
        out = a @ b
        synchronize(device)
        return out

    return run


def conv_forward_run(batch: int, shape, device: str = "cpu", channels_last: bool = False):
    """A blocking callable doing one convolution forward, ``shape = (H, W, C_in, C_out, k, stride)``."""
    height, width, c_in, c_out, k, stride = shape
    conv = torch.nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False).to(device)
    conv.requires_grad_(False)
    x = torch.randn(batch, c_in, height, width, device=device)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def run():
        out = conv(x)
        synchronize(device)
        return out

    return run
