"""evoplastic: meta-learn synaptic plasticity rules with evolution strategies or Adam.

Version only: the CLI must start without importing torch. The layout follows the data flow:
``config`` → ``families/<family>`` (tasks, network, rules, batched inner loop, problem) →
``core`` (the problem protocol, fitness reduction) → ``outer`` (ES, Adam) → ``run`` (training
loop, run record, MPI) → ``analysis`` (evaluate, compare, plots); ``bench`` measures speed.
"""

__version__ = "0.1.0"
