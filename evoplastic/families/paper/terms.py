"""The paper's rule vocabulary: its ten terms by index, named rules and per-term search scales.

Torch-free, so that the config schema can check rule.terms without loading the numeric stack.
"""

from __future__ import annotations

N_TERMS = 10

TERM_FORMULAS = (
    "e_l y_{l-1}^T",
    "y_l e_{l-1}^T",
    "e_l e_{l-1}^T",
    "W_l",
    "1 e_{l-1}^T",
    "(1^T y_l) e_l y_{l-1}^T",
    "(y_l^T W_l e_{l-1}) y_l e_{l-1}^T",
    "(y_l^T W_l e_{l-1}) e_l y_{l-1}^T",
    "(e_l^T W_l y_{l-1}) y_l e_{l-1}^T",
    "y_l y_{l-1}^T - y_l y_l^T W_l",
)
"""Human-readable formula of each term T0..T9 (paper Eqs. 14-23)."""

NAMED_RULES = {
    "fa": (0,),
    "bp": (0,),
    "bio": (0, 2, 9),
    "ehebb": (0, 2),
    "oja": (0, 9),
    "pool": tuple(range(N_TERMS)),
}
"""Rule sets of the paper by name; ``fa`` and ``bp`` differ only in the feedback mode."""

DEFAULT_TERM_SCALE = (1e-2, 1e-3, 1e-2, 1e-4, 1e-3, 1e-4, 1e-3, 1e-3, 1e-3, 1e-2)
"""Paper units per ES search unit for each term, so that O(1) steps are sensible.

T5 carries Σy_ℓ (tens), T6-T8 carry scalar products with W; their θ are much smaller.
"""

def resolve_terms(spec: str | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Named rule or comma/space separated term indices -> sorted unique term indices."""
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in NAMED_RULES:
            return NAMED_RULES[text]
        parts = text.replace(",", " ").split()
        try:
            spec = [int(p) for p in parts]
        except ValueError:
            raise ValueError(
                f"unknown rule {spec!r}; use one of {', '.join(NAMED_RULES)} "
                f"or term indices 0-{N_TERMS - 1} such as '0,2,9'"
            ) from None
    terms = tuple(sorted(set(int(t) for t in spec)))
    if not terms or any(t < 0 or t >= N_TERMS for t in terms):
        raise ValueError(f"rule terms must be a non-empty subset of 0..{N_TERMS - 1}, got {list(spec)}")
    return terms


def default_theta(terms: tuple[int, ...]) -> tuple[float, ...]:
    """The paper's start: θ_0 = 1e-3, every other term 0."""
    return tuple(1e-3 if t == 0 else 0.0 for t in terms)
