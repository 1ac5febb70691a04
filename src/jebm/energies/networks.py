"""Backbones: networks mapping a batch of inputs to one scalar ``f(x)`` each.

Every backbone takes inputs with a leading batch (chain) axis of size ``n`` and
returns ``f`` of shape ``(n,)``. Example ``i``'s output reads only example
``i`` (no batch statistics, hence no batch norm, which the paper also found
harmful), so the gradient of ``sum(f)`` with respect to the inputs is the
per-example gradient the samplers need.

The head (``jebm.energies.heads``) turns ``f`` into the energy ``E``.

Networks:
  * ``ToyMLP``: the paper's 2D toy net, 2-32-64-64-64-1 with LeakyReLU(0.05).
  * ``MLP``: the same design with free widths and activation.
  * ``LeNet``: LeNet-5 layout for 28x28x1 images.
  * ``CustomCNN``: the paper's Table 3 strided CNN for 28x28x1 images.

``conv_as_matmul`` is a drop-in for ``lax.conv_general_dilated`` that computes
a convolution as one matrix product (im2col); ``CustomCNN(conv_impl=...)``
chooses between it and XLA's convolution.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
Dtype = Any

ACTIVATIONS = ("leaky_relu", "swish", "tanh")

# The paper's toy network (Sec. 4.1) uses LeakyReLU with slope 0.05; every
# network here defaults to it so the activation family reads the same.
DEFAULT_LEAKY_SLOPE = 0.05

# Hidden widths of the paper's toy network, 2-32-64-64-64-1.
TOY_HIDDEN = (32, 64, 64, 64)

# How CustomCNN computes its convolutions: "xla" calls lax.conv_general_dilated,
# "im2col" calls conv_as_matmul. Both compute the same function; see CustomCNN.
CONV_IMPLS = ("im2col", "xla")

# The only layout conv_as_matmul handles: Flax's NHWC images and HWIO kernels.
_NHWC_SPECS = ("NHWC", "HWIO", "NHWC")

# CustomCNN's default micro-batch for conv_as_matmul: the number of images
# whose patches are built and multiplied at once. The patches of a 3x3,
# stride-2 layer are 2.25 times its input (6.25 times for the 5x5 first
# layer); at 64 images they stay in a 2-core CPU's caches, and at batch 256
# and 1024 this made ∇ₓE 1.4-1.6 times faster than one pass over the whole
# batch (benchmarks/README.md). On an accelerator, where the groups would
# only run one after another, pass micro_batch=None.
DEFAULT_MICRO_BATCH = 64


def check_choice(field: str, value, valid) -> None:
    """Reject a name that is not among ``valid``, listing the valid names.

    Args:
      field: the option's name as the user wrote it, e.g. ``"energy.head"``.
      value: the value given.
      valid: the accepted values.

    Raises:
      ValueError: e.g. ``energy.head='cubic' is not one of ['beta', ...]``.
    """
    if value not in valid:
        raise ValueError(f"{field}={value!r} is not one of {sorted(valid)}")


def activation_fn(name: str, leaky_slope: float = DEFAULT_LEAKY_SLOPE) -> Callable[[Array], Array]:
    """The elementwise activation called ``name``.

    Args:
      name: one of ``ACTIVATIONS``.
      leaky_slope: negative-side slope, used by ``"leaky_relu"`` only.

    Returns:
      A function ``Array -> Array``.

    Raises:
      ValueError: when ``name`` is unknown, listing the valid names.
    """
    check_choice("activation", name, ACTIVATIONS)
    if name == "leaky_relu":
        return functools.partial(nn.leaky_relu, negative_slope=leaky_slope)
    return {"swish": nn.swish, "tanh": jnp.tanh}[name]


def output_kernel_init(std: Optional[float]) -> Callable:
    """Initialiser for the final 1-unit dense layer's kernel.

    Args:
      std: ``None`` keeps Flax's default (LeCun normal); a float draws the
        kernel from N(0, std²). The paper author's code drew every linear
        layer from N(0, 0.01²), which makes ``f`` ≈ 0 at initialisation; that
        is what stalls the quadratic head (see ``heads``).

    Returns:
      A Flax kernel initialiser.
    """
    if std is None:
        return nn.linear.default_kernel_init
    return nn.initializers.normal(stddev=std)


def spectral_normalize(kernel: Array, num_iterations: int) -> Array:
    """``W / σ̂(W)``: a layer's kernel divided by an estimate of its largest singular value.

    ``W`` is the kernel as a matrix ``(fan_in, features)`` (a convolution's
    ``(kh, kw, c_in, c_out)`` reshaped to ``(kh·kw·c_in, c_out)``, Miyato et
    al. 2018's convention, which bounds the kernel matrix, not the
    convolution operator). ``σ̂ = uᵀWv`` after ``num_iterations`` power
    iterations ``u ← Wv/‖Wv‖, v ← Wᵀu/‖Wᵀu‖`` from a fixed start ``v₀``, with
    ``u, v`` held constant under differentiation as in Miyato et al. The
    iteration is restarted at every call (no state to carry through the
    sampler's loop), so ``σ̂ ≤ σ`` with the gap shrinking geometrically in
    ``num_iterations`` at the rate ``(σ₂/σ₁)²``.
    """
    w = jnp.reshape(kernel, (-1, kernel.shape[-1])).astype(jnp.float32)
    v = jax.random.normal(jax.random.key(0), (w.shape[1],), jnp.float32)
    v = v / jnp.linalg.norm(v)

    def power_step(_, v):
        u = w @ v
        u = u / jnp.maximum(jnp.linalg.norm(u), 1e-12)
        v = w.T @ u
        return v / jnp.maximum(jnp.linalg.norm(v), 1e-12)

    v = lax.stop_gradient(lax.fori_loop(0, num_iterations, power_step, v))
    u = w @ v
    u = lax.stop_gradient(u / jnp.maximum(jnp.linalg.norm(u), 1e-12))
    sigma = u @ (w @ v)
    return (kernel / sigma).astype(kernel.dtype)


def spectrally_normalized(layer_cls, num_iterations: int):
    """``layer_cls`` (``nn.Conv`` / ``nn.Dense``) whose kernel is used as ``spectral_normalize(kernel)``.

    The stored parameter stays the raw kernel (same names and shapes as the
    plain layer); ``num_iterations = 0`` returns ``layer_cls`` itself.
    """
    if not num_iterations:
        return layer_cls

    def normalize(variables):
        params = dict(variables.get("params", {}))
        if "kernel" in params:
            params["kernel"] = spectral_normalize(params["kernel"], num_iterations)
        return {**variables, "params": params}

    return nn.map_variables(layer_cls, "params", trans_in_fn=normalize, init=True)


def flatten_examples(x: Array) -> Array:
    """Reshape ``(n, ...)`` to ``(n, d)``, one row per example."""
    return jnp.reshape(x, (x.shape[0], -1))


def as_nhwc(x: Array) -> Array:
    """Accept grey images as ``(n, H, W)`` or ``(n, H, W, 1)``; return NHWC.

    Raises:
      ValueError: for any other shape, notably channels-first ``(n, 1, H, W)``,
        which would otherwise be silently misread as a 1-pixel-wide image.
    """
    if x.ndim == 3:
        return x[..., None]
    if x.ndim == 4 and x.shape[-1] == 1:
        return x
    raise ValueError(f"expected images of shape (n, H, W) or (n, H, W, 1), got {x.shape}")


def _is_unit(dilation) -> bool:
    return dilation is None or all(d == 1 for d in dilation)


def conv_as_matmul(
    lhs: Array,
    rhs: Array,
    window_strides: Sequence[int],
    padding,
    lhs_dilation: Optional[Sequence[int]] = None,
    rhs_dilation: Optional[Sequence[int]] = None,
    dimension_numbers=None,
    feature_group_count: int = 1,
    precision=None,
    preferred_element_type=None,
    *,
    micro_batch: Optional[int] = None,
) -> Array:
    """A 2D convolution computed as one matrix product (im2col).

    Drop-in for ``lax.conv_general_dilated`` (the hook ``nn.Conv`` offers as
    its ``conv_general_dilated`` field) for the case Flax's ``nn.Conv`` uses:
    NHWC inputs, HWIO kernels, explicit padding, no dilation, one group.

    With ``x`` padded, output ``y[n, i, j, o]`` is
    ``sum_{a, b, c} x[n, s_h i + a, s_w j + b, c] · w[a, b, c, o]``. Gathering,
    for every output pixel, the ``k_h k_w C`` inputs it reads ("patches", in
    the kernel's own ``(a, b, c)`` order, by strided slices) turns
    the sum into ``patches @ w.reshape(k_h k_w C, O)``: the same products and
    sums, in a different order, so results agree with XLA's convolution to
    float32 rounding.

    Why: on CPU, XLA's convolution of a small network runs well below its
    matrix-product speed, and its input gradient (``∇ₓE``, all a sampler
    needs) is an input-dilated convolution, slower still, notably inside
    ``lax.scan`` (``benchmarks/README.md`` has the measurements). Here the
    gradient is two matrix products and the transpose of the slices, a sum of
    padded copies that XLA fuses into one loop.

    Args:
      lhs: inputs ``(n, H, W, C)``.
      rhs: kernel ``(k_h, k_w, C, O)``.
      window_strides: ``(s_h, s_w)``.
      padding: ``((top, bottom), (left, right))``.
      lhs_dilation: must be ``None`` or all ones.
      rhs_dilation: must be ``None`` or all ones.
      dimension_numbers: must describe NHWC / HWIO / NHWC.
      feature_group_count: must be 1.
      precision: passed to the matrix product.
      preferred_element_type: passed to the matrix product.
      micro_batch: if set and smaller than ``n``, the examples go through in
        groups of this many (``lax.map``), so each group's patches fit in
        cache; examples are independent, so the result is the same.

    Returns:
      ``(n, H_out, W_out, O)`` with ``H_out = (H + top + bottom - k_h) // s_h + 1``
      (likewise ``W_out``).

    Raises:
      ValueError: for any option outside the case above.
    """
    if lhs.ndim != 4 or rhs.ndim != 4:
        raise ValueError(f"conv_as_matmul needs 4D NHWC inputs and HWIO kernels, got {lhs.shape}, {rhs.shape}")
    if dimension_numbers != lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC_SPECS):
        raise ValueError(f"conv_as_matmul needs dimension_numbers {_NHWC_SPECS}, got {dimension_numbers}")
    if isinstance(padding, str) or not (_is_unit(lhs_dilation) and _is_unit(rhs_dilation)):
        raise ValueError("conv_as_matmul needs explicit padding pairs and no dilation")
    if feature_group_count != 1:
        raise ValueError(f"conv_as_matmul needs feature_group_count=1, got {feature_group_count}")
    if micro_batch is not None and not micro_batch >= 1:
        raise ValueError(f"micro_batch must be None or >= 1, got {micro_batch!r}")
    if micro_batch is not None and micro_batch < lhs.shape[0]:
        return _in_micro_batches(
            lambda x: _im2col_matmul(x, rhs, window_strides, padding, precision, preferred_element_type),
            lhs,
            micro_batch,
        )
    return _im2col_matmul(lhs, rhs, window_strides, padding, precision, preferred_element_type)


def conv_general_dilated(conv_impl: str, micro_batch: Optional[int]):
    """``nn.Conv``'s ``conv_general_dilated`` for ``conv_impl``: ``conv_as_matmul`` for ``"im2col"``
    (in groups of ``micro_batch`` examples), ``None`` (XLA's convolution, ``nn.Conv``'s default) for ``"xla"``."""
    check_choice("conv_impl", conv_impl, CONV_IMPLS)
    return functools.partial(conv_as_matmul, micro_batch=micro_batch) if conv_impl == "im2col" else None


def _in_micro_batches(fn: Callable[[Array], Array], x: Array, size: int) -> Array:
    """``fn(x)`` computed ``size`` examples at a time (the last group may be smaller)."""
    n = x.shape[0]
    full = (n // size) * size
    groups = x[:full].reshape((n // size, size) + x.shape[1:])
    out = lax.map(fn, groups)
    out = out.reshape((full,) + out.shape[2:])
    if full < n:
        out = jnp.concatenate([out, fn(x[full:])])
    return out


def _im2col_matmul(lhs, rhs, window_strides, padding, precision, preferred_element_type) -> Array:
    """``conv_as_matmul``'s computation, its arguments already checked."""
    k_h, k_w, channels, features = rhs.shape
    s_h, s_w = window_strides
    x = jnp.pad(lhs, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
    n, height, width, _ = x.shape
    out_h = (height - k_h) // s_h + 1
    out_w = (width - k_w) // s_w + 1
    # The patches are gathered in two passes, columns then rows: k_w + k_h
    # strided slices rather than k_h * k_w, half the ops for XLA to compile
    # (measured: same speed, a fifth less compile time).
    # cols[n, h, j, (b, c)] = x[n, h, s_w j + b, c]
    cols = jnp.concatenate(
        [lax.slice_in_dim(x, b, b + s_w * (out_w - 1) + 1, s_w, axis=2) for b in range(k_w)], axis=-1
    )
    # patches[n, i, j, (a, b, c)] = x[n, s_h i + a, s_w j + b, c]: rhs's row order.
    patches = jnp.concatenate(
        [lax.slice_in_dim(cols, a, a + s_h * (out_h - 1) + 1, s_h, axis=1) for a in range(k_h)], axis=-1
    )
    patches = patches.reshape(n * out_h * out_w, k_h * k_w * channels)
    out = jnp.dot(
        patches,
        rhs.reshape(k_h * k_w * channels, features),
        precision=precision,
        preferred_element_type=preferred_element_type,
    )
    return out.reshape(n, out_h, out_w, features)


class MLP(nn.Module):
    """Fully connected network ``f: R^d -> R`` applied per example.

    Inputs ``(n, ...)`` are flattened to ``(n, d)``; each hidden layer is
    ``Dense -> activation``, the last layer is ``Dense(1)`` with no activation.

    Attributes:
      hidden: widths of the hidden layers, e.g. ``(32, 64, 64, 64)``.
      activation: one of ``ACTIVATIONS``. LeakyReLU is the default because it
        is what the paper's toy network uses.
      leaky_slope: negative-side slope of LeakyReLU (0.05, as in the paper).
      out_init_std: see ``output_kernel_init``.
      param_init: ``"lecun_normal"`` (Flax's default: kernels N(0, 1/fan_in), zero
        biases) or ``"torch"`` (PyTorch's default ``nn.Linear`` init, which the
        paper's author used: kernels and biases U(±1/√fan_in), a third of the
        kernel variance).
      dtype: computation dtype (``None``: inferred from inputs and params).
      param_dtype: parameter dtype.
    """

    hidden: Sequence[int]
    activation: str = "leaky_relu"
    leaky_slope: float = DEFAULT_LEAKY_SLOPE
    out_init_std: Optional[float] = None
    param_init: str = "lecun_normal"  # not "init": that would shadow Module.init
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """Return ``f(x)`` of shape ``(n,)`` for inputs ``(n, ...)``."""
        check_choice("energy.param_init", self.param_init, DENSE_INITS)
        act = activation_fn(self.activation, self.leaky_slope)
        h = flatten_examples(x)
        for width in self.hidden:
            h = act(self._dense(width, h.shape[-1])(h))
        out_kernel = output_kernel_init(self.out_init_std) if self.out_init_std is not None else None
        out = self._dense(1, h.shape[-1], out_kernel)(h)
        return out[:, 0]

    def _dense(self, width: int, fan_in: int, kernel_init=None) -> nn.Dense:
        inits = {}
        if self.param_init == "torch":
            inits = {"kernel_init": _torch_uniform(fan_in), "bias_init": _torch_uniform(fan_in)}
        if kernel_init is not None:
            inits["kernel_init"] = kernel_init
        return nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype, **inits)


DENSE_INITS = ("lecun_normal", "torch")


def _torch_uniform(fan_in: int):
    """PyTorch's default ``nn.Linear`` init for kernels and biases: U(±1/√fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class ToyMLP(MLP):
    """The paper's toy network for 2D data: 2-32-64-64-64-1, LeakyReLU(0.05).

    Same module as ``MLP`` with the paper's widths and activation as defaults,
    so its parameters are laid out identically (``Dense_0`` ... ``Dense_4``).
    """

    hidden: Sequence[int] = TOY_HIDDEN
    activation: str = "leaky_relu"


class LeNet(nn.Module):
    """LeNet-5 layout for 28x28x1 images, ending in one unit.

    ``conv5x5(6, pad 2) -> act -> avgpool2 -> conv5x5(16, valid) -> act ->
    avgpool2 -> fc120 -> act -> fc84 -> act -> fc1``; spatial sizes
    28 -> 28 -> 14 -> 10 -> 5.

    Attributes:
      activation: one of ``ACTIVATIONS``. Swish by default: the paper reports
        that LeNet's classic tanh hurt gradient propagation while LeakyReLU and
        Swish worked, and the author's LeNet code used Swish.
      leaky_slope: negative-side slope of LeakyReLU.
      out_init_std: see ``output_kernel_init``.
      dtype: computation dtype.
      param_dtype: parameter dtype.
      spectral_norm: power iterations of ``spectral_normalize`` applied to
        every layer's kernel; 0 (default) = off.
      conv_impl: ``"xla"`` or ``"im2col"``, as in ``CustomCNN``: the same
        function and parameters, only speed differs (on a CPU, XLA's
        convolution and its input gradient make a LeNet sampler step several
        times slower than the matrix-product form).
      micro_batch: with ``conv_impl="im2col"``, examples per convolution
        call, as in ``CustomCNN``.
    """

    activation: str = "swish"
    leaky_slope: float = DEFAULT_LEAKY_SLOPE
    out_init_std: Optional[float] = None
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32
    spectral_norm: int = 0
    conv_impl: str = "xla"
    micro_batch: Optional[int] = DEFAULT_MICRO_BATCH

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """Return ``f(x)`` of shape ``(n,)`` for images ``(n, 28, 28[, 1])``."""
        act = activation_fn(self.activation, self.leaky_slope)
        conv = functools.partial(
            spectrally_normalized(nn.Conv, self.spectral_norm), dtype=self.dtype, param_dtype=self.param_dtype,
            conv_general_dilated=conv_general_dilated(self.conv_impl, self.micro_batch),
        )
        dense = functools.partial(spectrally_normalized(nn.Dense, self.spectral_norm), dtype=self.dtype,
                                  param_dtype=self.param_dtype)
        h = as_nhwc(x)
        # Padding 2 keeps 28x28, as in LeNet-5 on 32x32 inputs.
        h = act(conv(6, (5, 5), padding=((2, 2), (2, 2)), name="conv1")(h))
        h = nn.avg_pool(h, (2, 2), strides=(2, 2))
        h = act(conv(16, (5, 5), padding=((0, 0), (0, 0)), name="conv2")(h))  # "VALID", written out for im2col
        h = nn.avg_pool(h, (2, 2), strides=(2, 2))
        h = flatten_examples(h)
        h = act(dense(120, name="fc1")(h))
        h = act(dense(84, name="fc2")(h))
        out = dense(1, kernel_init=output_kernel_init(self.out_init_std), name="fc3")(h)
        return out[:, 0]


class CustomCNN(nn.Module):
    """The paper's custom CNN (Table 3): strided convolutions, no pooling.

    ====================  ===========  =====================
    layer                 output       details
    ====================  ===========  =====================
    input                 28 x 28 x 1
    conv 5x5, 16          16 x 16 x 16  stride 2, padding 4
    conv 3x3, 32          8 x 8 x 32    stride 2, padding 1
    conv 3x3, 64          4 x 4 x 64    stride 2, padding 1
    conv 3x3, 64          2 x 2 x 64    stride 2, padding 1
    fc                    64
    fc                    1
    ====================  ===========  =====================

    The activation follows every convolution and the 64-unit layer. Padding
    is explicit so the sizes match the table exactly, e.g.
    ``(28 + 2*4 - 5) // 2 + 1 = 16``.

    Attributes:
      activation: one of ``ACTIVATIONS``. The paper does not name it; Swish is
        the default because (i) the author's published code for this network
        uses Swish, (ii) the paper ranks Swish with LeakyReLU above tanh on
        MNIST, and (iii) Swish makes ``E`` smooth, so ``∇ₓE`` is continuous,
        which suits the gradient-driven samplers (Sec. 3.1), whereas
        LeakyReLU's ``∇ₓE`` jumps between linear regions.
      leaky_slope: negative-side slope of LeakyReLU.
      out_init_std: see ``output_kernel_init``.
      dtype: computation dtype.
      param_dtype: parameter dtype.
      conv_impl: how the convolutions are computed, one of ``CONV_IMPLS``:
        ``"xla"`` (XLA's convolution) or ``"im2col"`` (``conv_as_matmul``).
        Both compute the same function with the same parameters (names,
        shapes, initial values), so parameters move freely between them;
        only speed differs.
      micro_batch: with ``conv_impl="im2col"``, each convolution handles
        this many examples at a time (``None``: the whole batch at once);
        a speed knob only, see ``DEFAULT_MICRO_BATCH``.
      spectral_norm: power iterations of ``spectral_normalize`` applied to
        every layer's kernel (a Lipschitz bound on ``f`` of at most 1 per
        layer, times the activation's); 0 (default) = off.
    """

    activation: str = "swish"
    leaky_slope: float = DEFAULT_LEAKY_SLOPE
    out_init_std: Optional[float] = None
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32
    conv_impl: str = "xla"
    micro_batch: Optional[int] = DEFAULT_MICRO_BATCH
    spectral_norm: int = 0

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """Return ``f(x)`` of shape ``(n,)`` for images ``(n, 28, 28[, 1])``."""
        act = activation_fn(self.activation, self.leaky_slope)
        conv = functools.partial(
            spectrally_normalized(nn.Conv, self.spectral_norm), kernel_size=(3, 3), strides=(2, 2),
            padding=((1, 1), (1, 1)),
            dtype=self.dtype, param_dtype=self.param_dtype,
            conv_general_dilated=conv_general_dilated(self.conv_impl, self.micro_batch),
        )
        dense = functools.partial(spectrally_normalized(nn.Dense, self.spectral_norm), dtype=self.dtype,
                                  param_dtype=self.param_dtype)
        h = as_nhwc(x)
        h = act(conv(16, kernel_size=(5, 5), padding=((4, 4), (4, 4)), name="conv1")(h))
        h = act(conv(32, name="conv2")(h))
        h = act(conv(64, name="conv3")(h))
        h = act(conv(64, name="conv4")(h))
        h = act(dense(64, name="fc1")(flatten_examples(h)))
        out = dense(1, kernel_init=output_kernel_init(self.out_init_std), name="fc2")(h)
        return out[:, 0]


class NonLocalBlock(nn.Module):
    """A non-local (self-attention) block, Wang et al., *Non-local Neural Networks* (CVPR 2018).

    For an ``(n, h, w, c)`` input ``x`` with ``k = max(1, c // 2)``:
    ``θ = x W_θ``, ``φ = pool(x W_φ)``, ``g = pool(x W_g)`` (1x1 convolutions, ``pool`` a
    2x2 max-pool when ``sub_sample``), ``y = softmax(θ φᵀ) g`` over the pooled positions,
    and the block returns ``x + y W_out`` with ``W_out`` (and its bias) initialised to zero,
    so the block starts as the identity.

    Attributes:
      sub_sample: max-pool φ and g by 2 (4x fewer keys), as Nijkamp et al.'s MNIST net does.
      dtype: computation dtype.
      param_dtype: parameter dtype.
    """

    sub_sample: bool = True
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        n, h, w, c = x.shape
        k = max(1, c // 2)
        dense = functools.partial(nn.Dense, dtype=self.dtype, param_dtype=self.param_dtype)
        theta = dense(k, name="theta")(x).reshape(n, h * w, k)
        phi = dense(k, name="phi")(x)
        g = dense(k, name="g")(x)
        if self.sub_sample:
            phi = nn.max_pool(phi, (2, 2), strides=(2, 2))
            g = nn.max_pool(g, (2, 2), strides=(2, 2))
        phi = phi.reshape(n, -1, k)
        g = g.reshape(n, -1, k)
        attention = jax.nn.softmax(jnp.einsum("npk,nqk->npq", theta, phi), axis=-1)
        y = jnp.einsum("npq,nqk->npk", attention, g).reshape(n, h, w, k)
        zeros = nn.initializers.zeros
        return x + dense(c, kernel_init=zeros, bias_init=zeros, name="out")(y)


class NonlocalCNN(nn.Module):
    """The small non-local CNN of Nijkamp, Hill, Han, Zhu & Wu's convergent MNIST model.

    From *On the Anatomy of MCMC-Based Maximum Likelihood Learning of Energy-Based Models*
    (AAAI 2020), with ``c = channels``:
    ``conv3x3(c) -> act -> maxpool2 -> NonLocalBlock -> conv3x3(2c) -> act -> maxpool2 ->
    NonLocalBlock -> conv3x3(4c) -> act -> maxpool2 -> fc(8c) -> act -> fc(1)``
    (stride 1, padding 1). On jebm's 28x28 images the spatial sizes are
    28 -> 14 -> 7 -> 3 (their 32x32 inputs give 4); ``channels = 32`` is their width
    (~0.6M parameters at 32x32, 398,577 at 28x28).

    Attributes:
      channels: the first convolution's width ``c``.
      activation: one of ``ACTIVATIONS``; LeakyReLU(0.05) as in their code.
      leaky_slope: negative-side slope of LeakyReLU.
      out_init_std: see ``output_kernel_init``.
      dtype: computation dtype.
      param_dtype: parameter dtype.
      conv_impl: ``"xla"`` or ``"im2col"``, as in ``CustomCNN`` (same function, speed only).
      micro_batch: with ``conv_impl="im2col"``, examples per convolution call.
    """

    channels: int = 32
    activation: str = "leaky_relu"
    leaky_slope: float = DEFAULT_LEAKY_SLOPE
    out_init_std: Optional[float] = None
    dtype: Optional[Dtype] = None
    param_dtype: Dtype = jnp.float32
    conv_impl: str = "xla"
    micro_batch: Optional[int] = DEFAULT_MICRO_BATCH

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """Return ``f(x)`` of shape ``(n,)`` for images ``(n, 28, 28[, 1])``."""
        act = activation_fn(self.activation, self.leaky_slope)
        conv = functools.partial(
            nn.Conv, kernel_size=(3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype, param_dtype=self.param_dtype,
            conv_general_dilated=conv_general_dilated(self.conv_impl, self.micro_batch),
        )
        block = functools.partial(NonLocalBlock, dtype=self.dtype, param_dtype=self.param_dtype)
        pool = functools.partial(nn.max_pool, window_shape=(2, 2), strides=(2, 2))
        c = self.channels
        h = pool(act(conv(c, name="conv1")(as_nhwc(x))))
        h = pool(act(conv(2 * c, name="conv2")(block(name="nonlocal1")(h))))
        h = pool(act(conv(4 * c, name="conv3")(block(name="nonlocal2")(h))))
        h = act(nn.Dense(8 * c, dtype=self.dtype, param_dtype=self.param_dtype, name="fc1")(flatten_examples(h)))
        out = nn.Dense(1, kernel_init=output_kernel_init(self.out_init_std), dtype=self.dtype,
                       param_dtype=self.param_dtype, name="fc2")(h)
        return out[:, 0]
