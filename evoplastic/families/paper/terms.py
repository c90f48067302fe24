"""The rule vocabulary: the paper's ten terms, a generated pool beyond them, and the plastic-feedback terms.

Terms 0-9 are the paper's (Eqs. 14-23). Terms 10+ are generated: every outer product of a
post-synaptic vector in {y_ℓ, e_ℓ, 1} and a pre-synaptic one in {y_{ℓ-1}, e_{ℓ-1}, 1} (but 1 1ᵀ),
times a scalar modulator in {1, 1ᵀy_ℓ, y_ℓᵀW_ℓe_{ℓ-1}, e_ℓᵀW_ℓy_{ℓ-1}}, less the eight the paper
already has: L1 then selects among them. Torch-free, so that the config schema can check
rule.terms without loading the numeric stack.
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

POST_VECTORS = ("y_l", "e_l", "1")
"""Post-synaptic factors q of a generated term m·q pᵀ."""
PRE_VECTORS = ("y_{l-1}", "e_{l-1}", "1")
"""Pre-synaptic factors p of a generated term."""
MODULATORS = ("", "(1^T y_l) ", "(y_l^T W_l e_{l-1}) ", "(e_l^T W_l y_{l-1}) ")
"""Scalar modulators m of a generated term (1, the summed activity, and the two products of T6-T8)."""
MODULATOR_SCALE = (1.0, 1e-2, 1e-1, 1e-1)
"""Search-scale factor per modulator: Σy_ℓ is tens, the W products are O(1)-O(10)."""
PRODUCT_SCALE = {(0, 0): 1e-3, (0, 1): 1e-3, (0, 2): 1e-3, (1, 0): 1e-2, (1, 1): 1e-2, (1, 2): 1e-2,
                 (2, 0): 1e-3, (2, 1): 1e-3}
"""Search scale per (post, pre) product; the paper's: e_l y_{l-1}ᵀ, e_l e_{l-1}ᵀ 1e-2, y_l e_{l-1}ᵀ, 1 e_{l-1}ᵀ 1e-3."""
PAPER_PRODUCTS = {0: (0, 1, 0), 1: (0, 0, 1), 2: (0, 1, 1), 4: (0, 2, 1), 5: (1, 1, 0), 6: (2, 0, 1),
                  7: (2, 1, 0), 8: (3, 0, 1)}
"""The paper's terms that are generated products: term -> (modulator, post, pre). T3 (decay) and T9 (Oja) are not."""
GENERATED_TERMS = tuple((m, q, p) for m in range(len(MODULATORS)) for q in range(3) for p in range(3)
                        if (q, p) != (2, 2) and (m, q, p) not in PAPER_PRODUCTS.values())
"""(modulator, post, pre) of terms N_TERMS, N_TERMS + 1, …: the 24 products the paper's pool lacks."""
N_VOCAB = N_TERMS + len(GENERATED_TERMS)
"""Terms a rule may search: the paper's ten and the generated ones."""

NAMED_RULES = {
    "fa": (0,),
    "bp": (0,),
    "bio": (0, 2, 9),
    "ehebb": (0, 2),
    "oja": (0, 9),
    "pool": tuple(range(N_TERMS)),
    "generated": tuple(range(N_VOCAB)),
}
"""Rule sets of the paper by name; ``fa`` and ``bp`` differ only in the feedback mode."""

DEFAULT_TERM_SCALE = (1e-2, 1e-3, 1e-2, 1e-4, 1e-3, 1e-4, 1e-3, 1e-3, 1e-3, 1e-2)
"""Paper units per ES search unit for each term, so that O(1) steps are sensible.

T5 carries Σy_ℓ (tens), T6-T8 carry scalar products with W; their θ are much smaller.
"""

GENERATED_FORMULAS = tuple(f"{MODULATORS[m]}{POST_VECTORS[q]} {PRE_VECTORS[p]}^T" for m, q, p in GENERATED_TERMS)
VOCAB_FORMULAS = TERM_FORMULAS + GENERATED_FORMULAS
"""Formula of every term a rule may search, by index."""
VOCAB_SCALE = DEFAULT_TERM_SCALE + tuple(MODULATOR_SCALE[m] * PRODUCT_SCALE[q, p] for m, q, p in GENERATED_TERMS)
"""Default search scale of every term, by index."""

FEEDBACK_TERMS = ("hebb", "ee", "decay", "oja")
"""Terms of the plastic-feedback rule ΔB_ℓ = -Σ φ_r F_r, the feedback analogues of T0, T2, T3 and T9."""
FEEDBACK_FORMULAS = ("e_post y_{l-1}^T", "e_post e_{l-1}^T", "B_l", "y_post y_{l-1}^T - y_post y_post^T B_l")
"""post is layer ℓ for fa's B_ℓ and the output L for dfa's D_ℓ; φ_hebb = θ_0 with φ_decay makes B follow W's
updates (Kolen-Pollack)."""
FEEDBACK_SCALE = (1e-2, 1e-2, 1e-4, 1e-2)
"""Default search scale of each feedback term."""
NAMED_FEEDBACK = {"none": (), "kp": (0, 2), "all": (0, 1, 2, 3)}
"""Feedback rules by name: none (fixed B), kp (Kolen-Pollack's hebb + decay), all four terms."""


def resolve_feedback_terms(spec: str) -> tuple[int, ...]:
    """'', a named feedback rule or names/indices such as 'hebb,decay' -> sorted unique indices."""
    text = spec.strip().lower()
    if not text:
        return ()
    if text in NAMED_FEEDBACK:
        return NAMED_FEEDBACK[text]
    out = set()
    for part in text.replace(",", " ").split():
        if part in FEEDBACK_TERMS:
            out.add(FEEDBACK_TERMS.index(part))
        elif part.isdigit() and int(part) < len(FEEDBACK_TERMS):
            out.add(int(part))
        else:
            raise ValueError(f"unknown feedback term {part!r}; use {', '.join(NAMED_FEEDBACK)} or terms "
                             f"{', '.join(FEEDBACK_TERMS)} (or their indices 0-{len(FEEDBACK_TERMS) - 1})")
    return tuple(sorted(out))


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
                f"or term indices 0-{N_VOCAB - 1} such as '0,2,9' (10+ are generated terms)"
            ) from None
    terms = tuple(sorted(set(int(t) for t in spec)))
    if not terms or any(t < 0 or t >= N_VOCAB for t in terms):
        raise ValueError(f"rule terms must be a non-empty subset of 0..{N_VOCAB - 1} (0-9 the paper's, 10+ "
                         f"generated), got {list(spec)}")
    return terms


def default_theta(terms: tuple[int, ...]) -> tuple[float, ...]:
    """The paper's start: θ_0 = 1e-3, every other term 0."""
    return tuple(1e-3 if t == 0 else 0.0 for t in terms)


def vocabulary_table() -> str:
    """Every term a rule may search (index, formula, default search scale) and the feedback terms, as text."""
    lines = ["Weight-rule terms (rule.terms; ΔW_ℓ = -Σ θ_r T_r), 0-9 the paper's, 10+ generated:",
             f"{'index':>5}  {'default scale':>13}  formula"]
    lines += [f"{i:>5}  {VOCAB_SCALE[i]:>13.0e}  {VOCAB_FORMULAS[i]}" for i in range(N_VOCAB)]
    lines += ["", "Named rules: " + ", ".join(f"{name} = {list(terms) if len(terms) < 12 else f'0-{terms[-1]}'}"
                                            for name, terms in NAMED_RULES.items())]
    lines += ["", "Plastic-feedback terms (rule.feedback_terms; ΔB_ℓ = -Σ φ_r F_r; post = ℓ for fa, L for dfa):"]
    lines += [f"{name:>5}  {FEEDBACK_SCALE[i]:>13.0e}  {FEEDBACK_FORMULAS[i]}" for i, name in enumerate(FEEDBACK_TERMS)]
    lines += ["Named feedback rules: " + ", ".join(f"{k} = {[FEEDBACK_TERMS[i] for i in v]}"
                                               for k, v in NAMED_FEEDBACK.items())]
    return "\n".join(lines)
