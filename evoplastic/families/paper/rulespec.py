"""The paper family's rules to evaluate: from a run, a theta.json or NAME:θ,…, with baselines and ablations.

A Rule is coefficients θ plus the config they came with; the config's rule space (shared or per-layer
coefficients, generated terms, plastic feedback) says what each coefficient means. The evaluation
config puts the rule on the requested tasks, with clear errors when its network cannot take them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from evoplastic.config import ConfigError, ExperimentConfig, override_config, validate
from evoplastic.families.paper.config import PaperExperimentConfig, TaskConfig, parse_class_ids
from evoplastic.families.paper.config import PaperRuleConfig as RuleConfig
from evoplastic.families.paper.data import Dataset, load_dataset
from evoplastic.families.paper.rules import NAMED_RULES, resolve_terms
from evoplastic.families.paper.space import RuleSpace

BASELINE_THETA = {"fa": 0.012, "bp": 0.014}
"""Default θ_0 of the fa and bp baselines: what the paper's Adam loop found on EMNIST (5-way,
250 online samples, 300 episodes, softplus; runs adam_fa: θ_0 = 0.0122, adam_bp: 0.0138).
Other activations or datasets may prefer other values: pass --fa-theta/--bp-theta."""

PURPOSE = "evaluate"
"""Random-stream key of evaluation tasks, distinct from training's train/eval/final draws."""

TASK_BLOCK = 10
"""Tasks per draw and inner-loop call; block b's tasks depend only on (seed, b)."""


@dataclass(frozen=True)
class Rule:
    """A rule to evaluate: coefficients θ (paper units, laid out as its space says) and the config it came with."""

    label: str
    theta: tuple[float, ...]
    config: ExperimentConfig
    """Network, default task settings and rule section (terms, per_layer, feedback_terms) of the rule's origin."""

    @property
    def space(self) -> RuleSpace:
        """What each coordinate of θ is: the rule's terms, per layer or shared, and its feedback terms."""
        return RuleSpace.from_config(self.config)

    @property
    def terms(self) -> tuple[int, ...]:
        return self.space.terms


def _with_rule(cfg: ExperimentConfig, rule: RuleConfig, overrides=(), feedback: str | None = None) -> ExperimentConfig:
    """cfg with this rule section (θ not yet set), the overrides and, when given, network.feedback."""
    # outer=es: evaluation needs no meta-gradient, so an Adam run's rule may go to, e.g., a ReLU network
    cfg = replace(cfg, outer="es", rule=rule)
    try:
        cfg = override_config(cfg, overrides)
    except ConfigError as err:
        raise ValueError(str(err)) from None
    return replace(cfg, network=replace(cfg.network, feedback=feedback)) if feedback else cfg


def _check_theta(text: str, space: RuleSpace, theta: list) -> tuple[float, ...]:
    """θ as floats, once its length fits the space and every value is finite."""
    if len(theta) != space.size:
        if not space.per_layer and not space.feedback_terms:
            raise ValueError(f"{text}: {len(theta)} coefficient(s) for {len(space.terms)} term(s) "
                             f"{list(space.terms)}; give one θ per term, in term order")
        hint = (f"; a per-layer rule needs a network of as many layers as it learnt on (network.dims with "
                f"{space.n_layers + 1} widths now)" if space.per_layer else "")
        raise ValueError(f"{text}: {space.length_error(len(theta), 'θ')}{hint}")
    values = tuple(float(v) for v in theta)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{text}: coefficients must be finite, got {list(values)}")
    return values


def _make_rule(label: str, text: str, cfg: ExperimentConfig, theta: list) -> Rule:
    """The Rule of θ under cfg's rule space (θ checked against it and stored as rule.theta_init)."""
    values = _check_theta(text, RuleSpace.from_config(cfg), theta)
    return Rule(label, values, replace(cfg, rule=replace(cfg.rule, theta_init=values)))


RunReader = Callable[[Path], tuple[ExperimentConfig, list[float]]]
"""A run directory -> (its config, its final θ); the caller reads the run record (analysis does)."""


def rule_from_run(label: str, cfg: ExperimentConfig, theta: list[float], overrides=()) -> Rule:
    """A run's final θ under its config, made fit for evaluation (outer=es, overrides applied)."""
    rule = RuleConfig(terms=cfg.rule.terms, per_layer=cfg.rule.per_layer, feedback_terms=cfg.rule.feedback_terms,
                      plugin_terms=cfg.rule.plugin_terms)
    return _make_rule(label, label, _with_rule(cfg, rule, overrides), theta)


def _rule_from_run(path: Path, overrides, read_run: RunReader) -> Rule:
    cfg, theta = read_run(path)
    return rule_from_run(path.name, cfg, theta, overrides)


def names_terms(name: str) -> bool:
    """Whether name is a named rule or term indices (the NAME of NAME:θ,…)."""
    try:
        resolve_terms(name)
    except ValueError:
        return False
    return True


def _rule_from_theta_json(path: Path, overrides, read_run: RunReader) -> Rule:
    """theta.json's terms and θ, its per_layer and feedback_terms when present (absent: one shared rule, fixed
    feedback), on the config of the run it sits in, else the defaults with its activation and feedback."""
    try:
        data = json.loads(path.read_text())
        terms, theta = tuple(int(t) for t in data["terms"]), [float(v) for v in data["theta"]]
        per_layer = bool(data.get("per_layer", False))
        feedback_terms = data.get("feedback_terms", "")
        feedback_terms = feedback_terms if isinstance(feedback_terms, str) else ",".join(map(str, feedback_terms))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError):
        raise ValueError(f"{path} is not a theta.json (a JSON object with 'terms' and 'theta' lists)") from None
    cfg = read_run(path.parent)[0] if (path.parent / "config.yaml").is_file() else PaperExperimentConfig()
    network = replace(cfg.network, activation=data.get("activation", cfg.network.activation),
                      feedback=data.get("feedback", cfg.network.feedback))
    rule = RuleConfig(terms=",".join(map(str, terms)), per_layer=per_layer, feedback_terms=feedback_terms)
    return _make_rule(str(path), str(path), _with_rule(replace(cfg, network=network), rule, overrides), theta)


def _rule_from_spec(text: str, overrides) -> Rule:
    name, sep, values = text.partition(":")
    example = "e.g. bio:0.013,-0.054,-0.0065, fa:0.012 or 0,2,9:0.013,-0.054,-0.0065"
    if not sep:
        raise ValueError(f"RULE {text!r} is not a run directory, a theta.json file or NAME:θ,… ({example})")
    try:
        terms = resolve_terms(name)
    except ValueError as err:
        raise ValueError(f"RULE {text!r}: {err}") from None
    try:
        theta = [float(v) for v in values.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"RULE {text!r}: coefficients must be numbers separated by commas ({example})") from None
    key = name.strip().lower()
    spec = key if key in NAMED_RULES else ",".join(map(str, terms))
    feedback = key if key in ("fa", "bp") else None
    # overrides may make the space per-layer or its feedback plastic (--set rule.per_layer=true): θ is checked after
    cfg = _with_rule(PaperExperimentConfig(name=spec), RuleConfig(terms=spec), overrides, feedback)
    return _make_rule(text, f"RULE {text!r}", cfg, theta)


def parse_rule(text: str, overrides: tuple[str, ...] | list[str] = (), read_run: RunReader | None = None) -> Rule:
    """RULE as a run directory, a theta.json file or NAME:θ,…; overrides are ``key=value`` config edits.

    Named ``fa``/``bp`` rules set the feedback; other named rules take the family's defaults. read_run
    reads a run directory (needed for the first two forms).
    """
    path = Path(text).expanduser()
    if read_run is not None and path.is_dir():
        return _rule_from_run(path, overrides, read_run)
    if read_run is not None and path.is_file():
        return _rule_from_theta_json(path, overrides, read_run)
    return _rule_from_spec(text, overrides)


def baseline_rules(like: Rule, fa_theta: float = BASELINE_THETA["fa"],
                   bp_theta: float = BASELINE_THETA["bp"]) -> list[Rule]:
    """The fa and bp baselines (θ_0 only, shared, fixed feedback) on ``like``'s network (dims, activation)."""
    return [_make_rule(f"{kind} baseline", kind, _with_rule(like.config, RuleConfig(terms=kind), feedback=kind),
                       [theta]) for kind, theta in (("fa", fa_theta), ("bp", bp_theta))]


def ablated_rules(rule: Rule) -> list[Rule]:
    """The rule with one group of coordinates set to zero at a time, as its space lists them: each term
    ('without θ_2', over every layer), each layer's rule ('W3 fixed') and the feedback rule ('feedback fixed').

    A group counts as dropped when zeroing it does not worsen held-out accuracy beyond the
    noise (the paired difference's CI includes zero): ES never lands exactly on zero.
    """
    out = []
    for label, zeroed in rule.space.ablations():
        theta = tuple(0.0 if j in zeroed else v for j, v in enumerate(rule.theta))
        out.append(Rule(label, theta, replace(rule.config, rule=replace(rule.config.rule, theta_init=theta))))
    return out


def parse_classes(text: str) -> tuple[int, ...]:
    """'40-46', '0,2,5' or '0-9,20' -> sorted unique class ids (an --classes option)."""
    return parse_class_ids(text, "--classes")


def format_classes(classes: tuple[int, ...] | list[int]) -> str:
    """Class ids compressed to ranges: (0, 1, 2, 5) -> '0-2,5'."""
    parts, run = [], []
    for c in sorted(classes):
        if run and c != run[-1] + 1:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(c)
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)


def same_dataset(a: str, b: str) -> bool:
    """Whether two dataset names denote the same data (file paths compared resolved)."""
    kind_a, kind_b = a.partition(":")[0], b.partition(":")[0]
    if kind_a in ("npz", "idx") and kind_a == kind_b:
        return Path(a[4:]).expanduser().resolve() == Path(b[4:]).expanduser().resolve()
    return a == b


def held_out_classes(rules: list[Rule], dataset: Dataset) -> tuple[int, ...]:
    """Classes of ``dataset`` that no rule trained on when every rule restricted task.classes on it, else all."""
    present = tuple(torch.unique(dataset.labels).tolist())
    trained: set[int] = set()
    for rule in rules:
        task = rule.config.task
        if not task.classes or not same_dataset(task.dataset, dataset.name):
            return present
        trained |= set(task.classes)
    held = tuple(c for c in present if c not in trained)
    if not held:
        raise ValueError(f"the rules trained on every class of {dataset.name}; choose classes with --classes")
    return held


def load_eval_dataset(rule: Rule, name: str | None = None, split: str | None = None) -> Dataset:
    """The evaluation dataset: ``name`` or the rule's meta-training dataset, read as its run did."""
    task = rule.config.task
    return load_dataset(name or task.dataset, task.data_dir, split or task.split, task.download,
                        task.pixel_scale)


def task_config(rule: Rule, dataset: Dataset, classes: tuple[int, ...], split: str | None = None,
                **sizes: int | bool | None) -> TaskConfig:
    """Evaluation tasks: the rule's task settings on ``dataset``/``classes``, classes without replacement.

    sizes: n_way, k_shot, n_query, relabel; None keeps the rule's.
    """
    task = replace(rule.config.task, dataset=dataset.name, split=split or rule.config.task.split,
                   classes=tuple(classes), class_replacement=False, mixture=(), mixture_weights=(), augment=(),
                   **{k: v for k, v in sizes.items() if v is not None})  # one dataset, even for a mixture's rule;
    # never augmented: a stress level is chosen explicitly (evaluate --transform)
    if task.n_way > len(classes):
        raise ValueError(f"{task.n_way}-way tasks need ≥ {task.n_way} classes but only {len(classes)} are "
                         f"available ({format_classes(classes)}); lower --n-way or widen --classes")
    return task


def evaluation_config(rule: Rule, task: TaskConfig, dataset: Dataset, seed: int, device: str) -> ExperimentConfig:
    """The rule's config with the evaluation tasks; clear errors when its network cannot take them."""
    cfg = replace(rule.config, seed=seed, device=device, outer="es", task=task,
                  rule=replace(rule.config.rule, l1=0.0))
    try:
        cfg = validate(cfg)
    except ConfigError as err:
        raise ValueError(f"{rule.label}: {err}") from None
    dims, pixels = cfg.network.dims, dataset.n_features
    if dims[0] != pixels:
        raise ValueError(
            f"{rule.label}: its network {list(dims)} takes {dims[0]} inputs but {dataset.name} images have "
            f"{pixels} pixels. Evaluate on a dataset with {dims[0]}-pixel images, or on another network "
            f"(θ does not depend on it): --set network.dims=[{','.join(map(str, (pixels, *dims[1:])))}]")
    top = task.n_way - 1 if task.relabel else max(task.classes)
    if top >= dims[-1]:
        raise ValueError(
            f"{rule.label}: class id {top} of {dataset.name} does not fit the network's {dims[-1]} outputs; "
            f"pick classes below {dims[-1]} with --classes, or --relabel to label each task's classes 0..n_way-1")
    return cfg
