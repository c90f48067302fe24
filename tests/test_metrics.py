"""Alignment angles and orthonormality errors on hand-built and random networks."""

import math

import pytest
import torch
import torch.nn.functional as F

from evoplastic.families.paper.config import NetworkConfig
from evoplastic.families.paper.metrics import (
    alignment_angles,
    mean_alignment_angles,
    orthonormality_errors,
    vector_angles,
)
from evoplastic.families.paper.network import Activation, init_network, make_activation
from evoplastic.seeding import make_generator

DIMS = (12, 7, 5, 4)
IDENTITY = Activation("identity", lambda z: z, torch.ones_like, torch.ones_like, True)


def rotation(degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    return torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)


def random_setup(n=3, activation="softplus"):
    cfg = NetworkConfig(dims=DIMS, activation=activation, feedback="fa")
    init = init_network(cfg, n, make_generator(0), torch.float64)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, DIMS[0], generator=g, dtype=torch.float64)
    target = F.one_hot(torch.randint(0, DIMS[-1], (n,), generator=g), DIMS[-1]).double()
    return init, x, target, make_activation(cfg)


def test_vector_angles_are_precise_near_zero_in_float32():
    a = torch.tensor([[1.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 1e-4, 0.0]])  # 1e-4 rad = 0.0057296°
    torch.testing.assert_close(vector_angles(a, b), torch.tensor([0.0057296]), rtol=1e-4, atol=0)
    assert float(vector_angles(a, a)) == 0.0


def test_vector_angles_hand_values():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 2.0], [-3.0, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    got = vector_angles(a, b)
    torch.testing.assert_close(got[:3], torch.tensor([90.0, 180.0, 45.0], dtype=torch.float64))
    assert math.isnan(got[3])


def test_angles_zero_when_feedback_is_the_weights():
    init, x, target, act = random_setup()
    for feedback in (init.weights, None):
        angles = alignment_angles(init.weights, feedback, x, target, act)
        assert angles.shape == (3, len(DIMS) - 2)
        torch.testing.assert_close(angles, torch.zeros_like(angles), atol=1e-9, rtol=0)


def test_random_feedback_is_misaligned():
    init, x, target, act = random_setup()
    angles = alignment_angles(init.weights, init.feedback, x, target, act)
    assert ((angles > 1.0) & (angles < 179.0)).all()


@pytest.mark.parametrize("degrees", [30.0, 90.0, 135.0])
def test_angle_of_a_rotated_feedback(degrees):
    # dims (2, 2, 2): one hidden layer, identity σ, W_2 = I, B_2 = R(θ): e_1^fa = Rᵀ e_2, e_1^bp = e_2.
    weights = [torch.eye(2, dtype=torch.float64).expand(1, 2, 2) * 0.5, torch.eye(2, dtype=torch.float64)[None]]
    feedback = [weights[0], rotation(degrees)[None]]
    x = torch.tensor([[0.3, 0.9]], dtype=torch.float64)
    target = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    angles = alignment_angles(weights, feedback, x, target, IDENTITY)
    torch.testing.assert_close(angles, torch.tensor([[degrees]], dtype=torch.float64))


def test_sign_flipped_feedback_is_180_degrees():
    init, x, target, act = random_setup()
    feedback = [w.clone() for w in init.weights]
    feedback[-1] = -feedback[-1]  # flips e_{L-1}, and with it every error below
    angles = alignment_angles(init.weights, feedback, x, target, act)
    torch.testing.assert_close(angles, torch.full_like(angles, 180.0), atol=1e-9, rtol=0)


def test_dead_layer_gives_nan_and_the_mean_skips_it():
    init, x, target, act = random_setup(n=2, activation="relu")
    weights = [w.clone() for w in init.weights]
    weights[0] = -weights[0].abs()  # z_1 < 0 for positive pixels: layer 1 is dead, its error zero
    angles = alignment_angles(weights, init.feedback, x, target, act)
    assert torch.isnan(angles[:, 0]).all()
    xs = torch.stack([x, torch.rand_like(x)], 1)
    mean = mean_alignment_angles(weights, init.feedback, xs, torch.stack([target, target], 1), act)
    assert mean.shape == (2, len(DIMS) - 2) and torch.isnan(mean[:, 0]).all()


def test_mean_alignment_averages_samples():
    init, x, target, act = random_setup()
    x2 = torch.rand_like(x)
    each = [alignment_angles(init.weights, init.feedback, v, target, act) for v in (x, x2)]
    mean = mean_alignment_angles(init.weights, init.feedback, torch.stack([x, x2], 1),
                                 torch.stack([target, target], 1), act)
    torch.testing.assert_close(mean, (each[0] + each[1]) / 2)


def orthonormal_rows(n_rows: int, n_cols: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n_cols, n_rows, generator=g, dtype=torch.float64))
    return q.T  # (n_rows, n_cols), W Wᵀ = I


def test_orthonormality_error_zero_for_orthonormal_rows_and_identity():
    weights = [orthonormal_rows(7, 12, 0)[None], orthonormal_rows(5, 7, 1)[None], torch.randn(1, 4, 5).double()]
    x = torch.rand(1, 12, dtype=torch.float64)
    errors = orthonormality_errors(weights, x, IDENTITY)
    assert errors.shape == (1, 2)  # hidden layers only: the softmax layer is excluded, as in the paper
    torch.testing.assert_close(errors, torch.zeros_like(errors), atol=1e-20, rtol=0)


def test_orthonormality_error_with_softplus_on_orthonormal_rows():
    # W Wᵀ = I reduces Eq. 10 to ‖z - σ(z)‖².
    weights = [orthonormal_rows(7, 12, 2)[None].repeat(2, 1, 1), torch.randn(2, 4, 7).double()]
    x = torch.rand(2, 12, dtype=torch.float64)
    act = make_activation(NetworkConfig(dims=(12, 7, 4), activation="softplus", beta=2.0))
    z = torch.einsum("nij,nj->ni", weights[0], x)
    expected = ((z - act.forward(z)) ** 2).sum(1, keepdim=True)
    torch.testing.assert_close(orthonormality_errors(weights, x, act), expected)


def test_orthonormality_error_hand_computed():
    # W = [[2, 0]], σ = id: z = 2 x_1, ȳ = Wᵀz = (2z, 0), Wȳ = 4z, E = (z - 4z)² = 9 z² = 36 x_1².
    weights = [torch.tensor([[[2.0, 0.0]]], dtype=torch.float64), torch.ones(1, 3, 1, dtype=torch.float64)]
    x = torch.tensor([[0.5, 0.7]], dtype=torch.float64)
    torch.testing.assert_close(orthonormality_errors(weights, x, IDENTITY), torch.tensor([[9.0]], dtype=torch.float64))


def test_orthonormality_error_per_network_and_layer():
    init, x, _, act = random_setup()
    errors = orthonormality_errors(init.weights, x, act)
    assert errors.shape == (3, len(DIMS) - 2) and (errors > 0).all()
    single = orthonormality_errors([w[1:2] for w in init.weights], x[1:2], act)
    torch.testing.assert_close(errors[1:2], single)


def test_single_layer_network_has_no_hidden_layers():
    weights = [torch.randn(2, 3, 4, dtype=torch.float64)]
    x, target = torch.rand(2, 4, dtype=torch.float64), torch.eye(3, dtype=torch.float64)[:2]
    act = make_activation(NetworkConfig(dims=(4, 3)))
    assert alignment_angles(weights, weights, x, target, act).shape == (2, 0)
    assert orthonormality_errors(weights, x, act).shape == (2, 0)
