"""Settings of the k-cap RNN family (Balwani, Gupta & Shu): data, network, rule space and meta-objective.

One frozen dataclass is schema and defaults; ``validate`` names the bad key and the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from evoplastic.config import ExperimentConfig, FamilySchema

DATASETS = ("moons", "circles", "blobs")
"""Known 2-D two-class generators; a task's ``dataset`` id indexes this tuple."""

MATRICES = ("M_in", "M_rec")
"""Matrices a rule may make plastic, in θ-block order; M_out is the closed-form read-out."""

POOL_TERMS = ("hebb", "post", "pre", "decay", "oja", "covariance", "gated_decay", "hebb_near", "hebb_far",
              "auto")
"""Names of the pool's terms, in index order (rules.POOL holds their formulas)."""

RULE_FORMS = ("pool", "mlp")
NORMALISATIONS = ("none", "row", "column")
OBJECTIVES = ("probe_loss", "probe_error", "ae_mse", "emd")


@dataclass(frozen=True)
class KcapConfig:
    """Everything one k-cap task episode and its scores depend on."""

    datasets: tuple[str, ...] = DATASETS
    """Generators tasks are drawn from (round-robin from a random offset)."""
    n_features: int = 10
    """Dimension n of the random projection of the 2-D points (the network's input)."""
    moons_noise: float = 0.1
    """Std of the Gaussian noise added to the 2-D moons points (before standardising)."""
    circles_noise: float = 0.05
    """Std of the Gaussian noise added to the 2-D circles points (before standardising)."""
    circles_factor: float = 0.5
    """Radius of the inner circle relative to the outer one."""
    blobs_std: float = 1.0
    """Std of each Gaussian blob; the centres are fixed at (±2, 0)."""
    n_unlabelled: int = 200
    """S: unlabelled samples streamed once, one at a time, to the inner loop."""
    labels_per_class: int = 5
    """L: labelled samples per class that the linear probe is fit on."""
    n_query: int = 100
    """Query samples per class the probe, read-out and EMD are scored on (2·n_query in all)."""
    n_hidden: int = 64
    """m: units of the recurrent layer."""
    cap: int = 8
    """k: units the k-cap keeps active (ones) at every step."""
    recurrent_steps: int = 3
    """T: recurrent steps after the input step; the latent is x_{T+1}."""
    rule: str = "pool"
    """Rule form: pool (Σ θ_r T_r over named terms) or mlp (tiny MLP f_θ(pre_j, post_i, M_ij))."""
    terms: tuple[str, ...] = ("hebb", "covariance", "oja", "decay")
    """Pool terms searched, by name (POOL_TERMS; formulas in rules.POOL); ignored by the mlp form."""
    per_matrix: bool = False
    """One θ block per plastic matrix (True) or one θ shared by all of them (False)."""
    plastic: tuple[str, ...] = MATRICES
    """Matrices the rule updates, among M_in and M_rec."""
    normalise: str = "row"
    """After each update rescale every row (a unit's inputs), column, or nothing to unit L2 norm."""
    mlp_hidden: int = 8
    """Hidden units of the mlp rule (θ has 5·mlp_hidden + 1 entries per block)."""
    probe_ridge: float = 1e-3
    """Ridge λ of the linear probe, per labelled sample (loss mean + λ‖w‖²)."""
    readout_ridge: float = 1e-3
    """Ridge λ of the closed-form read-out M_out fit on the unlabelled latents."""
    objective: str = "probe_loss"
    """Meta-loss the outer loop minimises: probe_loss, probe_error, ae_mse or emd."""
    lookahead_points: int = 16
    """Stream positions the paper's one-step look-ahead loss (baselines) averages over."""
    input_bias: float = 0.0
    """Value b of a constant input unit appended to x_0 (0: none). Without it the code is scale-invariant,
    a_k(M_in c x) = a_k(M_in x) for c > 0, so it sees only the input's direction (circles differ only in
    radius); with it M_in has n + 1 columns, the last a per-unit threshold b·M_in[:, n] the rule also updates."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _check_subset(key: str, values: tuple[str, ...], known: tuple[str, ...]) -> None:
    unknown = [v for v in values if v not in known]
    _require(bool(values) and not unknown and len(set(values)) == len(values),
             f"kcap.{key}={list(values)}: give a non-empty list without repeats of {', '.join(known)}"
             + (f" (unknown: {unknown})" if unknown else ""))


def _check_choice(key: str, value: str, known: tuple[str, ...]) -> None:
    _require(value in known, f"kcap.{key}={value!r}: choose one of {', '.join(known)}")


def validate(cfg: KcapConfig) -> KcapConfig:
    """Raise ValueError naming the key and the fix for any bad value; return cfg unchanged."""
    _check_subset("datasets", tuple(cfg.datasets), DATASETS)
    _check_subset("plastic", tuple(cfg.plastic), MATRICES)
    _check_choice("rule", cfg.rule, RULE_FORMS)
    _check_choice("normalise", cfg.normalise, NORMALISATIONS)
    _check_choice("objective", cfg.objective, OBJECTIVES)
    if cfg.rule == "pool":
        _check_subset("terms", tuple(cfg.terms), POOL_TERMS)
    for key in ("n_features", "n_unlabelled", "labels_per_class", "n_query", "n_hidden", "cap",
                "mlp_hidden", "lookahead_points"):
        value = getattr(cfg, key)
        _require(isinstance(value, int) and value >= 1, f"kcap.{key}={value!r}: must be an integer ≥ 1")
    _require(isinstance(cfg.recurrent_steps, int) and cfg.recurrent_steps >= 0,
             f"kcap.recurrent_steps={cfg.recurrent_steps!r}: must be an integer ≥ 0")
    _require(cfg.rule != "mlp" or cfg.mlp_hidden >= 2,
             f"kcap.mlp_hidden={cfg.mlp_hidden}: the mlp rule needs ≥ 2 hidden units (its start uses two)")
    _require(cfg.cap <= cfg.n_hidden, f"kcap.cap={cfg.cap} exceeds kcap.n_hidden={cfg.n_hidden}; "
                                      f"set cap ≤ n_hidden (e.g. n_hidden // 8)")
    _require(cfg.n_unlabelled >= 2, f"kcap.n_unlabelled={cfg.n_unlabelled}: need ≥ 2 samples to learn and "
                                    f"fit the read-out")
    for key in ("moons_noise", "circles_noise", "blobs_std", "probe_ridge", "readout_ridge"):
        value = getattr(cfg, key)
        _require(value >= 0, f"kcap.{key}={value!r}: must be ≥ 0")
    _require(cfg.probe_ridge > 0 and cfg.readout_ridge > 0,
             "kcap.probe_ridge and kcap.readout_ridge must be > 0 (the closed-form fits need it); try 1e-3")
    _require(math.isfinite(cfg.input_bias), f"kcap.input_bias={cfg.input_bias!r}: must be finite (0 for none)")
    _require(0 < cfg.circles_factor < 1, f"kcap.circles_factor={cfg.circles_factor!r}: must lie in (0, 1)")
    return cfg


@dataclass(frozen=True)
class KcapExperimentConfig(ExperimentConfig):
    """An experiment of the k-cap family: the shared keys and its kcap section."""

    family: str = "kcap"
    kcap: KcapConfig = field(default_factory=KcapConfig)


SCHEMA = FamilySchema(name="kcap", config_class=KcapExperimentConfig, validate=lambda cfg: validate(cfg.kcap),
                      implementation="evoplastic.families.kcap.family:FAMILY")
"""The k-cap family as the config loader sees it (registered in evoplastic.families)."""
