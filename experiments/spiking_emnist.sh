#!/usr/bin/env bash
# EMNIST split at a small budget (one seed): meta-train on classes 0-36, score on the held-out 37-46
# (100 fresh tasks beside e-prop fa/bp/dfa and the rate network). One core, about 30 minutes here.
set -euo pipefail
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
LOGS=${LOGS:-runs/spiking/logs}
mkdir -p "$LOGS"
PY=${PY:-python}
$PY experiments/spiking_run.py configs/spiking/emnist_split.yaml seed=0 name=emnist_es_seed0 --runs runs/spiking \
  --option classes=37-46 2>&1 | tee "$LOGS/emnist_es_seed0.log"
