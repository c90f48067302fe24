"""Network families: each subpackage is one inner-loop system (its config section, tasks, network,
rules, batched episode and problem); the shared outer loops, run record and analysis see only
``evoplastic.core.family``."""
