"""The configured outer loop: ES or Adam over a family's θ space (imports evotorch, so only when training)."""

from __future__ import annotations

from evoplastic.config import ExperimentConfig
from evoplastic.core.family import ThetaSpace
from evoplastic.outer.adam import AdamLoop
from evoplastic.outer.base import OuterLoop
from evoplastic.outer.es import EvolutionLoop

OUTER_LOOPS = {"es": EvolutionLoop, "adam": AdamLoop}
"""The config's ``outer`` value -> the loop class (each takes the config and the θ space)."""


def make_outer(cfg: ExperimentConfig, space: ThetaSpace) -> OuterLoop:
    """The configured outer loop over the family's θ space, starting from its initial θ."""
    return OUTER_LOOPS[cfg.outer](cfg, space)
