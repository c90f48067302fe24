"""Experiment configuration: one tree of frozen dataclasses is both schema and defaults.

YAML files hold only overrides; ``key.sub=value`` overrides go through the same loader.
Unknown keys and wrong types are errors that name the key and the accepted values.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from evoplastic.families.kcap.config import KcapConfig
from evoplastic.families.kcap.config import validate as validate_kcap
from evoplastic.families.paper.config import NetworkConfig, TaskConfig
from evoplastic.families.paper.config import validate as validate_paper
from evoplastic.yamlfile import load_yaml

CONFIG_VERSION = 2
"""2: the family key and its sections (kcap); 1 (no config_version): the paper's sections only."""
SECTION_CHECKS = {"paper": validate_paper, "kcap": lambda cfg: validate_kcap(cfg.kcap)}
"""Each family's check of its own config sections (torch-free, from families/<name>/config.py)."""
FAMILIES = tuple(SECTION_CHECKS)
"""Network families (evoplastic.families): the paper's feed-forward network, the k-cap RNN of seed 004."""


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message says which and how to fix it."""


@dataclass(frozen=True)
class RuleConfig:
    """Which plasticity terms are meta-learned, their start values and the L1 weight."""

    terms: str = "pool"
    """A named rule (fa, bp, bio, ehebb, oja, pool, generated) or term indices such as '0,2,9' (10-33: generated
    terms, see families/paper/terms.py)."""
    per_layer: bool = False
    """One coefficient per term and layer (θ ∈ R^{L×R}, L1 on every entry) instead of one shared rule."""
    feedback_terms: str = ""
    """Plastic feedback: the terms of a second rule that updates B (fa) or D (dfa) online — kp (hebb + decay),
    all, or names/indices of hebb, ee, decay, oja; empty: the feedback stays fixed."""
    theta_init: tuple[float, ...] = ()
    """Initial θ (paper units), weight terms then feedback terms: every coordinate, or one block that every
    layer starts from; empty means θ_0 = 1e-3, others 0."""
    l1: float = 0.0
    """λ of the λ‖θ‖₁ penalty added to the meta-loss."""


@dataclass(frozen=True)
class ESConfig:
    """Evolution-strategy settings (evotorch)."""

    algorithm: str = "cmaes"
    """cmaes, pgpe, snes, xnes or cem."""
    separable: bool = False
    """cmaes: sep-CMA-ES, a diagonal covariance (linear cost in the number of coefficients, for large rule spaces)."""
    population_size: int = 16
    stdev_init: float = 0.5
    """Initial search spread, in scaled coordinates (θ_r / term_scale_r)."""
    term_scale: tuple[float, ...] = ()
    """Paper units per search unit for each of the 10 terms; empty means built-in defaults."""
    center_lr: float = 0.3
    """PGPE: centre learning rate (ClipUp's step size or Adam's lr)."""
    stdev_lr: float = 0.1
    """PGPE/SNES/XNES: learning rate of the search spread."""
    optimizer: str = "clipup"
    """PGPE centre optimiser: clipup, adam or sgd."""
    max_speed: float = 0.0
    """ClipUp maximum speed; 0 means 2 × center_lr."""
    parenthood_ratio: float = 0.5
    """CEM: fraction of the population that are parents."""
    member_chunk: int = 0
    """Members evaluated per inner-loop call; 0: as many as fit in half the free memory (plain CPU loop: in cache)."""
    compile: bool = False
    """Learn with the fused torch.compile'd step (several times faster on CPU; ~30 s to compile once)."""
    cuda_graph: bool = False
    """With compile on CUDA: replay each chunk's whole online phase from one captured CUDA graph."""
    precision: str = "float32"
    """float32; tf32 (CUDA matmuls in TF32); bfloat16 or float16 (W stored in 16 bits, needs compile)."""
    kernel: str = "inductor"
    """Compiled step on CUDA: inductor (torch.compile fuses it) or triton (one read + write of W per step)."""


@dataclass(frozen=True)
class AdamConfig:
    """The paper's gradient outer loop."""

    lr: float = 1e-3
    term_scaled: bool = False
    """Step in per-term scaled coordinates θ_r / s_r (s from es.term_scale, relative to θ_0's).

    Plain Adam moves every θ_r by about lr per step whatever its natural scale, which for
    the pool's large terms (T5, T6-T8) wrecks the network in the first step.
    """


@dataclass(frozen=True)
class ObjectiveConfig:
    """How a candidate's per-task scores (T,) become the one number ES ranks (before + λ‖θ‖₁)."""

    reduce: str = "mean"
    """mean: the mean task loss (the paper's meta-loss); error: the mean query error (1 - accuracy,
    no gradient); cvar: the mean loss of the worst cvar_fraction of the tasks; mean_std: mean + std_weight · std."""
    cvar_fraction: float = 0.1
    """cvar: the share q of a candidate's tasks, the worst ones, whose loss is averaged (at least one task)."""
    std_weight: float = 1.0
    """mean_std: κ in mean + κ·std of the task losses (κ > 0 penalises rules that work on some tasks only)."""


OBJECTIVES = ("mean", "error", "cvar", "mean_std")


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment; saved resolved into every run directory and checkpoint."""

    name: str = "experiment"
    seed: int = 0
    family: str = "paper"
    """Network family: paper (feed-forward few-shot image learner, sections network/task) or kcap
    (unsupervised k-cap RNN, section kcap). rule, es, adam and the rest are shared."""
    outer: str = "es"
    """Outer optimiser: es or adam."""
    steps: int = 600
    """Generations (ES) or episodes (Adam)."""
    tasks_per_step: int = 1
    """Tasks T per generation/episode; every member sees the same T tasks."""
    eval_every: int = 10
    """Evaluate the centre θ on fresh tasks every k steps (0: never)."""
    eval_tasks: int = 10
    """Fresh tasks per periodic evaluation."""
    final_eval_tasks: int = 100
    """Fresh tasks for the evaluation at the end of the run."""
    device: str = "cpu"
    """cpu, cuda, cuda:N or auto."""
    dtype: str = "float32"
    threads: int = 0
    """torch intra-op threads per process (per MPI rank); 0: $OMP_NUM_THREADS if set, else 1 (measured fastest)."""
    network: NetworkConfig = field(default_factory=NetworkConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rule: RuleConfig = field(default_factory=RuleConfig)
    es: ESConfig = field(default_factory=ESConfig)
    adam: AdamConfig = field(default_factory=AdamConfig)
    kcap: KcapConfig = field(default_factory=KcapConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    config_version: int = CONFIG_VERSION
    """Schema version of a saved config; older ones are migrated when loaded (migrate)."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the annotated type, or raise a ConfigError naming the key."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' is a section; give a mapping, not {value!r}")
        return _build(tp, value, prefix=f"{key}.")
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split()]
            value = [yaml.safe_load(v) for v in value]
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"unsupported union type for '{key}'")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, str):  # YAML reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"'{key}' must be {_type_name(tp)}, got {value!r}")


def _build(cls: type, values: dict, prefix: str = "") -> Any:
    """Instantiate dataclass ``cls`` from a (partial) mapping, rejecting unknown keys."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
            f"known keys under '{prefix or 'top level'}': {', '.join(sorted(known))}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in values.items()}
    return cls(**kwargs)


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict:
    """Turn ``a.b=c`` into ``{'a': {'b': c}}`` with c parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. es.population_size=32")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    nested: dict = value
    for part in reversed(key.strip().split(".")):
        nested = {part: nested}
    return nested


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> ExperimentConfig:
    """Defaults, then the YAML file's overrides, then ``key=value`` overrides, validated."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found; see the YAML files in configs/")
        loaded = load_yaml(path) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of config keys")
        values = loaded
        values.setdefault("name", path.stem)
    for text in overrides:
        values = _merge(values, parse_override(text))
    return validate(_build(ExperimentConfig, values))


def override_config(cfg: ExperimentConfig, overrides: typing.Sequence[str]) -> ExperimentConfig:
    """Apply ``key=value`` overrides to an existing config (e.g. one saved in a run)."""
    values = config_to_dict(cfg)
    for text in overrides:
        values = _merge(values, parse_override(text))
    return validate(_build(ExperimentConfig, values))


def config_to_dict(cfg: Any) -> dict:
    """Plain nested dict (tuples as lists) for YAML/JSON output."""
    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(cfg))


def migrate(values: dict) -> dict:
    """A saved config's values brought to CONFIG_VERSION; version 1 predates families (it is the paper's)."""
    version = values.get("config_version", 1)
    if not isinstance(version, int) or version > CONFIG_VERSION:
        raise ConfigError(f"config_version {version!r} is newer than this evoplastic understands "
                          f"({CONFIG_VERSION}); upgrade evoplastic to read this run")
    values = dict(values)
    if version == 1:
        values["family"] = values.get("family", "paper")
    values["config_version"] = CONFIG_VERSION
    return values


def config_from_dict(values: dict) -> ExperimentConfig:
    """Rebuild a config saved by :func:`config_to_dict` (by this or an older version)."""
    return validate(_build(ExperimentConfig, migrate(values)))


def _choice(value: str, allowed: typing.Iterable[str], key: str) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"unknown {key} {value!r}; choose one of: {', '.join(allowed)}")


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Check values that the types alone cannot (shared keys, then the family's); return cfg unchanged."""
    _choice(cfg.family, FAMILIES, "family")
    _choice(cfg.outer, ("es", "adam"), "outer")
    _choice(cfg.dtype, ("float32", "float64"), "dtype")
    _choice(cfg.es.algorithm, ("cmaes", "pgpe", "snes", "xnes", "cem"), "es.algorithm")
    _choice(cfg.es.optimizer, ("clipup", "adam", "sgd"), "es.optimizer")
    for key in ("steps", "tasks_per_step"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be ≥ 1, got {getattr(cfg, key)}")
    if cfg.threads < 0:
        raise ConfigError(f"threads must be ≥ 0 (0: $OMP_NUM_THREADS, else 1), got {cfg.threads}")
    if cfg.es.population_size < 2:
        raise ConfigError(f"es.population_size must be ≥ 2, got {cfg.es.population_size}")
    if cfg.rule.l1 < 0:
        raise ConfigError(f"rule.l1 must be ≥ 0, got {cfg.rule.l1}")
    _check_objective(cfg)
    if cfg.es.separable and cfg.es.algorithm != "cmaes":
        raise ConfigError(f"es.separable=true is sep-CMA-ES and needs es.algorithm=cmaes (got {cfg.es.algorithm}); "
                          "snes is separable by construction")
    try:
        SECTION_CHECKS[cfg.family](cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    _check_speed_options(cfg)
    return cfg


def _check_objective(cfg: ExperimentConfig) -> None:
    """The task reduction's choice and parameters; the Adam loop keeps the mean loss, which has a gradient."""
    obj = cfg.objective
    _choice(obj.reduce, OBJECTIVES, "objective.reduce")
    if not 0 < obj.cvar_fraction <= 1:
        raise ConfigError(f"objective.cvar_fraction must lie in (0, 1], got {obj.cvar_fraction}")
    if obj.std_weight < 0:
        raise ConfigError(f"objective.std_weight must be ≥ 0, got {obj.std_weight}")
    if cfg.outer == "adam" and obj.reduce != "mean":
        raise ConfigError(f"objective.reduce={obj.reduce} is for outer=es: the Adam loop follows the gradient of "
                          "the mean task loss (the query error has none, being piecewise constant, and the paper's "
                          "loop is defined on the mean); use outer=es, or objective.reduce=mean")


def _check_speed_options(cfg: ExperimentConfig) -> None:
    """es.precision and es.cuda_graph act on the compiled float32 loop only; say so instead of ignoring them."""
    from evoplastic.precision import PRECISIONS

    es = cfg.es
    _choice(es.precision, PRECISIONS, "es.precision")
    if es.precision != "float32" and cfg.dtype != "float32":
        raise ConfigError(f"es.precision={es.precision} lowers float32 arithmetic; with dtype={cfg.dtype} "
                          "set es.precision=float32")
    if es.precision in ("bfloat16", "float16") and not es.compile:
        raise ConfigError(f"es.precision={es.precision} stores weights in 16 bits inside the compiled step; "
                          "set es.compile=true (or es.precision=float32)")
    if es.cuda_graph and not es.compile:
        raise ConfigError("es.cuda_graph=true captures the compiled step; set es.compile=true as well")
    if es.cuda_graph and cfg.device == "cpu":
        raise ConfigError("es.cuda_graph=true needs a GPU; set device=cuda (or auto), or es.cuda_graph=false")
    _choice(es.kernel, ("inductor", "triton"), "es.kernel")
    missing = [fix for fix, ok in (("es.compile=true", es.compile), ("device=cuda (or auto)", cfg.device != "cpu"),
                                   ("dtype=float32", cfg.dtype == "float32")) if not ok]
    if es.kernel == "triton" and missing:
        raise ConfigError(f"es.kernel=triton replaces the compiled step on a GPU, in float32 arithmetic; set "
                          f"{' and '.join(missing)}, or es.kernel=inductor")


__all__ = [
    "AdamConfig", "CONFIG_VERSION", "ConfigError", "ESConfig", "ExperimentConfig", "FAMILIES", "KcapConfig",
    "NetworkConfig", "OBJECTIVES", "ObjectiveConfig", "RuleConfig", "TaskConfig", "config_from_dict",
    "config_to_dict", "load_config", "migrate", "override_config", "parse_override", "validate",
]
