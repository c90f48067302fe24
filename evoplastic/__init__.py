"""evoplastic: meta-learn synaptic plasticity rules with evolution strategies or Adam."""

__version__ = "0.1.0"

from evoplastic.config import ExperimentConfig, load_config  # noqa: E402
from evoplastic.inner import EpisodeResult, run_episode  # noqa: E402
from evoplastic.rules import NAMED_RULES, TERM_FORMULAS, resolve_terms  # noqa: E402

__all__ = [
    "EpisodeResult", "ExperimentConfig", "NAMED_RULES", "TERM_FORMULAS", "load_config", "resolve_terms",
    "run_episode",
]
