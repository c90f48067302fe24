"""evoplastic: meta-learn synaptic plasticity rules with evolution strategies or Adam.

``import evoplastic`` stays light: the public names below load on first use (PEP 562), so the command
line starts without torch. The layout follows the data flow: ``config`` → ``families/<family>`` (tasks,
network, rules, batched inner loop, problem, evaluation) → ``core`` (protocols, fitness reduction) →
``outer`` (ES, Adam) → ``run`` (training loop, run record, MPI) → ``analysis`` (compare, plots) → ``api``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "train": "evoplastic.api", "resume": "evoplastic.api", "load_run": "evoplastic.api",
    "evaluate": "evoplastic.api", "compare": "evoplastic.api", "Run": "evoplastic.api",
    "Comparison": "evoplastic.api", "make_config": "evoplastic.api", "plot": "evoplastic.api",
    "Evaluation": "evoplastic.core.evaluation", "Metric": "evoplastic.core.evaluation",
    "RuleToScore": "evoplastic.core.evaluation", "EvaluateSettings": "evoplastic.core.evaluation",
    "ConfigError": "evoplastic.errors", "DataError": "evoplastic.errors", "RunDirError": "evoplastic.errors",
    "PluginError": "evoplastic.errors",
    "register_activation": "evoplastic.plugins", "register_term": "evoplastic.plugins",
    "register_dataset": "evoplastic.plugins", "register_family": "evoplastic.plugins",
    "ExperimentConfig": "evoplastic.config", "FamilySchema": "evoplastic.config",
    "ThetaSpace": "evoplastic.core.family",
    "callbacks": "evoplastic.callbacks",
}
"""Public name -> the module that defines it (imported when the name is first used)."""


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'evoplastic' has no attribute {name!r}")
    module = importlib.import_module(_PUBLIC[name])
    return module if name == "callbacks" else getattr(module, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
