"""Experiment configuration: one tree of frozen dataclasses is both schema and defaults.

YAML files hold only overrides; ``key.sub=value`` overrides go through the same loader.
Unknown keys and wrong types are errors that name the key and the accepted values.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from evoplastic.core.registry import Registry
from evoplastic.errors import ConfigError
from evoplastic.yamlfile import load_yaml

CONFIG_VERSION = 4
"""4: the paper family's es.kernel names the compiled step on every device (auto by default); 3: each family
owns its keys (another family's are errors); 2: the family key and its sections; 1 (no config_version): the
feed-forward network's sections only."""
DEFAULT_FAMILY = "paper"
"""The family of a config that names none (and of every version-1 config)."""


@dataclass(frozen=True)
class FamilySchema:
    """What the loader needs of a family, torch-free: its experiment config class and its checks."""

    name: str
    config_class: type
    """A frozen dataclass subclassing ExperimentConfig with the family's sections and shared-section extensions."""
    validate: Callable[[Any], None]
    """Raises ValueError naming the key and the fix for a bad value of the family's own keys."""
    implementation: Any
    """The Family object (core.family.Family), or the 'module:attr' that holds it (imported when needed)."""


def _schema(name: str, obj: Any) -> FamilySchema:
    """A registered family as its schema: a FamilySchema, or a Family object carrying config_class (and validate)."""
    if isinstance(obj, FamilySchema):
        return obj
    if not dataclasses.is_dataclass(getattr(obj, "config_class", None)):
        raise ConfigError(f"family {name!r} needs a config_class (a frozen dataclass subclassing ExperimentConfig)")
    return FamilySchema(name, obj.config_class, getattr(obj, "validate_config", lambda cfg: None), obj)


FAMILIES = Registry("family", builtins="evoplastic.families:BUILTIN_FAMILIES", wrap=_schema)
"""Network families by name (the config's ``family`` key); evoplastic.register_family adds one."""


@dataclass(frozen=True)
class RuleConfig:
    """The rule's start and the L1 weight; a family extends it with what its rule is made of."""

    theta_init: tuple[float, ...] = ()
    """Initial θ in the family's units, one value per searched coordinate; empty: the family's start."""
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
    """Members evaluated per inner-loop call; 0: the family's choice (e.g. as many as fit in memory)."""


@dataclass(frozen=True)
class AdamConfig:
    """The paper's gradient outer loop."""

    lr: float = 1e-3


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
    """The keys every family shares; a family's config class subclasses it with its own sections.

    Saved resolved into every run directory.
    """

    name: str = "experiment"
    seed: int = 0
    family: str = DEFAULT_FAMILY
    """Network family: paper (feed-forward few-shot image learner, sections network/task), kcap
    (unsupervised k-cap RNN, section kcap) or a registered plug-in. rule, es, adam and the rest are shared."""
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
    final_baselines: bool = False
    """The command line also prints the final rule beside the family's baselines on final_eval_tasks fresh
    tasks (evoplastic evaluate RUN does the same at any time)."""
    device: str = "cpu"
    """cpu, cuda, cuda:N or auto."""
    dtype: str = "float32"
    threads: int = 0
    """torch intra-op threads per process (per MPI rank); 0: $OMP_NUM_THREADS if set, else 1 (measured fastest)."""
    rule: RuleConfig = field(default_factory=RuleConfig)
    es: ESConfig = field(default_factory=ESConfig)
    adam: AdamConfig = field(default_factory=AdamConfig)
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
        raise ConfigError(_unknown_keys([prefix + k for k in unknown], prefix, known))
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in values.items()}
    return cls(**kwargs)


def _unknown_keys(keys: list[str], prefix: str, known: set[str]) -> str:
    """The error for keys a config class lacks: the family they belong to, if a registered one has them."""
    owners = {key: _owner(key) for key in keys}
    foreign = {key: owner for key, owner in owners.items() if owner}
    if foreign:
        said = "; ".join(f"{key} belongs to family {owner}" for key, owner in foreign.items())
        return (f"{said}, not to the family this config names: set family={next(iter(foreign.values()))} or drop "
                f"{'it' if len(foreign) == 1 else 'them'}")
    return (f"unknown config key(s) {', '.join(keys)}; known keys under '{prefix or 'top level'}': "
            f"{', '.join(sorted(known))}")


def _owner(dotted: str) -> str:
    """The registered family whose config class has the dotted key ('' if none)."""
    for name in FAMILIES.names():
        cls: Any = FAMILIES.get(name).config_class
        for part in dotted.split("."):
            match = {f.name: f for f in fields(cls)}.get(part) if dataclasses.is_dataclass(cls) else None
            if match is None:
                break
            cls = typing.get_type_hints(cls).get(part)
        else:
            return name
    return ""


def family_schema(name: str) -> FamilySchema:
    """The registered family called name, as a ConfigError naming the choices when there is none."""
    try:
        return FAMILIES.get(name)
    except ConfigError as err:
        raise ConfigError(f"family: {err}") from None


def _build_experiment(values: dict) -> ExperimentConfig:
    """The family's config class built from values (family defaults to DEFAULT_FAMILY), then validated."""
    name = values.get("family", DEFAULT_FAMILY)
    if not isinstance(name, str):
        raise ConfigError(f"'family' must be a family name such as {DEFAULT_FAMILY}, got {name!r}")
    return validate(_build(family_schema(name).config_class, values))


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
    return config_from_values(values, overrides)


def config_from_values(values: dict, overrides: typing.Sequence[str] = ()) -> ExperimentConfig:
    """A config from a (partial) mapping of keys plus ``key=value`` overrides, validated."""
    values = dict(values)
    version = values.get("config_version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise ConfigError(f"config_version {version!r} in a new config: this evoplastic writes version "
                          f"{CONFIG_VERSION}; drop the key (saved runs are migrated when they are opened)")
    for text in overrides:
        values = _merge(values, parse_override(text))
    return _build_experiment(values)


def override_config(cfg: ExperimentConfig, overrides: typing.Sequence[str]) -> ExperimentConfig:
    """Apply ``key=value`` overrides to an existing config (e.g. one saved in a run)."""
    values = config_to_dict(cfg)
    for text in overrides:
        values = _merge(values, parse_override(text))
    return _build_experiment(values)


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
    """A saved config's values brought to CONFIG_VERSION.

    Version 1 predates families (it is the feed-forward network's); versions 1-2 saved every family's
    sections with their defaults, so the keys the config's own family lacks are dropped.
    """
    version = values.get("config_version", 1)
    if not isinstance(version, int) or version > CONFIG_VERSION:
        raise ConfigError(f"config_version {version!r} is newer than this evoplastic understands "
                          f"({CONFIG_VERSION}); upgrade evoplastic to read this run")
    values = dict(values)
    if version == 1:
        values["family"] = values.get("family", DEFAULT_FAMILY)
    if version < 3:
        values = _keep_known(values, family_schema(values.get("family", DEFAULT_FAMILY)).config_class)
    if version < 4:
        values = _kernel_auto(values)
    values["config_version"] = CONFIG_VERSION
    return values


def _kernel_auto(values: dict) -> dict:
    """Before version 4 the paper family's es.kernel chose the CUDA step only (CPU ran its own single pass):
    a saved 'inductor', the old default, is 'auto' now, which runs what it ran."""
    es = values.get("es")
    if values.get("family", DEFAULT_FAMILY) == "paper" and isinstance(es, dict) and es.get("kernel") == "inductor":
        values = {**values, "es": {**es, "kernel": "auto"}}
    return values


def _keep_known(values: dict, cls: type) -> dict:
    """values without the keys dataclass cls (recursively) does not have."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    return {k: _keep_known(v, hints[k]) if isinstance(v, dict) and dataclasses.is_dataclass(hints[k]) else v
            for k, v in values.items() if k in known}


def config_from_dict(values: dict) -> ExperimentConfig:
    """Rebuild a config saved by :func:`config_to_dict` (by this or an older version)."""
    return _build_experiment(migrate(values))


def _choice(value: str, allowed: typing.Iterable[str], key: str) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"unknown {key} {value!r}; choose one of: {', '.join(allowed)}")


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Check values that the types alone cannot (shared keys, then the family's); return cfg unchanged."""
    _choice(cfg.outer, ("es", "adam"), "outer")
    _choice(cfg.dtype, ("float32", "float64"), "dtype")
    _choice(cfg.es.algorithm, ("cmaes", "pgpe", "snes", "xnes", "cem"), "es.algorithm")
    _choice(cfg.es.optimizer, ("clipup", "adam", "sgd"), "es.optimizer")
    for key in ("steps", "tasks_per_step"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be ≥ 1, got {getattr(cfg, key)}")
    for key in ("eval_tasks", "final_eval_tasks"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be ≥ 1 (the rule is scored on that many fresh tasks), got "
                              f"{getattr(cfg, key)}; set eval_every=0 to skip the evaluations during training")
    if cfg.threads < 0:
        raise ConfigError(f"threads must be ≥ 0 (0: $OMP_NUM_THREADS, else 1), got {cfg.threads}")
    if cfg.es.population_size < 2:
        raise ConfigError(f"es.population_size must be ≥ 2, got {cfg.es.population_size}")
    if cfg.outer == "es" and cfg.es.algorithm == "pgpe" and cfg.es.population_size % 2:
        raise ConfigError(f"es.algorithm=pgpe samples symmetric pairs, so es.population_size must be even "
                          f"(got {cfg.es.population_size}); use {cfg.es.population_size + 1}")
    if cfg.rule.l1 < 0:
        raise ConfigError(f"rule.l1 must be ≥ 0, got {cfg.rule.l1}")
    _check_objective(cfg)
    if cfg.es.separable and cfg.es.algorithm != "cmaes":
        raise ConfigError(f"es.separable=true is sep-CMA-ES and needs es.algorithm=cmaes (got {cfg.es.algorithm}); "
                          "snes is separable by construction")
    try:
        family_schema(cfg.family).validate(cfg)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(str(err)) from None
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


__all__ = [
    "AdamConfig", "CONFIG_VERSION", "ConfigError", "DEFAULT_FAMILY", "ESConfig", "ExperimentConfig", "FAMILIES",
    "FamilySchema", "OBJECTIVES", "ObjectiveConfig", "RuleConfig", "config_from_dict", "config_from_values",
    "config_to_dict", "family_schema", "load_config", "migrate", "override_config", "parse_override", "validate",
]
