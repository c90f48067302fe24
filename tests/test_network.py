"""Activations and their error-pathway derivatives; Xavier init and feedback modes."""

import pytest
import torch

from evoplastic.families.paper.config import NetworkConfig
from evoplastic.families.paper.network import ACTIVATIONS, FEEDBACK_MODES, init_network, make_activation, xavier_uniform
from evoplastic.seeding import make_generator

DIMS = (12, 7, 5, 4)


def activation(name: str, **kwargs):
    return make_activation(NetworkConfig(dims=DIMS, activation=name, **kwargs))


def sample_z(n=200, seed=0, away_from=()) -> torch.Tensor:
    """Drives spread over [-3, 3], kept 1e-3 away from the given kinks."""
    z = (torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 0.5) * 6
    for kink in away_from:
        z = torch.where((z - kink).abs() < 1e-3, z + 1e-2, z)
    return z


def test_xavier_shapes_and_bounds():
    layers = xavier_uniform(DIMS, 3, make_generator(0), torch.float64)
    assert [tuple(w.shape) for w in layers] == [(3, 7, 12), (3, 5, 7), (3, 4, 5)]
    for w, (fan_in, fan_out) in zip(layers, zip(DIMS[:-1], DIMS[1:])):
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        assert w.dtype == torch.float64
        assert float(w.abs().max()) <= bound
        assert float(w.abs().max()) > 0.8 * bound  # fills the range
        assert abs(float(w.mean())) < 0.25 * bound


def test_xavier_variance_on_a_wide_layer():
    (w,) = xavier_uniform((300, 200), 1, make_generator(1), torch.float64)
    bound = (6.0 / 500) ** 0.5
    assert abs(float(w.var()) - bound**2 / 3) < 0.03 * bound**2 / 3  # Var U(-a, a) = a²/3


def test_xavier_dtype_does_not_change_values():
    a = xavier_uniform(DIMS, 2, make_generator(2), torch.float32)
    b = xavier_uniform(DIMS, 2, make_generator(2), torch.float64)
    for x, y in zip(a, b):
        assert x.dtype == torch.float32
        torch.testing.assert_close(x, y.float())


def test_fa_feedback_is_drawn_independently_of_weights():
    fa = init_network(NetworkConfig(dims=DIMS, feedback="fa"), 2, make_generator(3), torch.float64)
    bp = init_network(NetworkConfig(dims=DIMS, feedback="bp"), 2, make_generator(3), torch.float64)
    assert bp.feedback is None
    assert len(fa.feedback) == len(fa.weights)
    for w, b, w_bp in zip(fa.weights, fa.feedback, bp.weights):
        assert b.shape == w.shape
        assert torch.equal(w, w_bp)  # same seed: same W under fa and bp (common random numbers)
        correlation = torch.corrcoef(torch.stack([w.flatten(), b.flatten()]))[0, 1]
        assert abs(float(correlation)) < 0.35
    assert not torch.equal(fa.weights[0][0], fa.weights[0][1])  # episodes get their own draws


def test_feedback_modes_and_activation_names():
    assert set(FEEDBACK_MODES) == {"fa", "bp", "dfa"}
    assert set(ACTIVATIONS) == {"softplus", "relu", "leaky_relu", "tanh", "sigmoid", "hardtanh", "heaviside"}
    with pytest.raises(ValueError, match="unknown activation 'swish'; choose one of: softplus"):
        activation("swish")


@pytest.mark.parametrize(
    "name, kinks",
    [("softplus", ()), ("tanh", ()), ("sigmoid", ()), ("relu", (0.0,)), ("leaky_relu", (0.0,)),
     ("hardtanh", (-1.0, 1.0))],
)
def test_derivative_matches_autograd(name, kinks):
    act = activation(name, beta=3.0, negative_slope=0.2)
    z = sample_z(away_from=kinks).requires_grad_(True)
    (grad,) = torch.autograd.grad(act.forward(z).sum(), z)
    torch.testing.assert_close(act.derivative(z.detach()), grad)


def test_softplus_uses_beta():
    act = activation("softplus", beta=10.0)
    z = sample_z()
    torch.testing.assert_close(act.forward(z), torch.log1p(torch.exp(10.0 * z)) / 10.0)
    torch.testing.assert_close(act.derivative(z), torch.sigmoid(10.0 * z))


@pytest.mark.parametrize("name", ["softplus", "tanh", "sigmoid", "relu", "leaky_relu", "hardtanh"])
def test_derivative_from_output_equals_derivative(name):
    act = activation(name, beta=3.0, negative_slope=0.2)
    z = sample_z(seed=1, away_from=(0.0, -1.0, 1.0))
    torch.testing.assert_close(act.derivative_from_output(act.forward(z)), act.derivative(z))


def test_softplus_input_slope_is_the_papers():
    x = torch.linspace(0, 1, 11, dtype=torch.float64)
    act = activation("softplus", beta=10.0)
    torch.testing.assert_close(act.derivative_from_output(x), 1 - torch.exp(-10.0 * x))


@pytest.mark.parametrize("width", [1.0, 0.5])
def test_heaviside_step_and_fast_sigmoid_surrogate(width):
    act = activation("heaviside", surrogate_width=width)
    z = torch.tensor([-2.0, -0.5, 0.0, 0.25, 3.0], dtype=torch.float64)
    torch.testing.assert_close(act.forward(z), torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(act.derivative(z), 1.0 / (1.0 + z.abs() / width) ** 2)
    assert float(act.derivative(torch.zeros(1)).item()) == 1.0
    torch.testing.assert_close(act.derivative_from_output(z), torch.ones_like(z))


def test_twice_differentiable_flags():
    smooth = {name for name in ACTIVATIONS if activation(name).twice_differentiable}
    assert smooth == {"softplus", "tanh", "sigmoid"}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_keep_shape_and_dtype(name):
    act = activation(name)
    z = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for fn in (act.forward, act.derivative, act.derivative_from_output):
        out = fn(z)
        assert out.shape == z.shape and out.dtype == z.dtype and torch.isfinite(out).all()


def test_activations_are_equal_by_name_and_parameters_not_by_function_identity():
    from evoplastic.families.paper.config import NetworkConfig
    from evoplastic.families.paper.network import make_activation

    a, b = make_activation(NetworkConfig()), make_activation(NetworkConfig())
    assert a == b and hash(a) == hash(b) and a.forward is not b.forward  # one compiled-step cache entry
    assert make_activation(NetworkConfig(beta=5.0)) != a
    assert make_activation(NetworkConfig(activation="heaviside", surrogate_width=2.0)) != \
        make_activation(NetworkConfig(activation="heaviside"))


def test_activation_names_and_smoothness_match_the_config_vocabulary():
    from evoplastic.families.paper.config import ACTIVATION_NAMES, SMOOTH_ACTIVATIONS, NetworkConfig
    from evoplastic.families.paper.network import ACTIVATIONS, make_activation

    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES
    smooth = {name for name in ACTIVATIONS if make_activation(NetworkConfig(activation=name)).twice_differentiable}
    assert smooth == set(SMOOTH_ACTIVATIONS)
