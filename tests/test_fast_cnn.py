"""CustomCNN and LeNet with conv_impl="im2col" compute the same function as the plain XLA versions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jebm.energies import CustomCNN, energy_fn, make_energy
from jebm.energies.networks import CONV_IMPLS, conv_as_matmul

# Both versions sum the same float32 products in different orders; these
# bounds are a few ulps of the outputs' scale, far below any real difference
# (a wrong patch order or flipped kernel is off by O(1) relative).
RTOL = 1e-5
ATOL = 1e-6


pytestmark = pytest.mark.usefixtures("fast_compiles")  # conftest: compiles dominate here


@pytest.fixture(scope="module")
def images():
    """Uniform images as the samplers start from, and wide noise reaching every activation regime."""
    key_a, key_b = jax.random.split(jax.random.PRNGKey(3))
    uniform = jax.random.uniform(key_a, (3, 28, 28, 1))
    normal = 2.0 * jax.random.normal(key_b, (3, 28, 28, 1))
    return jnp.concatenate([uniform, normal])


def _models(head, micro_batch=None, network="custom_cnn"):
    """The plain and the fast CNN; the fast one in groups of ``micro_batch`` images when given."""
    models = {impl: make_energy(network, head=head, conv_impl=impl) for impl in CONV_IMPLS}
    if micro_batch is not None:
        models["im2col"] = make_energy(network, head=head, conv_impl="im2col", micro_batch=micro_batch)
    return models


@pytest.fixture(scope="module", params=[("linear", None, "custom_cnn"), ("quadratic", 4, "custom_cnn"),
                                        ("quadratic", 4, "lenet")],
                ids=["linear", "quadratic-micro4", "lenet-quadratic-micro4"])
def evaluated(request, images):
    """Per impl: initial params, energies and ∇ₓE at the xla version's params.

    The quadratic case runs im2col in micro-batches of 4 of the 6 images: one
    full group and a smaller remainder.
    """
    head, micro_batch, network = request.param
    models = _models(head, micro_batch, network)
    init = {impl: jax.jit(m.init)(jax.random.PRNGKey(0), images) for impl, m in models.items()}
    params = init["xla"]
    out = {"init": init}
    for impl, model in models.items():
        energy = energy_fn(model, params)
        out[impl] = (jax.jit(energy)(images), jax.jit(jax.grad(lambda y: jnp.sum(energy(y))))(images))
    return out


def test_same_parameter_tree_and_initial_values(evaluated):
    init = evaluated["init"]
    assert jax.tree_util.tree_structure(init["im2col"]) == jax.tree_util.tree_structure(init["xla"])
    for a, b in zip(jax.tree_util.tree_leaves(init["im2col"]), jax.tree_util.tree_leaves(init["xla"])):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_same_energies(evaluated):
    np.testing.assert_allclose(evaluated["im2col"][0], evaluated["xla"][0], rtol=RTOL, atol=ATOL)


def test_same_input_gradients(evaluated):
    grad_fast, grad_plain = evaluated["im2col"][1], evaluated["xla"][1]
    scale = float(jnp.max(jnp.abs(grad_plain)))
    assert scale > 0
    np.testing.assert_allclose(grad_fast, grad_plain, rtol=RTOL, atol=RTOL * scale)


@pytest.mark.parametrize("network", ["custom_cnn", "lenet"])
def test_same_parameter_gradients(images, network):
    """The training step differentiates w.r.t. the parameters: those agree too."""
    models = _models("quadratic", micro_batch=4, network=network)
    x = images
    params = jax.jit(models["xla"].init)(jax.random.PRNGKey(2), x)
    grads = {
        impl: jax.jit(jax.grad(lambda p, m=m: jnp.mean(m.apply(p, x))))(params) for impl, m in models.items()
    }
    for a, b in zip(jax.tree_util.tree_leaves(grads["im2col"]), jax.tree_util.tree_leaves(grads["xla"])):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * float(jnp.max(jnp.abs(b))) + ATOL)


@pytest.mark.parametrize(
    "shape,kernel,stride,padding",
    [
        ((3, 28, 28, 1), (5, 5, 1, 16), (2, 2), ((4, 4), (4, 4))),  # the CNN's first layer
        ((3, 9, 7, 3), (3, 3, 3, 4), (2, 2), ((1, 1), (1, 1))),  # odd sizes: the last row/column dropped
        ((3, 6, 6, 2), (3, 2, 2, 5), (1, 2), ((0, 2), (1, 0))),  # unequal strides, kernel and padding
    ],
)
@pytest.mark.parametrize("micro_batch", [None, 1, 2, 3])
def test_conv_as_matmul_matches_lax(shape, kernel, stride, padding, micro_batch):
    key_x, key_w = jax.random.split(jax.random.PRNGKey(4))
    x = jax.random.normal(key_x, shape)
    w = jax.random.normal(key_w, kernel)
    numbers = lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
    expected = lax.conv_general_dilated(x, w, stride, padding, dimension_numbers=numbers)
    got = conv_as_matmul(x, w, stride, padding, dimension_numbers=numbers, micro_batch=micro_batch)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-5)


def test_conv_as_matmul_rejects_what_it_does_not_compute():
    x, w = jnp.zeros((1, 8, 8, 2)), jnp.zeros((3, 3, 2, 4))
    nhwc = lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
    nchw = lax.conv_dimension_numbers(x.shape, w.shape, ("NCHW", "OIHW", "NCHW"))
    pads = ((1, 1), (1, 1))
    with pytest.raises(ValueError, match="dimension_numbers"):
        conv_as_matmul(x, w, (1, 1), pads, dimension_numbers=nchw)
    with pytest.raises(ValueError, match="dilation"):
        conv_as_matmul(x, w, (1, 1), pads, rhs_dilation=(2, 2), dimension_numbers=nhwc)
    with pytest.raises(ValueError, match="padding"):
        conv_as_matmul(x, w, (1, 1), "SAME", dimension_numbers=nhwc)
    with pytest.raises(ValueError, match="micro_batch"):
        conv_as_matmul(x, w, (1, 1), pads, dimension_numbers=nhwc, micro_batch=0)
    with pytest.raises(ValueError, match="feature_group_count"):
        conv_as_matmul(x, jnp.zeros((3, 3, 1, 4)), (1, 1), pads, feature_group_count=2, dimension_numbers=nhwc)


def test_unknown_conv_impl_is_rejected_with_the_valid_names():
    with pytest.raises(ValueError, match=r"conv_impl='cudnn' is not one of \['im2col', 'xla'\]"):
        CustomCNN(conv_impl="cudnn").init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28)))


def test_make_energy_passes_conv_impl_and_micro_batch():
    backbone = make_energy("custom_cnn", conv_impl="im2col", micro_batch=8).backbone
    assert (backbone.conv_impl, backbone.micro_batch) == ("im2col", 8)
    assert make_energy("custom_cnn").backbone.conv_impl == "xla"
    assert make_energy("lenet", conv_impl="im2col").backbone.conv_impl == "im2col"


def test_config_picks_the_convolution_by_backend_unless_named():
    """energy.conv_impl="" is im2col on the CPU (the faster one there), XLA's conv elsewhere."""
    from jebm.energies import resolve_conv_impl

    assert resolve_conv_impl("", backend="cpu") == "im2col"
    assert resolve_conv_impl("", backend="gpu") == "xla"
    assert resolve_conv_impl("", backend="tpu") == "xla"
    assert resolve_conv_impl("xla", backend="cpu") == "xla"
    assert resolve_conv_impl("im2col", backend="gpu") == "im2col"
