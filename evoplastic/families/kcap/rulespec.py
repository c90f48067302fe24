"""Coefficient rules written out by hand, such as ``kcap:hebb=0.01`` or ``kcap:in.hebb=0.01,rec.pre=-0.02``.

They let the control rows (the untuned start, θ = 0, any hand-made rule) be scored beside learned
ones without a training run. Names are pool terms (config.POOL_TERMS); a prefix ``in.`` or ``rec.``
(or ``M_in.``, ``M_rec.``) sets that matrix's block only and makes the layout one block per matrix.
Coordinates a spec does not name are 0.
"""

from __future__ import annotations

import math
from dataclasses import replace

from evoplastic.families.kcap.config import MATRICES, POOL_TERMS, KcapConfig, validate

PREFIX = "kcap:"
"""What marks a command-line rule argument as a k-cap coefficient rule."""
MATRIX_ALIASES = {"in": "M_in", "rec": "M_rec", "M_in": "M_in", "M_rec": "M_rec"}
"""Matrix prefixes a coefficient may carry, to the matrix they name."""


def is_rule_spec(text: str) -> bool:
    """True when text is a coefficient rule (starts with ``kcap:``) rather than a run directory."""
    return text.startswith(PREFIX)


def _bad(spec: str, problem: str) -> ValueError:
    return ValueError(f"k-cap rule {spec!r}: {problem}. Write it as kcap:NAME=VALUE[,NAME=VALUE...] with NAME "
                      f"one of {', '.join(POOL_TERMS)}, optionally prefixed by in. or rec. "
                      f"(e.g. kcap:hebb=0.01 or kcap:in.hebb=0.01,rec.pre=-0.02)")


def _split_item(spec: str, item: str) -> tuple[str | None, str, float]:
    """'rec.pre=-0.02' -> ('M_rec', 'pre', -0.02); no prefix -> (None, name, value)."""
    key, sep, text = item.partition("=")
    if not sep:
        raise _bad(spec, f"{item!r} has no '='")
    matrix_key, dot, name = key.strip().rpartition(".")
    if dot and matrix_key not in MATRIX_ALIASES:
        raise _bad(spec, f"unknown matrix prefix {matrix_key!r} (use in. or rec.)")
    if name not in POOL_TERMS:
        raise _bad(spec, f"unknown term {name!r}")
    try:
        value = float(text)
    except ValueError:
        raise _bad(spec, f"{text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise _bad(spec, f"{name}={text.strip()} is not finite")
    return (MATRIX_ALIASES[matrix_key] if dot else None), name, value


def parse_items(spec: str) -> list[tuple[str | None, str, float]]:
    """The (matrix or None, term, value) items of a spec, checked; ValueError names the problem."""
    if not is_rule_spec(spec):
        raise _bad(spec, f"it must start with {PREFIX!r}")
    body = spec[len(PREFIX):].strip()
    if not body:
        raise _bad(spec, "no coefficients (write kcap:hebb=0 for θ = 0)")
    items = [_split_item(spec, item) for item in body.split(",") if item.strip()]
    seen = set()
    for matrix, name, _ in items:
        for m in ([matrix] if matrix else MATRICES):
            if (m, name) in seen:
                raise _bad(spec, f"{name} is set twice for {m}")
            seen.add((m, name))
    return items


def _layout(items: list[tuple[str | None, str, float]], base: KcapConfig, spec: str) -> KcapConfig:
    """base's θ layout, widened to a pool holding every named term, one block per matrix if any is prefixed."""
    terms = tuple(base.terms) if base.rule == "pool" else ()
    terms += tuple(dict.fromkeys(name for _, name, _ in items if name not in terms))
    per_matrix = base.per_matrix or any(matrix for matrix, _, _ in items)
    for matrix, _, _ in items:
        if matrix and matrix not in base.plastic:
            raise _bad(spec, f"{matrix} is not plastic here (kcap.plastic={list(base.plastic)})")
    return validate(replace(base, rule="pool", terms=terms, per_matrix=per_matrix))


def parse_rule(spec: str, base: KcapConfig | None = None) -> tuple[str, tuple[float, ...], KcapConfig]:
    """(label, θ, config) of a coefficient rule, θ laid out as the family lays out config's pool.

    The config is base (default KcapConfig()) with rule=pool and any named term missing from
    base.terms appended; an unprefixed name sets that term in every block.
    """
    base = base or KcapConfig()
    items = parse_items(spec)
    cfg = _layout(items, base, spec)
    blocks = list(cfg.plastic) if cfg.per_matrix else [None]
    size = len(cfg.terms)
    theta = [0.0] * (size * len(blocks))
    for matrix, name, value in items:
        for b, block in enumerate(blocks):
            if matrix is None or block == matrix:
                theta[b * size + cfg.terms.index(name)] = value
    return spec.strip(), tuple(theta), cfg
