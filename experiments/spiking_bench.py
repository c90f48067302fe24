"""The cost of spiking: the spiking family's ``evoplastic bench`` rows beside the paper family's, at one shape.

python experiments/spiking_bench.py [more evoplastic bench options, e.g. --family-members 1,8 --min-seconds 3]
runs ``evoplastic bench --only families --families paper,spiking --family-set paper:rule.terms=bio``: both
families at the paper's EMNIST shape (784-170-130-100-70-47, 5-way tasks of 50 samples per class, 'bio' terms,
fa) through their Problems as one ES generation runs them, each row in a fresh process on CPU, with member-
episodes/s, the episode's peak memory and MiB per member, and one Adam (autograd) episode of each.
"""

from __future__ import annotations

import sys

from evoplastic.bench.suite import main

ARGS = ["--only", "families", "--families", "paper,spiking", "--family-set", "paper:rule.terms=bio"]

if __name__ == "__main__":
    sys.exit(main([*ARGS, *sys.argv[1:]]))
