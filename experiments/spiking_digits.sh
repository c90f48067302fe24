#!/usr/bin/env bash
# Digits-scale comparisons of the spiking family (offline data, one core): ES at the quickstart budget over
# three seeds, ES and Adam (surrogate gradient) at one equal budget of inner episodes, ES on Bernoulli input.
# Every rule is scored on the same 100 fresh tasks (evaluation seed 1) beside e-prop fa/bp/dfa and the
# rate network. Writes runs under runs/spiking and a log per run under $LOGS.
set -euo pipefail
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
LOGS=${LOGS:-runs/spiking/logs}
mkdir -p "$LOGS"
PY=${PY:-python}
run() { local name=$1; shift; $PY experiments/spiking_run.py configs/spiking/quickstart.yaml name="$name" "$@" \
          --runs runs/spiking 2>&1 | tee "$LOGS/$name.log"; }
for seed in 0 1 2; do run "es_seed$seed" seed=$seed; done
# equal budget: 80 inner episodes each (ES: 10 generations x 8 members x 1 task; Adam: 40 steps x 2 tasks)
for seed in 0 1 2; do
  run "es_small_seed$seed" seed=$seed steps=10 es.population_size=8 tasks_per_step=1 eval_every=0
  run "adam_seed$seed" seed=$seed outer=adam steps=40 adam.lr=0.1 eval_every=0
done
run es_bernoulli_seed0 seed=0 spiking.input=bernoulli --option input=bernoulli
# Bernoulli input at the equal budget: where the surrogate gradient is noisiest
for seed in 0 1 2; do
  run "es_small_bernoulli_seed$seed" seed=$seed spiking.input=bernoulli steps=10 es.population_size=8 \
    tasks_per_step=1 eval_every=0 --option input=bernoulli
  run "adam_bernoulli_seed$seed" seed=$seed spiking.input=bernoulli outer=adam steps=40 adam.lr=0.1 eval_every=0 \
    --option input=bernoulli
done
