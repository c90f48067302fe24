"""The spiking family's config section: LIF network, input coding, read-out, surrogate and rule terms.

Plain frozen dataclasses (no torch): the shared schema nests them. ``validate`` names the bad
key and the fix. Tasks are drawn as the paper family draws them (its ``task`` section).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evoplastic.config import AdamConfig, ExperimentConfig, FamilySchema
from evoplastic.families.paper.config import TaskConfig

TERMS = ("eprop", "post_err", "err_err", "decay", "oja", "stdp_ltp", "stdp_ltd")
"""The rule's terms, in θ order (formulas in rules.TERM_FORMULAS)."""
NAMED_TERMS = {
    "eprop": ("eprop",),
    "bio": ("eprop", "err_err", "oja"),
    "stdp": ("eprop", "stdp_ltp", "stdp_ltd", "decay"),
    "pool": TERMS,
}
"""Term sets by name: e-prop alone, the paper's 'bio' rule in trace form, e-prop with STDP, all of them."""
INPUTS = ("current", "bernoulli")
READOUTS = ("membrane", "count")
RESETS = ("subtract", "zero")
SURROGATES = ("fast_sigmoid", "sigmoid", "atan", "triangle")
FEEDBACK_MODES = ("fa", "bp", "dfa")


@dataclass(frozen=True)
class SpikingConfig:
    """A feed-forward network of leaky integrate-and-fire neurons that learns each sample online."""

    dims: tuple[int, ...] = (784, 170, 130, 100, 70, 47)
    """Layer widths, input first; hidden layers spike, the last is the read-out."""
    steps: int = 10
    """Time steps each sample is presented for (the network starts each sample at rest)."""
    input: str = "current"
    """current: pixels x ∈ [0, 1] as a constant input each step; bernoulli: spikes with P = x per step, drawn
    from the episode's seeded generator (shared by every member on that task)."""
    beta: float = 0.8
    """Membrane decay α per step (exp(-Δt/τ_m)); the pre- and post-synaptic traces decay by it as well."""
    threshold: float = 1.0
    """Firing threshold ϑ: a neuron spikes when its membrane potential exceeds ϑ (v > ϑ)."""
    reset: str = "subtract"
    """After a spike: subtract ϑ from v (Bellec et al. 2020) or set v to zero."""
    refractory: int = 0
    """Steps after a spike in which a neuron cannot spike again (its pseudo-derivative is zero then)."""
    readout: str = "membrane"
    """membrane: the output layer integrates without spiking, logits = mean potential over the steps;
    count: the output layer spikes too, logits = spike count / steps (times readout_scale)."""
    readout_scale: float = 1.0
    """Logits are readout_scale times the read-out (a softmax temperature)."""
    weight_gain: float = 2.0
    """Initial W is Xavier-uniform times this gain (redrawn every episode, as the paper does). 2 keeps about 20 %
    of the units firing in every layer of the default network (ϑ = 1, β = 0.8, 10 steps); at 1 the fourth
    hidden layer is silent and nothing learns."""
    feedback: str = "fa"
    """Learning-signal pathway: fa (fixed random B_ℓ), bp (W_ℓᵀ, symmetric e-prop) or dfa (fixed random D_ℓ
    from the output error)."""
    surrogate: str = "fast_sigmoid"
    """Pseudo-derivative ψ(v - ϑ) used by the rule and, on the Adam path, as the spike's surrogate gradient:
    fast_sigmoid, sigmoid, atan or triangle."""
    slope: float = 5.0
    """Sharpness k of the surrogate (its width is about 1/k)."""
    dampening: float = 0.3
    """γ: ψ = γ F'(v - ϑ), F the smooth step of the surrogate (Bellec et al. 2020 use 0.3)."""
    terms: tuple[str, ...] = ("eprop", "err_err", "oja")
    """Rule terms searched (one θ each), or one named set: eprop, bio, stdp, pool."""
    per_layer: bool = False
    """One θ per term and layer instead of one shared by all layers."""
    baseline_lr: float = 0.0
    """Learning rate of the e-prop fa/bp/dfa baselines in evaluate; 0: the eprop term's scale."""


def resolve_terms(terms: tuple[str, ...]) -> tuple[str, ...]:
    """Term names in θ order, expanding a single named set; a ValueError names unknown ones."""
    if len(terms) == 1 and terms[0] in NAMED_TERMS:
        return NAMED_TERMS[terms[0]]
    unknown = [t for t in terms if t not in TERMS]
    if unknown or not terms or len(set(terms)) != len(terms):
        raise ValueError(f"spiking.terms={list(terms)}: give a named set ({', '.join(NAMED_TERMS)}) or a list "
                         f"without repeats of {', '.join(TERMS)}" + (f" (unknown: {unknown})" if unknown else ""))
    return tuple(t for t in TERMS if t in terms)


def _choice(value: str, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise ValueError(f"spiking.{key}={value!r}: choose one of {', '.join(allowed)}")


def validate_section(s: SpikingConfig) -> SpikingConfig:
    """Check the spiking section alone; return it unchanged."""
    if len(s.dims) < 2 or any(d < 1 for d in s.dims):
        raise ValueError(f"spiking.dims must be ≥ 2 positive widths, got {list(s.dims)}")
    for key, allowed in (("input", INPUTS), ("readout", READOUTS), ("reset", RESETS),
                         ("surrogate", SURROGATES), ("feedback", FEEDBACK_MODES)):
        _choice(getattr(s, key), allowed, key)
    if s.steps < 1:
        raise ValueError(f"spiking.steps must be ≥ 1, got {s.steps}")
    if not 0 <= s.beta < 1:
        raise ValueError(f"spiking.beta={s.beta}: the membrane decay must lie in [0, 1), e.g. 0.8")
    for key in ("threshold", "slope", "dampening", "readout_scale", "weight_gain"):
        if not getattr(s, key) > 0:
            raise ValueError(f"spiking.{key} must be > 0, got {getattr(s, key)}")
    if s.refractory < 0:
        raise ValueError(f"spiking.refractory must be ≥ 0 steps, got {s.refractory}")
    if s.baseline_lr < 0:
        raise ValueError(f"spiking.baseline_lr must be ≥ 0 (0: the eprop term's scale), got {s.baseline_lr}")
    resolve_terms(s.terms)
    return s


def theta_size(s: SpikingConfig) -> int:
    """Coordinates of θ: one per term, times the layers when per_layer."""
    return len(resolve_terms(s.terms)) * ((len(s.dims) - 1) if s.per_layer else 1)


def validate(cfg: Any) -> None:
    """Check an experiment's spiking section and task section against each other."""
    s, task = validate_section(cfg.spiking), cfg.task
    for key in ("n_way", "k_shot", "n_query"):
        if getattr(task, key) < 1:
            raise ValueError(f"task.{key} must be ≥ 1, got {getattr(task, key)}")
    if task.relabel and s.dims[-1] < task.n_way:
        raise ValueError(f"task.relabel needs ≥ n_way={task.n_way} outputs, but spiking.dims ends in {s.dims[-1]}")
    if task.mixture:
        raise ValueError("task.mixture is not supported by the spiking family; use task.dataset and task.classes")
    if cfg.rule.theta_init and len(cfg.rule.theta_init) != theta_size(s):
        raise ValueError(f"rule.theta_init has {len(cfg.rule.theta_init)} values but the spiking rule searches "
                         f"{theta_size(s)} ({', '.join(resolve_terms(s.terms))}"
                         f"{' per layer' if s.per_layer else ''}); give one per coordinate, or none")


@dataclass(frozen=True)
class SpikingAdamConfig(AdamConfig):
    """The gradient outer loop through the surrogate-gradient episode."""

    lr: float = 0.05
    term_scaled: bool = True
    """Step in search units θ_r / s_r (the ES scales, as es.stdev_init), so one lr suits terms whose natural
    sizes differ fifty-fold; false: plain θ coordinates."""


@dataclass(frozen=True)
class SpikingExperimentConfig(ExperimentConfig):
    """An experiment of the spiking family: the shared keys, its tasks (as the paper family draws them) and
    the spiking section."""

    family: str = "spiking"
    task: TaskConfig = field(default_factory=TaskConfig)
    spiking: SpikingConfig = field(default_factory=SpikingConfig)
    adam: SpikingAdamConfig = field(default_factory=SpikingAdamConfig)


SCHEMA = FamilySchema(name="spiking", config_class=SpikingExperimentConfig, validate=validate,
                      implementation="evoplastic.families.spiking.family:FAMILY")
"""The spiking family as the config loader sees it (registered in evoplastic.families)."""
