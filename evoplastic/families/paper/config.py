"""The paper family's config sections: the plastic network and how few-shot image tasks are drawn.

Plain frozen dataclasses (no torch). PaperExperimentConfig is the shared schema plus these sections and
the paper's extensions of rule, es and adam; SCHEMA registers them with the loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evoplastic.config import AdamConfig, ESConfig, ExperimentConfig, FamilySchema, RuleConfig
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
    input_norm: str = "none"
    """Per-sample input normalisation before the network: none, unit (each image scaled to L2 norm
    input_norm_scale) or zscore (zero mean, unit variance over its pixels); makes a rule blind to stroke
    width and brightness in part."""
    input_norm_scale: float = 10.0
    """L2 norm of every image under input_norm=unit (about the mean norm of EMNIST's images)."""


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
    augment: tuple[str, ...] = ()
    """Intensity augmentation while meta-training: each task's images go through one transform drawn from
    these (e.g. [erode:1, dilate:1, contrast:0.5, none]; 'intensity' for the built-in set). Training and
    evaluation draws alike; evaluate a rule on fixed stress levels with evaluate --transform."""


@dataclass(frozen=True)
class PaperRuleConfig(RuleConfig):
    """Which plasticity terms are meta-learned, their start values and the L1 weight."""

    terms: str = "pool"
    """A named rule (fa, bp, bio, ehebb, oja, pool, generated) or term indices such as '0,2,9' (10-33: generated
    terms, see families/paper/terms.py)."""
    per_layer: bool = False
    """One coefficient per term and layer (θ ∈ R^{L×R}, L1 on every entry) instead of one shared rule."""
    feedback_terms: str = ""
    """Plastic feedback: the terms of a second rule that updates B (fa) or D (dfa) online — kp (hebb + decay),
    all, or names/indices of hebb, ee, decay, oja; empty: the feedback stays fixed."""
    plugin_terms: tuple[str, ...] = ()
    """Plasticity terms registered with evoplastic.register_term (or 'module:attr'), searched after the
    built-in and feedback terms: one shared coefficient each, plain batched loop only (es.compile=false)."""
    theta_init: tuple[float, ...] = ()
    """Initial θ (paper units), weight terms, then feedback terms, then plug-in terms: every coordinate, or one
    block that every layer starts from; empty means θ_0 = 1e-3, others 0."""


@dataclass(frozen=True)
class PaperESConfig(ESConfig):
    """Evolution-strategy settings, with the paper network's search scales and compiled inner loops."""

    term_scale: tuple[float, ...] = ()
    """Paper units per search unit for each of the 10 terms; empty means built-in defaults."""
    compile: bool = False
    """Learn with the fused torch.compile'd step (several times faster on CPU; ~30 s to compile once)."""
    cuda_graph: bool = False
    """With compile on CUDA: replay each chunk's whole online phase from one captured CUDA graph."""
    precision: str = "float32"
    """float32; tf32 (CUDA matmuls in TF32); bfloat16 or float16 (W stored in 16 bits, needs compile)."""
    kernel: str = "auto"
    """The compiled step: auto (cpp on CPU, inductor on CUDA), cpp (CPU: a C++ pass reads and writes W once
    per step, built with the system C++ compiler), inductor (torch.compile fuses the step) or triton (CUDA:
    one read + write of W per step)."""


@dataclass(frozen=True)
class PaperAdamConfig(AdamConfig):
    """The paper's gradient outer loop."""

    term_scaled: bool = False
    """Step in per-term scaled coordinates θ_r / s_r (s from es.term_scale, relative to θ_0's).

    Plain Adam moves every θ_r by about lr per step whatever its natural scale, which for
    the pool's large terms (T5, T6-T8) wrecks the network in the first step.
    """


@dataclass(frozen=True)
class PaperExperimentConfig(ExperimentConfig):
    """An experiment of the paper's family: the shared keys, its network and task sections, its rule space."""

    family: str = "paper"
    network: NetworkConfig = field(default_factory=NetworkConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rule: PaperRuleConfig = field(default_factory=PaperRuleConfig)
    es: PaperESConfig = field(default_factory=PaperESConfig)
    adam: PaperAdamConfig = field(default_factory=PaperAdamConfig)


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


PRECISIONS = ("float32", "tf32", "bfloat16", "float16")
"""es.precision values (evoplastic.precision implements them)."""

KERNELS = ("auto", "cpp", "inductor", "triton")
"""es.kernel values (evoplastic.families.paper.fused.resolve_kernel picks auto's per device)."""


AUGMENT_INTENSITY = ("erode:1", "erode:2", "dilate:1", "dilate:2", "contrast:0.3", "contrast:0.5", "contrast:2", "none")
"""task.augment=[intensity]: thinner, thicker, fainter and brighter strokes, and the images as they are."""


INPUT_NORMS = ("none", "unit", "zscore")
"""Per-sample input normalisation: none; unit (x scaled to a fixed L2 norm, network.input_norm_scale); zscore
((x - mean) / std over the sample's pixels)."""
TRANSFORMS = ("erode", "dilate", "contrast", "invert")
"""Changes of input statistics (evoplastic.families.paper.transforms applies them)."""


def parse_transform(text: str) -> tuple[str, float]:
    """'erode:2', 'contrast:0.5', 'invert' or 'none' -> (name, level); a ValueError naming the fix."""
    name, _, level = text.strip().partition(":")
    if name == "none":
        return "none", 0.0
    if name not in TRANSFORMS:
        raise ValueError(f"transform {text!r}: choose one of {', '.join(TRANSFORMS)} (e.g. erode:2, dilate:1, "
                         f"contrast:0.5, invert), or none")
    try:
        value = float(level) if level else 1.0
    except ValueError:
        raise ValueError(f"transform {text!r}: the level after ':' must be a number") from None
    if name in ("erode", "dilate") and (value != int(value) or value < 1):
        raise ValueError(f"transform {text!r}: erode/dilate take a whole number of 3×3 steps ≥ 1")
    if name == "contrast" and value <= 0:
        raise ValueError(f"transform {text!r}: contrast must be > 0")
    return name, value


def augment_levels(augment: tuple[str, ...]) -> tuple[str, ...]:
    """task.augment's transforms ('intensity' expanded), each checked; a ValueError names a bad one."""
    levels = tuple(level for entry in augment for level in (AUGMENT_INTENSITY if entry == "intensity" else (entry,)))
    for level in levels:
        try:
            parse_transform(level)
        except ValueError as err:
            raise ValueError(f"task.augment entry {level!r}: {err}; or use intensity") from None
    return levels


def _choice(value: str, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {key} {value!r}; choose one of: {', '.join(allowed)}")


def check_differentiable(network: NetworkConfig) -> None:
    """Refuse activations whose error pathway has no useful second derivative (the Adam loop needs one)."""
    if network.activation in ACTIVATION_NAMES and network.activation not in SMOOTH_ACTIVATIONS:
        raise ValueError(
            f"the Adam outer loop differentiates through σ'(z) in the error pathway, but "
            f"activation {network.activation!r} is not twice differentiable (its σ' is piecewise "
            f"constant, so the meta-gradient through it is zero or undefined). Use outer=es, "
            f"which needs no gradient, or a smooth activation: {', '.join(SMOOTH_ACTIVATIONS)}."
        )
    if network.activation not in ACTIVATION_NAMES:
        from evoplastic.plugins import ACTIVATIONS

        if not ACTIVATIONS.get(network.activation).differentiable:
            raise ValueError(
                f"the Adam outer loop differentiates through σ'(z), but the plug-in activation "
                f"{network.activation!r} was registered without derivative_from_output, so it has no gradient to "
                f"follow. Use outer=es, or register it with derivative_from_output=…")


def validate(cfg: Any) -> None:
    """Check the paper family's sections of an experiment config (network, task, rule, es.term_scale)."""
    net, task = cfg.network, cfg.task
    if len(net.dims) < 2 or any(d < 1 for d in net.dims):
        raise ValueError(f"network.dims must be ≥ 2 positive widths, got {list(net.dims)}")
    check_activation(net.activation)
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
    _choice(net.input_norm, INPUT_NORMS, "network.input_norm")
    if net.input_norm_scale <= 0:
        raise ValueError(f"network.input_norm_scale must be > 0, got {net.input_norm_scale}")
    augment_levels(task.augment)
    space = _rule_space(cfg)
    space.initial(cfg.rule.theta_init)  # raises on a wrong length
    if cfg.es.term_scale and len(cfg.es.term_scale) not in (N_TERMS, N_VOCAB):
        raise ValueError(f"es.term_scale needs {N_TERMS} values (the paper's terms) or {N_VOCAB} (with the "
                         f"generated ones), got {len(cfg.es.term_scale)}")
    if space.feedback_terms and net.feedback == "bp":
        raise ValueError("rule.feedback_terms makes the feedback matrix plastic, but network.feedback=bp has none "
                         "(B is W itself); use network.feedback=fa or dfa, or rule.feedback_terms=''")
    if space.plugin_terms and space.per_layer:
        raise ValueError("rule.plugin_terms take one shared coefficient each; set rule.per_layer=false")
    if cfg.es.compile and not space.fusable:
        raise ValueError("es.compile=true fuses the paper's ten terms only; rule.feedback_terms, generated terms "
                         "(10+) and rule.plugin_terms run the plain batched loop: set es.compile=false")
    if space.per_layer and (cfg.es.kernel == "triton" or cfg.es.cuda_graph):
        raise ValueError("rule.per_layer=true compiles with the Inductor or C++ step only; set es.kernel=auto and "
                         "es.cuda_graph=false")
    if cfg.outer == "adam":
        check_differentiable(net)
    _check_speed_options(cfg)


def check_activation(name: str) -> None:
    """A built-in activation, a registered one or a 'module:attr' plug-in (imported now, so a typo fails early)."""
    if name not in ACTIVATION_NAMES:
        from evoplastic.plugins import ACTIVATIONS

        try:
            ACTIVATIONS.get(name)
        except ValueError as err:
            if ":" in name:
                raise ValueError(f"network.activation: {err}") from None
            known = ", ".join([*ACTIVATION_NAMES, *ACTIVATIONS.names()])
            raise ValueError(f"unknown network.activation {name!r}; choose one of: {known} (or register one, or "
                             f"name a plug-in as 'module:attr')") from None


def _check_speed_options(cfg: Any) -> None:
    """es.precision and es.cuda_graph act on the compiled float32 loop only; say so instead of ignoring them."""
    es = cfg.es
    _choice(es.precision, PRECISIONS, "es.precision")
    if es.precision != "float32" and cfg.dtype != "float32":
        raise ValueError(f"es.precision={es.precision} lowers float32 arithmetic; with dtype={cfg.dtype} "
                         "set es.precision=float32")
    if es.precision in ("bfloat16", "float16") and not es.compile:
        raise ValueError(f"es.precision={es.precision} stores weights in 16 bits inside the compiled step; "
                         "set es.compile=true (or es.precision=float32)")
    if es.cuda_graph and not es.compile:
        raise ValueError("es.cuda_graph=true captures the compiled step; set es.compile=true as well")
    if es.cuda_graph and cfg.device == "cpu":
        raise ValueError("es.cuda_graph=true needs a GPU; set device=cuda (or auto), or es.cuda_graph=false")
    _choice(es.kernel, KERNELS, "es.kernel")
    missing = [fix for fix, ok in (("es.compile=true", es.compile), ("device=cuda (or auto)", cfg.device != "cpu"),
                                   ("dtype=float32", cfg.dtype == "float32")) if not ok]
    if es.kernel == "triton" and missing:
        raise ValueError(f"es.kernel=triton replaces the compiled step on a GPU, in float32 arithmetic; set "
                         f"{' and '.join(missing)}, or es.kernel=auto")
    if es.kernel == "cpp" and cfg.device.startswith("cuda"):
        raise ValueError(f"es.kernel=cpp is the CPU's compiled step, but device={cfg.device}; set device=cpu, or "
                         "es.kernel=auto (Inductor on CUDA) or triton")
    if es.kernel == "cpp" and not es.compile:
        raise ValueError("es.kernel=cpp chooses the compiled step; set es.compile=true as well")
    if es.compile and cfg.network.activation not in ACTIVATION_NAMES:
        raise ValueError(f"es.compile=true fuses the built-in activations only; network.activation="
                         f"{cfg.network.activation} is a plug-in: set es.compile=false")


def _rule_space(cfg: Any) -> RuleSpace:
    """The rule's space, with rule.terms / rule.feedback_terms errors named."""
    try:
        return RuleSpace.from_config(cfg)
    except ValueError as err:
        key = ("rule.feedback_terms" if "feedback term" in str(err) else
               "rule.plugin_terms" if "plasticity term" in str(err) else "rule.terms")
        raise ValueError(f"{key}: {err}") from None


SCHEMA = FamilySchema(name="paper", config_class=PaperExperimentConfig, validate=validate,
                      implementation="evoplastic.families.paper.family:FAMILY")
"""The paper family as the config loader sees it (registered in evoplastic.families)."""
