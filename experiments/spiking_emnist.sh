#!/usr/bin/env bash
# EMNIST split at a small budget (seeds 0 and 1; SEEDS='0 1 2' for three): meta-train on classes 0-36,
# score on the held-out 37-46 (100 fresh tasks beside e-prop fa/bp/dfa and the rate network).
# One core, 15-40 minutes per seed here.
set -euo pipefail
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
LOGS=${LOGS:-runs/spiking/logs}
mkdir -p "$LOGS"
PY=${PY:-python}
for seed in ${SEEDS:-0 1}; do
  $PY experiments/spiking_run.py configs/spiking/emnist_split.yaml seed=$seed name=emnist_es_seed$seed \
    --runs runs/spiking --option classes=37-46 2>&1 | tee "$LOGS/emnist_es_seed$seed.log"
done
