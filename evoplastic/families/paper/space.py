"""What a flat θ means: which terms, shared by all layers or one set per layer, and a plastic-feedback rule.

The outer loops search a flat vector; a RuleSpace says how it divides into the weight rule's
coefficients (per layer or shared) and the feedback rule's; rules.split_theta cuts the tensors.
The shared rule of the paper is the special case: one block, repeated over the layers.
Layout of θ: the weight terms (layer-major when per layer), then the feedback terms (likewise).
Torch-free, so that the config schema can check lengths without loading the numeric stack.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from evoplastic.families.paper.terms import (
    FEEDBACK_FORMULAS,
    FEEDBACK_SCALE,
    FEEDBACK_TERMS,
    N_TERMS,
    VOCAB_FORMULAS,
    VOCAB_SCALE,
    default_theta,
    resolve_feedback_terms,
    resolve_terms,
)


@dataclass(frozen=True)
class RuleSpace:
    """The searched coefficients of the paper family's rule and how they map onto layers."""

    terms: tuple[int, ...]
    """Weight-rule terms (0-9 the paper's, 10+ generated), sorted."""
    n_layers: int
    """Plastic weight layers L of the network."""
    per_layer: bool = False
    """One coefficient per term and layer (θ ∈ R^{L×R}) instead of one shared by every layer."""
    feedback_terms: tuple[int, ...] = ()
    """Terms of the plastic-feedback rule (indices into FEEDBACK_TERMS); empty: B (or D) stays fixed."""
    plugin_terms: tuple[str, ...] = ()
    """Registered plug-in terms (evoplastic.register_term), one shared coefficient each, last in θ."""

    @classmethod
    def from_config(cls, cfg: Any) -> RuleSpace:
        """The space of an experiment config (rule.terms, rule.per_layer, rule.feedback_terms,
        rule.plugin_terms, network.dims); unknown plug-in terms raise a ValueError naming them."""
        plugins = tuple(getattr(cfg.rule, "plugin_terms", ()))
        for name in plugins:
            plugin_term(name)
        return cls(resolve_terms(cfg.rule.terms), len(cfg.network.dims) - 1, cfg.rule.per_layer,
                   resolve_feedback_terms(cfg.rule.feedback_terms), plugins)

    def base(self) -> RuleSpace:
        """The space without its plug-in terms: what the built-in rule machinery reads."""
        return replace(self, plugin_terms=())

    @property
    def blocks(self) -> int:
        """Copies of each term's coefficient: L per layer, else 1."""
        return self.n_layers if self.per_layer else 1

    @property
    def fusable(self) -> bool:
        """Whether the fused compiled step covers it: the paper's terms with fixed feedback, shared or per layer."""
        return not self.feedback_terms and not self.plugin_terms and max(self.terms) < N_TERMS

    @property
    def n_weight(self) -> int:
        return self.blocks * len(self.terms)

    @property
    def size(self) -> int:
        """Coordinates of θ."""
        return self.blocks * (len(self.terms) + len(self.feedback_terms)) + len(self.plugin_terms)

    def _suffix(self, block: int, matrix: str) -> str:
        return f"@{matrix}{block + 1}" if self.per_layer else ""

    def labels(self) -> tuple[str, ...]:
        """θ_r (θ_r@W2 per layer), then φ_name (φ_name@B2) for the feedback terms."""
        weight = [f"θ_{t}{self._suffix(b, 'W')}" for b in range(self.blocks) for t in self.terms]
        feedback = [f"φ_{FEEDBACK_TERMS[f]}{self._suffix(b, 'B')}" for b in range(self.blocks)
                    for f in self.feedback_terms]
        return tuple(weight + feedback + [f"θ_{name}" for name in self.plugin_terms])

    def formulas(self) -> tuple[str, ...]:
        weight = [VOCAB_FORMULAS[t] for _ in range(self.blocks) for t in self.terms]
        return tuple(weight + [FEEDBACK_FORMULAS[f] for _ in range(self.blocks) for f in self.feedback_terms]
                     + [plugin_term(name).formula for name in self.plugin_terms])

    def scales(self, term_scale: tuple[float, ...] = ()) -> tuple[float, ...]:
        """ES units per coordinate: es.term_scale (10 values: the paper's terms; N_VOCAB: all) over the defaults."""
        table = tuple(term_scale) + VOCAB_SCALE[len(term_scale):]
        weight = [table[t] for _ in range(self.blocks) for t in self.terms]
        return tuple(weight + [FEEDBACK_SCALE[f] for _ in range(self.blocks) for f in self.feedback_terms]
                     + [plugin_term(name).scale for name in self.plugin_terms])

    def initial(self, theta_init: tuple[float, ...] = ()) -> tuple[float, ...]:
        """Start θ: theta_init as given (size values), or one block broadcast to every layer, else the paper's
        start (θ_0 = 1e-3) and zero feedback terms."""
        one_block = len(self.terms) + len(self.feedback_terms)
        if len(theta_init) == self.size:
            return tuple(theta_init)
        if theta_init and len(theta_init) != one_block:
            raise ValueError(self.length_error(len(theta_init), "rule.theta_init"))
        block = tuple(theta_init) or default_theta(self.terms) + (0.0,) * len(self.feedback_terms)
        weight, feedback = block[:len(self.terms)], block[len(self.terms):]
        return weight * self.blocks + feedback * self.blocks + (0.0,) * len(self.plugin_terms)

    def length_error(self, got: int, what: str) -> str:
        per = f" per layer × {self.n_layers} layers" if self.per_layer else ""
        fb = f" + {len(self.feedback_terms)} feedback terms" if self.feedback_terms else ""
        fb += f" + {len(self.plugin_terms)} plug-in terms" if self.plugin_terms else ""
        one = len(self.terms) + len(self.feedback_terms)
        alt = f" (or {one}, one block broadcast to every layer)" if self.per_layer else ""
        return (f"{what} has {got} values but the rule searches {self.size}: {len(self.terms)} terms "
                f"{list(self.terms)}{fb}{per}{alt}")

    def check_width(self, width: int) -> None:
        if width != self.size:
            raise ValueError(f"theta must be (N, {self.size}) for this rule: " + self.length_error(width, "theta"))

    def ablations(self) -> list[tuple[str, tuple[int, ...]]]:
        """(label, coordinates zeroed) per term (over every layer) and, where there are several, per layer
        and for the whole feedback rule: what evaluate --ablate drops one at a time."""
        labels = self.labels()
        groups: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            groups.setdefault(label.split("@")[0], []).append(i)
        out = [(f"without {name}", tuple(idx)) for name, idx in groups.items()]
        if self.per_layer:
            for b in range(self.blocks):
                idx = [i for i, label in enumerate(labels) if label.endswith(f"@W{b + 1}")]
                out.append((f"W{b + 1} fixed", tuple(idx)))
        if self.feedback_terms and len(self.feedback_terms) > 1:
            out.append(("feedback fixed", tuple(range(self.n_weight, self.size))))
        return out

    def describe(self) -> dict[str, Any]:
        """What theta.json says about the layout of θ beyond its terms (nothing for one shared rule)."""
        if not self.per_layer and not self.feedback_terms and not self.plugin_terms:
            return {}
        return {"per_layer": self.per_layer, "feedback_terms": [FEEDBACK_TERMS[f] for f in self.feedback_terms],
                "plugin_terms": list(self.plugin_terms), "labels": list(self.labels())}


def plugin_term(name: str) -> Any:
    """The registered plug-in term called name (a TermPlugin); a ValueError naming it when unknown."""
    from evoplastic.plugins import TERMS

    return TERMS.get(name)


def as_space(rule: RuleSpace | tuple[int, ...], n_layers: int) -> RuleSpace:
    """A RuleSpace as given, or the shared rule of these terms (the paper's layout) for a terms tuple."""
    return rule if isinstance(rule, RuleSpace) else RuleSpace(tuple(rule), n_layers)
