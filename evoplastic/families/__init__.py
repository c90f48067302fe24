"""Network families: each subpackage is one inner-loop system (its config section, tasks, network,
rules, batched episode and problem). The shared outer loops, run record and analysis reach a
family only through this registry and the protocols of ``evoplastic.core.family``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the schema imports families/<name>/config.py through this package: no torch here
    import torch

    from evoplastic.core.family import Family, ThetaSpace
    from evoplastic.core.fitness import FitnessFunction

FAMILY_MODULES = {"paper": "evoplastic.families.paper.family", "kcap": "evoplastic.families.kcap.family"}
"""Family name (the config's ``family`` key) -> module whose FAMILY implements core.family.Family."""


def get_family(name: str) -> Family:
    """The family called name; its numeric modules are imported only now."""
    if name not in FAMILY_MODULES:
        raise ValueError(f"unknown family {name!r}; choose one of: {', '.join(FAMILY_MODULES)}")
    return importlib.import_module(FAMILY_MODULES[name]).FAMILY


def theta_space(cfg: Any) -> ThetaSpace:
    """The searched θ coordinates of an experiment config, from its family."""
    return get_family(cfg.family).theta_space(cfg)


def build_fitness(cfg: Any, device: torch.device | None = None) -> FitnessFunction:
    """Load the family's data and make the fitness function of an experiment (on device, default the config's)."""
    from evoplastic.core.fitness import FitnessFunction

    return FitnessFunction(get_family(cfg.family).build_problem(cfg, device), cfg)
