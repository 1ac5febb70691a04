"""Tests for jebm.energies: shapes, the paper's architectures, heads, factory."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm.energies import (
    DEFAULT_MLP_HIDDEN,
    EnergyModel,
    MLP,
    ToyMLP,
    activation_fn,
    energy_fn,
    energy_grad_norms,
    features_fn,
    make_energy,
    quadratic_stall_check,
    quadratic_stall_report,
)
from jebm.energies import heads, networks

KEY = jax.random.PRNGKey(0)
N = 3
IMAGE_SHAPES = [(N, 28, 28), (N, 28, 28, 1)]


pytestmark = pytest.mark.usefixtures("fast_compiles")  # conftest: compiles dominate here


def _normal(seed, shape):
    return jax.random.normal(jax.random.PRNGKey(seed), shape)


def _init(model, x):
    # One compiled init is several times faster than Flax's op-by-op eager init.
    return jax.jit(model.init)(KEY, x)


def _count(params):
    return sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))


def _with_head_param(params, name, value):
    """Copy of ``params`` with the head's scalar ``name`` set to ``value``."""
    inner = dict(params["params"])
    inner["energy_head"] = {**inner.get("energy_head", {}), name: jnp.asarray(value, jnp.float32)}
    return {"params": inner}


@pytest.fixture(scope="module")
def cnn_models():
    """Initialised linear-head image models, shared to keep compiles few."""
    x = jnp.zeros(IMAGE_SHAPES[0])
    models = {name: make_energy(name) for name in ("lenet", "custom_cnn")}
    return {name: (m, _init(m, x)) for name, m in models.items()}


# --- networks -----------------------------------------------------------------


@pytest.mark.parametrize("name,shape", [("toy_mlp", (N, 2)), ("mlp", (N, 2)), ("mlp", (N, 4, 5))])
def test_mlp_output_shape(name, shape):
    model = make_energy(name)
    x = _normal(1, shape)
    assert model.apply(_init(model, x), x).shape == (N,)


@pytest.mark.parametrize("name", ["lenet", "custom_cnn"])
def test_image_nets_accept_both_layouts_and_agree(cnn_models, name):
    model, params = cnn_models[name]
    x = _normal(2, IMAGE_SHAPES[0])
    apply = jax.jit(model.apply)
    e_hw = apply(params, x)
    e_hwc = apply(params, x[..., None])
    assert e_hw.shape == e_hwc.shape == (N,)
    np.testing.assert_allclose(e_hw, e_hwc, rtol=1e-6)


@pytest.mark.parametrize("name", ["lenet", "custom_cnn"])
def test_image_nets_reject_channels_first(cnn_models, name):
    model, params = cnn_models[name]
    with pytest.raises(ValueError, match=r"\(n, H, W\) or \(n, H, W, 1\)"):
        model.apply(params, jnp.zeros((N, 1, 28, 28)))


def test_custom_cnn_spatial_shapes_match_table_3(cnn_models):
    model, params = cnn_models["custom_cnn"]
    x = jnp.zeros((N, 28, 28))
    _, state = model.apply(params, x, capture_intermediates=True, mutable=["intermediates"])
    convs = state["intermediates"]["backbone"]
    shapes = [convs[f"conv{i}"]["__call__"][0].shape for i in range(1, 5)]
    assert shapes == [(N, 16, 16, 16), (N, 8, 8, 32), (N, 4, 4, 64), (N, 2, 2, 64)]


def test_custom_cnn_parameter_count(cnn_models):
    _, params = cnn_models["custom_cnn"]
    expected = (
        (5 * 5 * 1 * 16 + 16)
        + (3 * 3 * 16 * 32 + 32)
        + (3 * 3 * 32 * 64 + 64)
        + (3 * 3 * 64 * 64 + 64)
        + (2 * 2 * 64 * 64 + 64)
        + (64 + 1)
    )
    assert _count(params) == expected == 76993


def test_lenet_parameter_count(cnn_models):
    _, params = cnn_models["lenet"]
    expected = (5 * 5 * 6 + 6) + (5 * 5 * 6 * 16 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 + 1)
    assert _count(params) == expected


def test_toy_mlp_layout_and_parameter_count():
    params = _init(ToyMLP(), jnp.zeros((1, 2)))
    kernels = [params["params"][f"Dense_{i}"]["kernel"].shape for i in range(5)]
    assert kernels == [(2, 32), (32, 64), (64, 64), (64, 64), (64, 1)]
    assert _count(params) == (2 * 32 + 32) + (32 * 64 + 64) + 2 * (64 * 64 + 64) + (64 + 1) == 10593


def test_toy_mlp_matches_hand_forward_with_leaky_slope_0_05():
    x = _normal(3, (4, 2)) * 3.0
    params = _init(ToyMLP(), x)
    h = np.asarray(x, np.float64)
    for i in range(5):
        layer = params["params"][f"Dense_{i}"]
        h = h @ np.asarray(layer["kernel"]) + np.asarray(layer["bias"])
        if i < 4:
            h = np.where(h > 0, h, 0.05 * h)
    np.testing.assert_allclose(ToyMLP().apply(params, x), h[:, 0], rtol=1e-5, atol=1e-6)


def test_activation_fn_values():
    x = jnp.array([-2.0, 3.0])
    np.testing.assert_allclose(activation_fn("leaky_relu")(x), [-0.1, 3.0])
    np.testing.assert_allclose(activation_fn("leaky_relu", 0.2)(x), [-0.4, 3.0])
    np.testing.assert_allclose(activation_fn("swish")(x), x * jax.nn.sigmoid(x), rtol=1e-6)
    np.testing.assert_allclose(activation_fn("tanh")(x), jnp.tanh(x))


# --- heads ----------------------------------------------------------------------


def _toy_model(head, **kwargs):
    model = EnergyModel(backbone=MLP(hidden=(8,), activation="swish"), head=head, **kwargs)
    x = _normal(4, (5, 2))
    return model, _init(model, x), x


@pytest.mark.parametrize("head", ["linear", "quadratic", "beta", "gamma"])
def test_heads_equal_their_formula(head):
    model, params, x = _toy_model(head, head_offset=0.0)
    if head in ("beta", "gamma"):
        params = _with_head_param(params, head, 0.7)
    f = model.apply(params, x, method=EnergyModel.features)
    expected = {
        "linear": f,
        "quadratic": 0.5 * f**2,
        "beta": f + 0.35 * f**2,
        "gamma": f + 0.7 * math.sqrt(2) * jnp.sum(x**2, axis=1),
    }[head]
    np.testing.assert_allclose(model.apply(params, x), expected, rtol=1e-6)


def test_gamma_uses_number_of_pixels_per_example():
    model = EnergyModel(backbone=MLP(hidden=(4,)), head="gamma")
    x = _normal(5, (2, 28, 28))
    params = _with_head_param(_init(model, x), "gamma", 0.5)
    f = model.apply(params, x, method=EnergyModel.features)
    expected = f + 0.5 * 28.0 * jnp.sum(x**2, axis=(1, 2))  # sqrt(784) = 28
    np.testing.assert_allclose(model.apply(params, x), expected, rtol=1e-5)


@pytest.mark.parametrize("head", ["quadratic", "beta", "gamma"])
def test_head_input_gradients_match_analytic(head):
    model, params, x = _toy_model(head, head_offset=0.5)
    if head in ("beta", "gamma"):
        params = _with_head_param(params, head, 0.3)
    u = model.apply(params, x, method=EnergyModel.features)
    grad_f = jax.grad(lambda y: jnp.sum(model.apply(params, y, method=EnergyModel.features)))(x)
    expected = {
        "quadratic": u[:, None] * grad_f,  # ∇½u² = u∇f
        "beta": (1.0 + 0.3 * u)[:, None] * grad_f,
        "gamma": grad_f + 2.0 * 0.3 * math.sqrt(2) * x,
    }[head]
    grad_e = jax.grad(lambda y: jnp.sum(model.apply(params, y)))(x)
    np.testing.assert_allclose(grad_e, expected, rtol=1e-5, atol=1e-7)


def test_head_offset_shifts_f_and_defaults_per_head():
    model, params, x = _toy_model("quadratic", head_offset=0.0)
    f = model.apply(params, x, method=EnergyModel.features)
    shifted = EnergyModel(backbone=model.backbone, head="quadratic", head_offset=2.5)
    np.testing.assert_allclose(shifted.apply(params, x), 0.5 * (f + 2.5) ** 2, rtol=1e-6)
    assert EnergyModel(backbone=model.backbone, head="quadratic").offset == 1.0
    assert EnergyModel(backbone=model.backbone, head="linear").offset == 0.0


@pytest.mark.parametrize("head", ["beta", "gamma"])
def test_learnable_head_scalars_start_near_zero(head):
    _, params, _ = _toy_model(head)
    value = params["params"]["energy_head"][head]
    assert value.shape == () and 0.0 < abs(float(value)) < 0.05
    _, params, _ = _toy_model(head, head_init_std=0.0)
    assert float(params["params"]["energy_head"][head]) == 0.0


def test_beta_gamma_head_has_both_terms():
    model, params, x = _toy_model("beta_gamma")
    params = _with_head_param(_with_head_param(params, "beta", 0.7), "gamma", 0.4)
    f = model.apply(params, x, method=EnergyModel.features)
    expected = f + 0.35 * f**2 + 0.4 * math.sqrt(2) * jnp.sum(x**2, axis=1)
    np.testing.assert_allclose(model.apply(params, x), expected, rtol=1e-6)
    assert heads.head_values(params) == pytest.approx({"beta": 0.7, "gamma": 0.4})


def test_fixed_beta_is_a_constant_not_a_parameter():
    model, params, x = _toy_model("beta", beta_learnable=False, beta_init=2.0)
    assert "energy_head" not in params["params"] and heads.head_values(params) == {}
    f = model.apply(params, x, method=EnergyModel.features)
    np.testing.assert_allclose(model.apply(params, x), f + 1.0 * f**2, rtol=1e-6)  # β/2 = 1
    # Learnable from a chosen start: a parameter equal to beta_init.
    _, params, _ = _toy_model("beta_gamma", beta_init=0.5)
    assert float(params["params"]["energy_head"]["beta"]) == 0.5
    with pytest.raises(ValueError, match="energy.beta_learnable=False needs a number for energy.beta_init"):
        _toy_model("beta", beta_learnable=False)


def test_energy_model_rejects_unknown_head_at_construction():
    valid = r"\['beta', 'beta_gamma', 'gamma', 'linear', 'quadratic'\]"
    with pytest.raises(ValueError, match=r"head='cubic' is not one of " + valid):
        EnergyModel(backbone=ToyMLP(), head="cubic")


# --- chains are independent -------------------------------------------------------


@pytest.mark.parametrize("name,shape", [("toy_mlp", (4, 2)), ("custom_cnn", (4, 28, 28))])
def test_row_gradient_depends_only_on_its_row(name, shape):
    model = make_energy(name, head="quadratic")
    x = _normal(6, shape)
    params = _init(model, x)
    grad_sum = jax.jit(jax.grad(lambda y: jnp.sum(model.apply(params, y))))
    g = grad_sum(x)
    g_perturbed = grad_sum(x.at[1:].add(_normal(7, x[1:].shape)))
    np.testing.assert_allclose(g_perturbed[0], g[0], rtol=1e-5, atol=1e-7)
    assert not np.allclose(g_perturbed[1], g[1])


# --- the quadratic stall ------------------------------------------------------------


def test_quadratic_head_stalls_without_offset_and_not_with_it():
    # N(0, 0.01²) final layer, as in the paper author's code, gives f ≈ 0.
    x = _normal(8, (256, 2))
    reports, param_grads = {}, {}
    for offset in (0.0, 1.0):
        model = make_energy("toy_mlp", head="quadratic", head_offset=offset, out_init_std=0.01)
        params = _init(model, x)
        reports[offset] = jax.jit(lambda p: quadratic_stall_check(model, p, x))(params)
        grads = jax.jit(jax.grad(lambda p: jnp.mean(model.apply(p, x))))(params)
        param_grads[offset] = math.sqrt(sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(grads)))
    stalled, fixed = reports[0.0], reports[1.0]
    assert bool(stalled["stalled"]) and not bool(fixed["stalled"])
    # Both gradients shrink by about 1/mean|f| ≈ 60 without the offset.
    assert float(fixed["mean_grad_norm"]) > 30 * float(stalled["mean_grad_norm"])
    # The CD gradient on θ, ∂E/∂θ = f ∂f/∂θ, vanishes with it.
    assert param_grads[1.0] > 30 * param_grads[0.0]


def test_offset_one_gives_the_linear_heads_gradient_at_init():
    x = _normal(9, (64, 2))
    linear = make_energy("toy_mlp", out_init_std=0.01)
    params = _init(linear, x)
    quadratic = make_energy("toy_mlp", head="quadratic", out_init_std=0.01)  # default offset 1
    grad_norms = jax.jit(lambda model: energy_grad_norms(energy_fn(model, params), x), static_argnums=0)
    g_linear, g_quadratic = grad_norms(linear), grad_norms(quadratic)
    np.testing.assert_allclose(g_quadratic, g_linear, rtol=0.1)


def test_stall_report_known_values():
    report = quadratic_stall_report(jnp.array([0.01, -0.03]), jnp.array([1.0, 3.0]), tol=0.05)
    np.testing.assert_allclose(report["mean_abs_f"], 0.02)
    np.testing.assert_allclose(report["mean_grad_norm"], 2.0)
    assert bool(report["stalled"])
    assert not bool(quadratic_stall_report(jnp.array([1.0]), jnp.array([1.0]))["stalled"])


# --- factory --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"name": "resnet"},
            "energy.name='resnet' is not one of ['custom_cnn', 'lenet', 'mlp', 'nonlocal_cnn', 'toy_mlp']",
        ),
        (
            {"name": "mlp", "head": "cubic"},
            "energy.head='cubic' is not one of ['beta', 'beta_gamma', 'gamma', 'linear', 'none', 'quadratic']",
        ),
        (
            {"name": "lenet", "activation": "relu"},
            "energy.activation='relu' is not one of ['leaky_relu', 'swish', 'tanh']",
        ),
    ],
)
def test_factory_rejects_unknown_names_listing_valid_ones(kwargs, message):
    with pytest.raises(ValueError) as info:
        make_energy(**kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize("hidden", [[], (0, 4), (4, -1), (2.5,), (True,), "64"])
def test_factory_rejects_bad_hidden(hidden):
    with pytest.raises(ValueError, match="energy.hidden=.* must be a non-empty sequence of positive ints"):
        make_energy("mlp", hidden=hidden)


def test_factory_rejects_options_a_network_does_not_take():
    with pytest.raises(ValueError, match="energy.hidden is only used by energy.name='mlp'"):
        make_energy("toy_mlp", hidden=(8,))
    with pytest.raises(ValueError, match=r"energy.depth is not an option of energy.name='lenet'; valid: \["):
        make_energy("lenet", depth=3)


def test_factory_defaults_and_pass_through():
    assert make_energy("custom_cnn").backbone.activation == "swish"
    assert make_energy("lenet", activation="tanh").backbone.activation == "tanh"
    assert make_energy("toy_mlp").backbone.activation == "leaky_relu"
    assert make_energy("mlp").backbone.hidden == DEFAULT_MLP_HIDDEN
    mlp = make_energy("mlp", hidden=[16, 16], leaky_slope=0.2, head="quadratic", head_offset=0.0)
    assert (mlp.backbone.hidden, mlp.backbone.leaky_slope, mlp.offset) == ((16, 16), 0.2, 0.0)
    assert make_energy("toy_mlp", head="quadratic").offset == 1.0


def test_energy_fn_and_features_fn_follow_the_sampler_contract():
    model = make_energy("toy_mlp", head="quadratic")
    x = _normal(10, (6, 2))
    params = _init(model, x)
    energies = jax.jit(energy_fn(model, params))(x)
    u = jax.jit(features_fn(model, params))(x)
    assert energies.shape == u.shape == (6,)
    np.testing.assert_allclose(energies, 0.5 * u**2, rtol=1e-6)


def test_torch_init_matches_pytorch_linear_defaults():
    """param_init="torch": kernels and biases U(±1/√fan_in), as torch.nn.Linear initialises them."""
    model = make_energy("mlp", hidden=(256, 256), param_init="torch")
    params = model.init(jax.random.key(0), jnp.zeros((1, 2)))["params"]["backbone"]
    second = params["Dense_1"]
    bound = 1 / np.sqrt(256)
    for leaf in (second["kernel"], second["bias"]):
        assert float(jnp.max(jnp.abs(leaf))) <= bound
    np.testing.assert_allclose(float(jnp.var(second["kernel"])), bound**2 / 3, rtol=0.05)
    default = make_energy("mlp", hidden=(256, 256)).init(jax.random.key(0), jnp.zeros((1, 2)))
    np.testing.assert_allclose(float(jnp.var(default["params"]["backbone"]["Dense_1"]["kernel"])), 1 / 256, rtol=0.05)
    assert float(jnp.abs(default["params"]["backbone"]["Dense_1"]["bias"]).max()) == 0.0


# --- spectral normalisation ----------------------------------------------------


def test_spectral_normalize_divides_by_the_largest_singular_value():
    kernel = jax.random.normal(jax.random.key(3), (3, 3, 8, 16))  # a conv kernel: W is (72, 16)
    sigma = np.linalg.svd(np.asarray(kernel).reshape(72, 16), compute_uv=False)
    normalized = np.asarray(networks.spectral_normalize(kernel, 200)).reshape(72, 16)
    np.testing.assert_allclose(np.linalg.svd(normalized, compute_uv=False)[0], 1.0, rtol=1e-4)
    np.testing.assert_allclose(normalized, np.asarray(kernel).reshape(72, 16) / sigma[0], rtol=1e-4)
    # Few iterations: a lower bound on σ, so the normalised norm is at least 1.
    assert np.linalg.svd(np.asarray(networks.spectral_normalize(kernel, 2)).reshape(72, 16), compute_uv=False)[0] >= 1 - 1e-6


def test_spectral_norm_cnn_keeps_parameter_names_and_bounds_each_layer():
    x = _normal(6, (2, 28, 28))
    plain = make_energy("custom_cnn")
    normed = make_energy("custom_cnn", spectral_norm=50)
    params = plain.init(jax.random.key(0), x)
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(normed.init(jax.random.key(0), x))
    # Same raw parameters, different function: each kernel is used divided by its σ.
    assert not np.allclose(plain.apply(params, x), normed.apply(params, x))
    # Scaling every kernel by 10 leaves the normalised network's f unchanged up to the biases' share:
    # with zero biases it is exactly invariant.
    zero_bias = jax.tree_util.tree_map_with_path(
        lambda path, v: jnp.zeros_like(v) if path[-1].key == "bias" else v, params)
    scaled = jax.tree_util.tree_map_with_path(
        lambda path, v: 10.0 * v if path[-1].key == "kernel" else v, zero_bias)
    np.testing.assert_allclose(normed.apply(zero_bias, x), normed.apply(scaled, x), rtol=1e-4, atol=1e-6)
    for name in ("lenet",):
        assert make_energy(name, spectral_norm=3).init(jax.random.key(0), x)


def test_nonlocal_block_against_numpy_and_the_networks_size():
    """NonLocalBlock = x + softmax(θ φᵀ) g W_out, with φ, g max-pooled by 2 (Wang et al.), recomputed in NumPy;
    it starts as the identity (W_out = 0), and NonlocalCNN(32) on 28x28 has the parameters counted by hand."""
    from jebm.energies.networks import NonLocalBlock, NonlocalCNN

    x = jax.random.normal(jax.random.key(0), (2, 4, 6, 4))
    block = NonLocalBlock()
    params = block.init(jax.random.key(1), x)
    np.testing.assert_array_equal(block.apply(params, x), x)  # zero W_out: the identity
    params = jax.tree_util.tree_map(lambda p: jax.random.normal(jax.random.key(2), p.shape), params)
    p = jax.tree_util.tree_map(np.asarray, params["params"])
    xn = np.asarray(x, np.float64)

    def dense(name, v):
        return v @ p[name]["kernel"] + p[name]["bias"]

    def pool(v):  # 2x2 max-pool, stride 2
        n, h, w, k = v.shape
        return v.reshape(n, h // 2, 2, w // 2, 2, k).max(axis=(2, 4))

    theta = dense("theta", xn).reshape(2, 24, 2)
    phi, g = pool(dense("phi", xn)).reshape(2, 6, 2), pool(dense("g", xn)).reshape(2, 6, 2)
    logits = np.einsum("npk,nqk->npq", theta, phi)
    attention = np.exp(logits - logits.max(-1, keepdims=True))
    attention /= attention.sum(-1, keepdims=True)
    expected = xn + dense("out", np.einsum("npq,nqk->npk", attention, g).reshape(2, 4, 6, 2))
    np.testing.assert_allclose(block.apply(params, x), expected, rtol=1e-4, atol=1e-4)

    net = NonlocalCNN(channels=32)
    shapes = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    # conv1 1·9·32+32, block(32) 3·(32·16+16)+16·32+32, conv2 32·9·64+64, block(64) 3·(64·32+32)+32·64+64,
    # conv3 64·9·128+128, fc1 (128·3·3)·256+256, fc2 256+1
    assert sum(math.prod(s.shape) for s in jax.tree_util.tree_leaves(shapes)) == 398_577
    f = NonlocalCNN(channels=4, conv_impl="im2col")
    x28 = jax.random.uniform(jax.random.key(3), (3, 28, 28))
    pf = f.init(jax.random.key(4), x28)
    assert f.apply(pf, x28).shape == (3,)
    np.testing.assert_allclose(f.apply(pf, x28), NonlocalCNN(channels=4, conv_impl="xla").apply(pf, x28), rtol=1e-4, atol=1e-5)
