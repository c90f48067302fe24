"""Scores of adapted k-cap networks, per pair (N,): linear probe, read-out MSE and latent-geometry EMD.

- probe: closed-form ridge regression (with bias) from the 2L labelled latents to ±1 targets;
  probe_loss is its mean squared error on the query set, probe_error the share of query points on
  the wrong side of 0 (probe_accuracy = 1 - probe_error). Deterministic, no seed needed.
- ae_mse: mean squared error of M_out·latent against the query inputs.
- emd: both the query latents and the true 2-D query points are whitened in 2-D (centred, projected
  on their top-2 principal axes, each axis scaled to unit variance); the latent set is then rotated
  or reflected onto the truth by orthogonal Procrustes (using the known point correspondence, since
  PCA fixes its axes only up to sign and, once whitened, rotation); EMD is the mean Euclidean cost of
  the optimal one-to-one matching (scipy's linear_sum_assignment: exact for equal-size uniform sets).
  The EMD runs in float64 on the CPU, whatever the device: it is not differentiable.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from evoplastic.families.kcap.config import KcapConfig
from evoplastic.families.kcap.data import KcapTasks
from evoplastic.families.kcap.loop import fit_linear, learn, tile
from evoplastic.families.kcap.network import KcapState, decode, encode

DEGENERATE_AXIS = 1e-6
"""A principal axis with variance below this share of the first one counts as empty (set to 0, not scaled up)."""


def probe(labelled: torch.Tensor, labelled_y: torch.Tensor, query: torch.Tensor, query_y: torch.Tensor,
          ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Query squared error and accuracy (N,) of a ridge probe fit on labelled (N, B, F) with 0/1 labels (N, B)."""
    sign = lambda y: (2 * y - 1).to(labelled.dtype).unsqueeze(2)
    weight, offset = fit_linear(labelled, sign(labelled_y), ridge, bias=True)
    out = torch.matmul(query, weight) + offset  # (N, Q, 1)
    loss = (out - sign(query_y)).pow(2).mean((1, 2))
    accuracy = ((out.squeeze(2) > 0) == (query_y == 1)).to(labelled.dtype).mean(1)
    return loss, accuracy


def reconstruction_mse(reconstruction: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error (N,) over samples and features of (N, B, n) reconstructions."""
    return (reconstruction - x).pow(2).mean((1, 2))


def whiten_2d(x: torch.Tensor) -> torch.Tensor:
    """(N, B, F) -> (N, B, 2): centred, on the top-2 principal axes, each scaled to unit variance.

    Axes of (relatively) zero variance are left at zero; with F = 1 the second coordinate is zero.
    """
    centred = x - x.mean(1, keepdim=True)
    # principal axes from the SVD of the centred points, not eigh of their covariance: binary codes
    # give covariances with many repeated eigenvalues, on which eigh failed to converge (m = 256, k = 32)
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    top = min(2, x.shape[2], singular.shape[1])
    values, vectors = singular[:, :top] ** 2 / x.shape[1], vh[:, :top].transpose(1, 2)
    keep = values > DEGENERATE_AXIS * values[:, :1]
    scale = torch.where(keep, values.clamp_min(torch.finfo(x.dtype).tiny).rsqrt(), torch.zeros_like(values))
    out = torch.matmul(centred, vectors) * scale.unsqueeze(1)
    return out if top == 2 else torch.cat([out, torch.zeros_like(out)], 2)


def procrustes(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (N, B, 2) rotated or reflected by the orthogonal R minimising ‖a R - b‖ (rows correspond)."""
    u, _, vh = torch.linalg.svd(torch.matmul(a.transpose(1, 2), b))
    return torch.matmul(a, torch.matmul(u, vh))


def matching_cost(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Euclidean distance of the optimal one-to-one matching of point sets a, b (B, 2); NaN if not finite."""
    cost = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    if not np.isfinite(cost).all():
        return float("nan")
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def emd(latent: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """EMD (N,) between the whitened, aligned 2-D PCA of latent (N, B, F) and the whitened points (N, B, 2)."""
    latent64, points64 = (t.detach().to("cpu", torch.float64) for t in (latent, points))
    truth = whiten_2d(points64)  # float64 on the CPU: float32 fails on degenerate binary codes
    a, b = procrustes(whiten_2d(latent64), truth).numpy(), truth.numpy()
    values = [matching_cost(a[i], b[i]) for i in range(a.shape[0])]
    return torch.tensor(values, dtype=latent.dtype, device=latent.device)


def latent_scores(labelled: torch.Tensor, query: torch.Tensor, tasks: KcapTasks, cfg: KcapConfig,
                  copies: int = 1, with_emd: bool = True) -> dict[str, torch.Tensor]:
    """Probe and EMD scores (N,) of any representation: labelled (N, 2L, F), query (N, Q, F) of tiled tasks."""
    loss, accuracy = probe(labelled, tile(tasks.labelled_y, copies), query, tile(tasks.query_y, copies),
                           cfg.probe_ridge)
    scores = {"probe_loss": loss, "probe_accuracy": accuracy, "probe_error": 1 - accuracy}
    if with_emd:
        scores["emd"] = emd(query, tile(tasks.query_points, copies))
    return scores


def state_scores(state: KcapState, tasks: KcapTasks, cfg: KcapConfig, with_emd: bool = True) -> dict:
    """All scores (N,) of N adapted networks on their tasks (pair n on task n mod T)."""
    copies = state.n_pairs // tasks.n_tasks
    query_x = tile(tasks.query_x, copies)
    inputs = torch.cat([tile(tasks.labelled_x, copies), query_x], 1)
    latent = encode(state, inputs, cfg)
    n_labelled = tasks.labelled_x.shape[1]
    labelled, query = latent[:, :n_labelled], latent[:, n_labelled:]
    scores = latent_scores(labelled, query, tasks, cfg, copies, with_emd)
    scores["ae_mse"] = reconstruction_mse(decode(state, query), query_x)
    return scores


def raw_scores(tasks: KcapTasks, cfg: KcapConfig, with_emd: bool = True) -> dict[str, torch.Tensor]:
    """Probe (and EMD) scores (T,) of the raw n-dim inputs, the no-network baseline."""
    return latent_scores(tasks.labelled_x, tasks.query_x, tasks, cfg, 1, with_emd)


def mask_diverged(state: KcapState) -> tuple[KcapState, torch.Tensor]:
    """The state with non-finite pairs zeroed (so scoring cannot fail), and the (N,) finite mask."""
    finite = state.is_finite()
    keep = finite.view(-1, 1, 1)
    return state.map(lambda m: torch.where(keep, m, torch.zeros_like(m))), finite


def score(theta: torch.Tensor, tasks: KcapTasks, init: KcapState, cfg: KcapConfig,
          with_emd: bool = True) -> dict[str, torch.Tensor]:
    """learn + state_scores: (N,) scores of θ (N, R) on T tasks; NaN for pairs whose weights diverged."""
    state, finite = mask_diverged(learn(theta, tasks.unlabelled, init, cfg))
    scores = state_scores(state, tasks, cfg, with_emd)
    return {key: torch.where(finite, value, torch.full_like(value, float("nan"))) for key, value in scores.items()}


def objective(scores: dict[str, torch.Tensor], cfg: KcapConfig) -> torch.Tensor:
    """The (N,) meta-loss cfg.objective names, out of score's dict (lower is better for all four)."""
    return scores[cfg.objective]


def logistic_probe(labelled: torch.Tensor, labelled_y: torch.Tensor, query: torch.Tensor, query_y: torch.Tensor,
                   ridge: float, steps: int = 50) -> torch.Tensor:
    """Query accuracy (N,) of a logistic-regression probe (cross-entropy + λ‖w‖², bias unpenalised) by Newton steps.

    The cross-entropy read-out Balwani, Gupta & Shu retrain on a few labels, in place of the ridge probe;
    deterministic, no learning rate. labelled (N, B, F) with 0/1 labels (N, B); query (N, Q, F).
    """
    ones = lambda x: torch.cat([x, torch.ones_like(x[..., :1])], -1)
    x, y = ones(labelled).double(), labelled_y.double()
    n, width = x.shape[1], x.shape[2]
    penalty = torch.full((width,), 2 * ridge, dtype=torch.float64, device=x.device)
    penalty[-1] = 1e-8  # the bias is not penalised (a tiny term keeps the Hessian invertible)
    w = torch.zeros(x.shape[0], width, dtype=torch.float64, device=x.device)
    for _ in range(steps):
        p = torch.sigmoid(torch.einsum("nbf,nf->nb", x, w))
        grad = torch.einsum("nbf,nb->nf", x, p - y) / n + penalty * w
        hess = torch.einsum("nbf,nb,nbg->nfg", x, p * (1 - p), x) / n + torch.diag(penalty)
        w = w - torch.linalg.solve(hess, grad)
    out = torch.einsum("nqf,nf->nq", ones(query).double(), w)
    return ((out > 0) == (query_y == 1)).to(labelled.dtype).mean(1)


def distinct_codes(latent: torch.Tensor) -> torch.Tensor:
    """(N,) number of different codes among the B latents of each pair (N, B, F): 1 means fully degenerate."""
    return torch.tensor([len(torch.unique(z, dim=0)) for z in latent], dtype=torch.float64)
