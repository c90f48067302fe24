"""The paper family's config sections: the plastic network and how few-shot image tasks are drawn.

Plain frozen dataclasses (no torch): the shared schema in evoplastic.config nests them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evoplastic.families.paper.space import RuleSpace
from evoplastic.families.paper.terms import N_TERMS, N_VOCAB

ACTIVATION_NAMES = ("softplus", "relu", "leaky_relu", "tanh", "sigmoid", "hardtanh", "heaviside")
"""Hidden nonlinearities (evoplastic.families.paper.network builds them)."""
SMOOTH_ACTIVATIONS = ("softplus", "tanh", "sigmoid")
"""Those twice differentiable, so that the Adam loop can differentiate through σ' in the error pathway."""
FEEDBACK_MODES = ("fa", "bp", "dfa")
"""fa: fixed random feedback B (Xavier, independent of W); bp: B = W at every step; dfa: direct
feedback, e_{ℓ-1} = (D_ℓᵀ e_L) ⊙ σ'(z_{ℓ-1}) with fixed random D_ℓ (n_L, n_{ℓ-1}) from the output."""


@dataclass(frozen=True)
class NetworkConfig:
    """The plastic network: layer sizes, nonlinearity and feedback pathway."""

    dims: tuple[int, ...] = (784, 170, 130, 100, 70, 47)
    """Layer widths, input first; the last is the softmax output."""
    activation: str = "softplus"
    """Hidden nonlinearity: softplus, relu, leaky_relu, tanh, sigmoid, hardtanh, heaviside."""
    beta: float = 10.0
    """Softplus sharpness β (paper: 10)."""
    negative_slope: float = 0.01
    """Slope of leaky_relu for negative inputs."""
    surrogate_width: float = 1.0
    """Width of heaviside's fast-sigmoid surrogate derivative 1/(1+|z|/w)^2."""
    feedback: str = "fa"
    """Error pathway: fa (fixed random B), bp (B = W at every step, i.e. backprop) or dfa (direct
    feedback: fixed random D_ℓ carries the output error e_L to every layer)."""


@dataclass(frozen=True)
class TaskConfig:
    """Where images come from and how an M-way few-shot online task is drawn."""

    dataset: str = "emnist"
    """emnist, mnist, fashion-mnist, digits, npz:PATH or idx:DIR."""
    split: str = "train"
    """train or test split of torchvision/IDX datasets."""
    data_dir: str = ""
    """Data directory of the named datasets (offline copies, torchvision cache); empty means $EVOPLASTIC_DATA,
    else ~/.cache/evoplastic."""
    download: bool = False
    """Allow torchvision to download a missing dataset."""
    pixel_scale: float = 0.0
    """The stored pixel value that means full intensity (e.g. 16 for 0-16 digits); 0: 255 for uint8 images, else
    the images must already lie in [0, 1]. Values outside [0, 1] after scaling are refused."""
    n_way: int = 5
    k_shot: int = 50
    """Training images per class, presented once, shuffled, one at a time."""
    n_query: int = 10
    classes: tuple[int, ...] = ()
    """Class ids tasks are drawn from; empty means all classes of the dataset."""
    relabel: bool = False
    """Map a task's classes to labels 0..n_way-1 instead of dataset class ids."""
    class_replacement: bool = False
    """Draw a task's classes with replacement, as the published code does (a class may repeat)."""
    mixture: tuple[str, ...] = ()
    """Datasets to draw tasks from instead of task.dataset, each task from one of them (e.g. [emnist,
    fashion-mnist]): a rule meta-trained across domains. Their images must have the same size.
    NAME@CLASSES restricts one to class ids, e.g. emnist@0-36 keeps 37-46 held out."""
    mixture_weights: tuple[float, ...] = ()
    """Relative probability of each task.mixture dataset; empty: equal."""


def parse_class_ids(text: str, what: str = "classes") -> tuple[int, ...]:
    """'40-46', '0,2,5' or '0-9,20' -> sorted unique class ids; ``what`` names the option in errors."""
    ids: set[int] = set()
    try:
        for part in text.replace(" ", "").split(","):
            low, dash, high = part.partition("-")
            ids.update(range(int(low), int(high) + 1) if dash else [int(low)])
    except ValueError:
        raise ValueError(f"{what} {text!r}: write class ids such as 40-46 or 0,2,5 or 0-9,20") from None
    if not ids:
        raise ValueError(f"{what} {text!r} names no class")
    return tuple(sorted(ids))


def mixture_entry(entry: str) -> tuple[str, tuple[int, ...]]:
    """A task.mixture entry 'NAME' or 'NAME@CLASSES' -> (dataset name, class ids; empty: all)."""
    name, at, classes = entry.rpartition("@")
    if not at:
        return entry, ()
    return name, parse_class_ids(classes, f"task.mixture entry {entry!r}: classes")


def _choice(value: str, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {key} {value!r}; choose one of: {', '.join(allowed)}")


def check_differentiable(network: NetworkConfig) -> None:
    """Refuse activations whose error pathway has no useful second derivative (the Adam loop needs one)."""
    if network.activation not in SMOOTH_ACTIVATIONS:
        raise ValueError(
            f"the Adam outer loop differentiates through σ'(z) in the error pathway, but "
            f"activation {network.activation!r} is not twice differentiable (its σ' is piecewise "
            f"constant, so the meta-gradient through it is zero or undefined). Use outer=es, "
            f"which needs no gradient, or a smooth activation: {', '.join(SMOOTH_ACTIVATIONS)}."
        )


def validate(cfg: Any) -> None:
    """Check the paper family's sections of an experiment config (network, task, rule, es.term_scale)."""
    net, task = cfg.network, cfg.task
    if len(net.dims) < 2 or any(d < 1 for d in net.dims):
        raise ValueError(f"network.dims must be ≥ 2 positive widths, got {list(net.dims)}")
    _choice(net.activation, ACTIVATION_NAMES, "network.activation")
    _choice(net.feedback, FEEDBACK_MODES, "network.feedback")
    if not task.pixel_scale >= 0:
        raise ValueError(f"task.pixel_scale must be > 0 (or 0: uint8 / 255), got {task.pixel_scale}")
    for key in ("n_way", "k_shot", "n_query"):
        if getattr(task, key) < 1:
            raise ValueError(f"task.{key} must be ≥ 1, got {getattr(task, key)}")
    if task.relabel and task.class_replacement:
        raise ValueError("task.relabel and task.class_replacement conflict: a repeated class would get two labels")
    if task.relabel and net.dims[-1] < task.n_way:
        raise ValueError(f"task.relabel needs ≥ n_way={task.n_way} outputs, but network.dims ends in {net.dims[-1]}")
    if task.mixture_weights and len(task.mixture_weights) != len(task.mixture):
        raise ValueError(f"task.mixture_weights has {len(task.mixture_weights)} values for {len(task.mixture)} "
                         f"task.mixture datasets; give one weight per dataset, or none for equal weights")
    if any(w < 0 for w in task.mixture_weights) or (task.mixture_weights and not sum(task.mixture_weights) > 0):
        raise ValueError(f"task.mixture_weights must be ≥ 0 and not all 0, got {list(task.mixture_weights)}")
    if task.mixture and task.classes:
        raise ValueError("task.classes names class ids of one dataset; with task.mixture restrict each entry "
                         "instead, e.g. emnist@0-36")
    for entry in task.mixture:
        mixture_entry(entry)
    space = _rule_space(cfg)
    space.initial(cfg.rule.theta_init)  # raises on a wrong length
    if cfg.es.term_scale and len(cfg.es.term_scale) not in (N_TERMS, N_VOCAB):
        raise ValueError(f"es.term_scale needs {N_TERMS} values (the paper's terms) or {N_VOCAB} (with the "
                         f"generated ones), got {len(cfg.es.term_scale)}")
    if space.feedback_terms and net.feedback == "bp":
        raise ValueError("rule.feedback_terms makes the feedback matrix plastic, but network.feedback=bp has none "
                         "(B is W itself); use network.feedback=fa or dfa, or rule.feedback_terms=''")
    if cfg.es.compile and not space.fusable:
        raise ValueError("es.compile=true fuses the paper's ten terms only; rule.feedback_terms and generated terms "
                         "(10+) run the plain batched loop: set es.compile=false")
    if space.per_layer and (cfg.es.kernel != "inductor" or cfg.es.cuda_graph):
        raise ValueError("rule.per_layer=true compiles with the Inductor step only; set es.kernel=inductor and "
                         "es.cuda_graph=false")
    if cfg.outer == "adam":
        check_differentiable(net)


def _rule_space(cfg: Any) -> RuleSpace:
    """The rule's space, with rule.terms / rule.feedback_terms errors named."""
    try:
        return RuleSpace.from_config(cfg)
    except ValueError as err:
        key = "rule.feedback_terms" if "feedback term" in str(err) else "rule.terms"
        raise ValueError(f"{key}: {err}") from None
