"""Baselines on identical tasks: the untrained k-cap RNN, backprop autoencoders, and the paper's gradient loop.

- Autoencoders (seed Fig. 2): an RNN with the k-cap network's recurrence but a smooth activation,
  and an MLP with the same widths and depth whose T + 1 layers are untied; linear decoder M_out;
  Adam on each task's unlabelled stream, all T tasks trained at once as a batch.
- The paper's outer loop: the one-step look-ahead autoencoding loss. At sampled stream positions s
  the rule is applied once to the network M_s (reached with θ held constant, as the paper treats
  the inner weights), and the updated network reconstructs the next sample x_{s+1} through its own
  read-out (refit on the stream, held constant). The gradient reaches θ through a straight-through
  k-cap. (Scoring through M_s's old read-out instead rewards rules that change nothing.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from evoplastic.families.kcap.config import KcapConfig
from evoplastic.families.kcap.data import KcapTasks
from evoplastic.families.kcap.loop import learn_step, tile, with_readout
from evoplastic.families.kcap.metrics import latent_scores, reconstruction_mse, state_scores
from evoplastic.families.kcap.network import Cap, KcapState, decode, encode, kcap


def untrained_scores(tasks: KcapTasks, init: KcapState, cfg: KcapConfig, with_emd: bool = True) -> dict:
    """Scores (T,) of the initial k-cap networks (no plasticity), read-out fit on the stream as usual."""
    return state_scores(with_readout(init, tasks.unlabelled, cfg), tasks, cfg, with_emd)


# --- backprop-trained autoencoders --------------------------------------------------------------

ACTIVATIONS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid}


@dataclass(frozen=True)
class AutoencoderConfig:
    """How the backprop autoencoder baselines are built and trained."""

    kind: str = "rnn"
    """rnn (M_in, then M_rec applied T times) or mlp (T + 1 untied layers of the same widths)."""
    activation: str = "tanh"
    """Smooth hidden activation in place of the k-cap: tanh or sigmoid."""
    epochs: int = 30
    """Passes over the task's unlabelled samples."""
    batch_size: int = 32
    """Samples per Adam step (the stream is reshuffled every epoch)."""
    learning_rate: float = 1e-2
    """Adam step size."""


@dataclass
class Autoencoder:
    """T trained autoencoders: encoder layers (T, m, ·) applied in order, read-out M_out (T, n, m)."""

    layers: list[torch.Tensor]
    M_out: torch.Tensor
    activation: str

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent (T, B, m) of x (T, B, n)."""
        for layer in self.layers:
            x = ACTIVATIONS[self.activation](torch.matmul(x, layer.transpose(1, 2)))
        return x


def _gaussian(shape: tuple[int, ...], fan_in: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    return (torch.randn(shape, generator=generator, dtype=torch.float64) / math.sqrt(fan_in)).to(dtype)


def init_autoencoder(cfg: KcapConfig, ae: AutoencoderConfig, n_tasks: int, generator: torch.Generator,
                     dtype: torch.dtype) -> Autoencoder:
    """N(0, 1/fan_in) weights, as init_state draws the k-cap network's; the RNN reuses one M_rec."""
    n, m, t = cfg.n_features, cfg.n_hidden, cfg.recurrent_steps
    first = _gaussian((n_tasks, m, n), n, generator, dtype)
    if ae.kind == "rnn":
        layers = [first] + ([_gaussian((n_tasks, m, m), m, generator, dtype)] if t > 0 else [])
    else:
        layers = [first] + [_gaussian((n_tasks, m, m), m, generator, dtype) for _ in range(t)]
    return Autoencoder(layers, _gaussian((n_tasks, n, m), m, generator, dtype), ae.activation)


def _unrolled(model: Autoencoder, ae: AutoencoderConfig, steps: int) -> Autoencoder:
    """The RNN as its unrolled layer list (M_in, M_rec × T); the MLP unchanged."""
    if ae.kind == "mlp" or len(model.layers) == 1:
        return model
    return Autoencoder([model.layers[0]] + [model.layers[1]] * steps, model.M_out, model.activation)


def train_autoencoder(unlabelled: torch.Tensor, cfg: KcapConfig, ae: AutoencoderConfig,
                      generator: torch.Generator) -> Autoencoder:
    """T autoencoders trained by Adam on their task's stream (T, S, n) to reconstruct it (MSE)."""
    if ae.kind not in ("rnn", "mlp") or ae.activation not in ACTIVATIONS:
        raise ValueError(f"autoencoder kind={ae.kind!r}, activation={ae.activation!r}: use kind rnn or mlp "
                         f"and activation {' or '.join(ACTIVATIONS)}")
    model = init_autoencoder(cfg, ae, unlabelled.shape[0], generator, unlabelled.dtype)
    params = [p.to(unlabelled.device).requires_grad_() for p in model.layers + [model.M_out]]
    optimiser = torch.optim.Adam(params, lr=ae.learning_rate)
    n_samples = unlabelled.shape[1]
    with torch.enable_grad():
        for _ in range(ae.epochs):
            order = torch.randperm(n_samples, generator=generator).to(unlabelled.device)
            for start in range(0, n_samples, ae.batch_size):
                x = unlabelled[:, order[start: start + ae.batch_size]]
                current = _unrolled(Autoencoder(params[:-1], params[-1], ae.activation), ae, cfg.recurrent_steps)
                recon = torch.matmul(current.encode(x), current.M_out.transpose(1, 2))
                loss = reconstruction_mse(recon, x).sum()  # tasks are independent: a sum keeps their gradients apart
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    trained = Autoencoder([p.detach() for p in params[:-1]], params[-1].detach(), ae.activation)
    return _unrolled(trained, ae, cfg.recurrent_steps)


def autoencoder_scores(tasks: KcapTasks, cfg: KcapConfig, ae: AutoencoderConfig, generator: torch.Generator,
                       with_emd: bool = True) -> dict[str, torch.Tensor]:
    """Scores (T,) of backprop autoencoders trained on each task's stream, as for the k-cap networks."""
    model = train_autoencoder(tasks.unlabelled, cfg, ae, generator)
    query = model.encode(tasks.query_x)
    scores = latent_scores(model.encode(tasks.labelled_x), query, tasks, cfg, 1, with_emd)
    scores["ae_mse"] = reconstruction_mse(torch.matmul(query, model.M_out.transpose(1, 2)), tasks.query_x)
    return scores


# --- the paper's gradient outer loop ------------------------------------------------------------


def kcap_straight_through(x: torch.Tensor, k: int) -> torch.Tensor:
    """Forward the hard k-cap exactly; backward the identity (straight-through estimator).

    The forward stays the network that is evaluated (a softened cap would train a different one),
    and the identity passes to every unit's drive the gradient its activity receives, which is
    what an increase of that drive would do near the cap's threshold.
    """
    return kcap(x.detach(), k) + (x - x.detach())


@dataclass
class Rollout:
    """Networks reached at C stream positions (θ held constant), stacked c-major: pair c·N + n."""

    state: KcapState
    """(C·N) networks before sample s_c (their M_out unused)."""
    current: torch.Tensor
    """(C·N, n) the sample x_{s_c} the rule learns from."""
    following: torch.Tensor
    """(C·N, n) the next sample x_{s_c + 1} the updated network is scored on."""
    stream: torch.Tensor
    """(C·N, S, n) each pair's whole unlabelled stream, which the updated network's read-out is fit on."""


def lookahead_positions(n_samples: int, count: int) -> list[int]:
    """Up to count stream positions, evenly spaced over 0..S-2 (each needs a following sample)."""
    return sorted(set(torch.linspace(0, n_samples - 2, count).round().long().tolist()))


def rollout(theta: torch.Tensor, unlabelled: torch.Tensor, init: KcapState, cfg: KcapConfig) -> Rollout:
    """Run the stream with θ (N, R) detached, keeping the networks at the look-ahead positions."""
    theta = theta.detach()
    copies = theta.shape[0] // unlabelled.shape[0]
    positions = lookahead_positions(unlabelled.shape[1], cfg.lookahead_points)
    state, saved = init.expand(copies), []
    for step in range(positions[-1] + 1):
        if step in positions:
            saved.append(state)
        state = learn_step(theta, state, tile(unlabelled[:, step], copies), cfg)
    stacked = KcapState(*(torch.cat([getattr(s, name) for s in saved]) for name in ("M_in", "M_rec", "M_out")))
    sample = lambda offset: torch.cat([tile(unlabelled[:, s + offset], copies) for s in positions])
    return Rollout(stacked, sample(0), sample(1), tile(unlabelled, copies * len(positions)))


def one_step_losses(theta: torch.Tensor, roll: Rollout, cfg: KcapConfig,
                    cap: Cap = kcap_straight_through) -> torch.Tensor:
    """(C·N,) squared error of x_{s+1} through M_s updated once by θ on x_s, and that network's read-out.

    theta is (1, R), shared, or (N, R), one row per pair of the rollout's tasks. The read-out is
    the ridge fit on the stream for the updated encoder, held constant (no gradient through the fit).
    """
    pairs = roll.current.shape[0]
    theta = theta.expand(pairs, -1) if theta.shape[0] == 1 else theta.repeat(pairs // theta.shape[0], 1)
    updated = learn_step(theta, roll.state, roll.current, cfg)
    readout = with_readout(updated.map(torch.Tensor.detach), roll.stream, cfg)
    latent = encode(updated, roll.following.unsqueeze(1), cfg, cap)
    return reconstruction_mse(decode(readout, latent), roll.following.unsqueeze(1))


def lookahead_loss(theta: torch.Tensor, tasks: KcapTasks, init: KcapState, cfg: KcapConfig,
                   cap: Cap = kcap_straight_through) -> torch.Tensor:
    """The paper's meta-loss for θ (1, R): mean one-step look-ahead reconstruction error over tasks and positions.

    Differentiable in θ (through the single rule application and the straight-through cap);
    the networks M_s are reached with θ detached.
    """
    shared = theta.expand(tasks.n_tasks, -1)
    return one_step_losses(theta, rollout(shared, tasks.unlabelled, init, cfg), cfg, cap).mean()
