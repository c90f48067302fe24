"""Extension points: activations, plasticity terms, datasets and families registered from outside the package.

Register with a decorator (``@evoplastic.register_activation("sign")``), with an entry point of the group
``evoplastic.plugins`` (a module whose import registers), or name the object in a config as 'module:attr'.
A run records the 'module:attr' of each plug-in it used, so that resume, evaluate and plot import it again.
Torch-free: the registered functions bring their own imports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evoplastic.config import FAMILIES
from evoplastic.core.registry import Registry, import_object
from evoplastic.errors import PluginError


def _source(obj: Any) -> str:
    """'module:qualname' of a module-level function or object ('' when it has none, e.g. a lambda)."""
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}:{name}" if module and name and "<" not in name else ""


@dataclass(frozen=True)
class ActivationPlugin:
    """A hidden nonlinearity y = value(z) of the paper family's network, with σ' written through y if known."""

    name: str
    value: Callable[[Any], Any]
    derivative_from_output: Callable[[Any], Any] | None = None
    """σ'(z) as a function of y = σ(z); None: the error pathway passes errors straight through (σ' = 1)
    and the Adam loop refuses the unit (it has no gradient to follow)."""
    source: str = ""
    stochastic: bool = False
    """value is value(z, generator) and draws its randomness from that torch.Generator, which the episode
    seeds from (seed, purpose, step), so runs stay reproducible."""

    @property
    def differentiable(self) -> bool:
        return self.derivative_from_output is not None


@dataclass(frozen=True)
class TermContext:
    """What a plug-in term sees of one layer ℓ at one online step; every tensor has the pair axis N first."""

    pre: Any
    """y_{ℓ-1} (N, n_pre): the layer's input."""
    post: Any
    """y_ℓ (N, n_post): its output."""
    pre_error: Any
    """e_{ℓ-1} (N, n_pre)."""
    post_error: Any
    """e_ℓ (N, n_post)."""
    drive: Any
    """z_ℓ = W_ℓ y_{ℓ-1} (N, n_post)."""
    weight: Any
    """W_ℓ (N, n_post, n_pre), before this step's update (read it, never write it)."""


@dataclass(frozen=True)
class TermPlugin:
    """A paper-family plasticity term T = Σ_k q_k p_kᵀ given by its low-rank factors, and its ES search scale.

    ``factors(ctx: TermContext)`` returns [(q (N, n_post), p (N, n_pre)), …]; the rule adds ΔW = -θ T, the
    paper's sign, so the update stays low rank (no dense matrix per pair).
    """

    name: str
    factors: Callable[[TermContext], list[tuple[Any, Any]]]
    scale: float = 1e-3
    """Paper units per ES search unit (the term's typical coefficient)."""
    formula: str = ""
    source: str = ""


@dataclass(frozen=True)
class DatasetPlugin:
    """A named image dataset: ``load(split, data_dir)`` returns (images (n, pixels) in [0, 1], labels (n,))
    as arrays or tensors, or a torch Dataset of (image, label) pairs; validated like npz files."""

    name: str
    load: Callable[..., Any]
    source: str = ""


def _wrap(kind: type, name: str, obj: Any) -> Any:
    if isinstance(obj, kind):
        return obj
    if kind is ActivationPlugin and callable(obj):
        return ActivationPlugin(name, obj, getattr(obj, "derivative_from_output", None), _source(obj))
    if kind is TermPlugin and callable(obj):
        return TermPlugin(name, obj, getattr(obj, "scale", 1e-3), getattr(obj, "formula", name), _source(obj))
    if kind is DatasetPlugin and callable(obj):
        return DatasetPlugin(name, obj, _source(obj))
    raise PluginError(f"{name!r} is a {type(obj).__name__}, not a {kind.__name__} or a function; see "
                      f"docs/extending.md")


ACTIVATIONS = Registry("activation", wrap=lambda name, obj: _wrap(ActivationPlugin, name, obj))
TERMS = Registry("plasticity term", wrap=lambda name, obj: _wrap(TermPlugin, name, obj))
DATASETS = Registry("dataset", wrap=lambda name, obj: _wrap(DatasetPlugin, name, obj))


def register_activation(name: str, derivative_from_output: Callable[[Any], Any] | None = None,
                        stochastic: bool = False, replace: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: register ``value(z) -> y`` (stochastic: ``value(z, generator) -> y``) as activation name
    (network.activation=name).

    derivative_from_output(y) gives σ'(z) through the value; without it ES still runs the unit, with errors
    passed straight through, and the Adam loop refuses it with the reason.
    """
    def decorate(value: Callable) -> Callable:
        plugin = ActivationPlugin(name, value, derivative_from_output, _source(value), stochastic)
        ACTIVATIONS.register(name, plugin, replace)
        return value
    return decorate


def register_term(name: str, scale: float = 1e-3, formula: str = "",
                  replace: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: register ``factors(ctx) -> [(q, p), …]`` as a paper-family term (rule.plugin_terms=[name]).

    Plug-in terms run on the plain batched loop (ES and Adam); es.compile=true refuses them.
    """
    def decorate(factors: Callable) -> Callable:
        TERMS.register(name, TermPlugin(name, factors, scale, formula or name, _source(factors)), replace)
        return factors
    return decorate


def register_dataset(name: str, replace: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: register ``load(split, data_dir)`` as dataset name (task.dataset=name)."""
    def decorate(load: Callable) -> Callable:
        DATASETS.register(name, DatasetPlugin(name, load, _source(load)), replace)
        return load
    return decorate


def register_family(family: Any, replace: bool = False) -> Any:
    """Register a Family object (with ``name``, ``config_class`` and optionally ``validate_config``) or a
    FamilySchema; configs then take ``family: <name>``. Returns family, so it also works as a decorator."""
    name = getattr(family, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError("a family needs a non-empty string attribute 'name'")
    FAMILIES.register(name, family, replace)
    return family


def _strings(values: Any) -> list[str]:
    """Every string in a nested config dict, comma-separated parts included."""
    if isinstance(values, dict):
        return [s for v in values.values() for s in _strings(v)]
    if isinstance(values, (list, tuple)):
        return [s for v in values for s in _strings(v)]
    return [part.strip() for part in values.split(",")] if isinstance(values, str) else []


def plugins_used(cfg: Any) -> dict[str, str]:
    """'kind:name' -> 'module:attr' of each registered plug-in the config names (recorded in meta.json)."""
    from evoplastic.config import config_to_dict

    used = {}
    words = set(_strings(config_to_dict(cfg)))
    for registry in (ACTIVATIONS, TERMS, DATASETS, FAMILIES):
        for name, entry in registry.entries.items():
            source = getattr(entry, "source", "") or _source(getattr(entry, "implementation", None))
            if name in words and source:
                used[f"{registry.kind}:{name}"] = source
    return used


def import_recorded(recorded: dict[str, str]) -> None:
    """Import the modules of recorded plug-ins not registered in this process, so their decorators run again;
    a PluginError naming the plug-in and its module when one is gone."""
    registries = {r.kind: r for r in (ACTIVATIONS, TERMS, DATASETS, FAMILIES)}
    for key, source in recorded.items():
        kind, _, name = key.partition(":")
        registry = registries.get(kind)
        if registry is None or name in registry.entries or source.startswith("__main__:"):
            continue
        try:
            obj = import_object(source)
        except PluginError as err:
            raise PluginError(f"this run used the {kind} plug-in {name!r} from {source}, which is gone: "
                              f"{err}") from None
        if name not in registry.entries:
            registry.register(name, obj)
