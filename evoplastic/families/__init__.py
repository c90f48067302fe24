"""Network families: each subpackage is one inner-loop system (its config section, tasks, network,
rules, batched episode, problem and evaluation). The shared outer loops, run record and analysis reach
a family only through the registry (evoplastic.config.FAMILIES) and the protocols of evoplastic.core.family.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from evoplastic.core.family import Family, ThetaSpace
    from evoplastic.core.fitness import FitnessFunction

BUILTIN_FAMILIES = {
    "paper": "evoplastic.families.paper.config:SCHEMA",
    "kcap": "evoplastic.families.kcap.config:SCHEMA",
    "spiking": "evoplastic.families.spiking.config:SCHEMA",
}
"""The families that ship with evoplastic: name -> 'module:attr' of its torch-free FamilySchema. A new
family adds one line here, or registers itself from outside with evoplastic.register_family."""


def get_family(name: str) -> Family:
    """The Family implementation called name; its numeric modules are imported only now."""
    from evoplastic.config import family_schema
    from evoplastic.core.registry import import_object

    implementation = family_schema(name).implementation
    return import_object(implementation) if isinstance(implementation, str) else implementation


def theta_space(cfg: Any) -> ThetaSpace:
    """The searched θ coordinates of an experiment config, from its family."""
    return get_family(cfg.family).theta_space(cfg)


def build_fitness(cfg: Any, device: torch.device | None = None) -> FitnessFunction:
    """Load the family's data and make the fitness function of an experiment (on device, default the config's)."""
    from evoplastic.core.fitness import FitnessFunction

    return FitnessFunction(get_family(cfg.family).build_problem(cfg, device), cfg)
