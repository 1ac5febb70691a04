"""FLOPs counted by hand, to turn times into GFLOP/s.

Only the matrix products and convolutions are counted, 2 FLOPs per
multiply-add; biases, activations and the sampler's own update are left out
(they are a few per element, well under 1% here). XLA's own count
(``compiled.cost_analysis()["flops"]``) includes the elementwise work and is
reported beside this one as a check.
"""

from __future__ import annotations

from jebm.energies.networks import TOY_HIDDEN

# The paper's custom CNN (Table 3) as (out_h, out_w, out_c, k_h, k_w, in_c):
# every output element of a convolution is k_h k_w in_c multiply-adds.
CNN_CONVS = (
    (16, 16, 16, 5, 5, 1),
    (8, 8, 32, 3, 3, 16),
    (4, 4, 64, 3, 3, 32),
    (2, 2, 64, 3, 3, 64),
)
CNN_DENSES = ((2 * 2 * 64, 64), (64, 1))


def cnn_forward_macs() -> int:
    """Multiply-adds of one example's forward pass through the custom CNN."""
    convs = sum(h * w * c * kh * kw * cin for h, w, c, kh, kw, cin in CNN_CONVS)
    denses = sum(n_in * n_out for n_in, n_out in CNN_DENSES)
    return convs + denses


def cnn_grad_x_flops(batch: int) -> int:
    """FLOPs of ``∇ₓE`` on ``batch`` images: forward plus backward w.r.t. the input.

    The backward pass w.r.t. the input multiplies each layer's output
    gradient by the transposed layer, the same multiply-adds as its forward
    pass; the parameter gradients, which a sampler does not need, are not
    computed. So the count is twice the forward: ``2 · 2 · MACs``.
    """
    return 4 * cnn_forward_macs() * batch


def mlp_macs(widths) -> int:
    """Multiply-adds of one example through dense layers of the given widths."""
    return sum(a * b for a, b in zip(widths[:-1], widths[1:]))


TOY_WIDTHS = (2,) + tuple(TOY_HIDDEN) + (1,)


def toy_iteration_flops(n_chains: int, n_steps: int, n_data: int) -> int:
    """FLOPs of one toy training iteration.

    ``n_steps`` gradients w.r.t. the input on ``n_chains`` points (forward and
    backward, ``4 · MACs`` each), then the contrastive-divergence loss's
    gradient w.r.t. the parameters on ``n_data + n_chains`` points (forward,
    backward to the activations, and the weight gradients: ``6 · MACs``).
    """
    macs = mlp_macs(TOY_WIDTHS)
    return 4 * macs * n_chains * n_steps + 6 * macs * (n_data + n_chains)


def matmul_flops(n: int) -> int:
    """FLOPs of one ``n × n`` by ``n × n`` matrix product."""
    return 2 * n**3


def conv_flops(batch: int, out_h: int, out_w: int, out_c: int, k_h: int, k_w: int, in_c: int) -> int:
    """FLOPs of one convolution's forward pass."""
    return 2 * batch * out_h * out_w * out_c * k_h * k_w * in_c
