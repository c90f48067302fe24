#!/usr/bin/env bash
# The spiking family's EMNIST grid on one GPU, every lane at once (a lane is one process on the GPU; the
# spiking episode is launch-bound there, so a generation takes about 3.5 s at any population up to 128 and
# three processes share the GPU without slowing each other):
#   es_S    CMA-ES, population 64 x 2 tasks x ES_GENERATIONS generations, seed S, then 100 held-out tasks
#           (classes 37-46) beside e-prop fa/bp/dfa and the rate network, EMNIST digits and Fashion-MNIST;
#   adam_S  Adam through the surrogate gradient, ADAM_TASKS tasks x ADAM_STEPS steps, seed S, held-out tasks;
#   esq     CMA-ES at Adam's budget (population ADAM_TASKS x 1 task x ADAM_STEPS generations), seeds 0-2;
#   bio     on the CPU cores beside them: configs/es/bio.yaml (paper family) with es.compile=false and true,
#           seeds 0-2, one thread each (the compiled CPU step against the eager loop; scored afterwards).
# Run on the GPU machine: . .device/activate && bash experiments/spiking_gpu.sh
# Reproduces the GPU tables of docs/results/spiking/README.md with the defaults.
# $OUT gets logs.tgz (one log per lane, refreshed every 20 s so that a stopped run still returns what it has;
# summary.txt among them) and bio_runs.tgz (the paper-family runs: score them with experiments/compiled_vs_eager.py).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/spiking_gpu_out}; mkdir -p "$OUT"
LOGS=$(mktemp -d); RUNS=$(mktemp -d)
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 EVOPLASTIC_DATA=${EVOPLASTIC_DATA:-$PWD/.device/data}
PY=${PYTHON:-python3} DEVICE=${DEVICE:-cuda} EXTRA=${EXTRA:-} BIO_EXTRA=${BIO_EXTRA:-}  # the last three: a trial on CPU
DEADLINE=${DEADLINE:-3600}  # seconds per lane; the published run used 430 (the transfer scores then came from a CPU)
ES_GENERATIONS=${ES_GENERATIONS:-30} ADAM_TASKS=${ADAM_TASKS:-32} ADAM_STEPS=${ADAM_STEPS:-10}
HELDOUT="--option classes=37-46"
TRANSFER=(--eval "digits:dataset=npz:$EVOPLASTIC_DATA/emnist-digits-test.npz;classes=[]"
          --eval "fashion:dataset=fashion-mnist;split=test;classes=[]")
spiking() {  # NAME ARGS... — one spiking_run.py lane under the deadline
  local name=$1; shift
  timeout --kill-after=10 "$DEADLINE" $PY experiments/spiking_run.py configs/spiking/emnist_split.yaml device="$DEVICE" $EXTRA \
    eval_every=0 final_eval_tasks=20 name="$name" --runs "$RUNS/spiking" --eval-tasks "${EVAL_TASKS:-100}" "$@" > "$LOGS/$name.log" 2>&1
  echo "$name rc=$? at +$(( $(date +%s) - START )) s" >> "$LOGS/summary.txt"
}
pack() { tar czf "$OUT/logs.tmp" -C "$LOGS" . && mv "$OUT/logs.tmp" "$OUT/logs.tgz"
         [ -d "$RUNS/bio" ] && tar czf "$OUT/bio.tmp" -C "$RUNS" --exclude=checkpoint.pt bio && mv "$OUT/bio.tmp" "$OUT/bio_runs.tgz"; }
START=$(date +%s); pids=()
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; lscpu | grep -i "model name"; nproc --all
  $PY -c "import torch; print('torch', torch.__version__)"; git log -1 --format='commit %h %s'; } > "$LOGS/summary.txt"
for s in 0 1 2; do
  spiking "es_s$s" seed=$s steps="$ES_GENERATIONS" es.population_size=64 tasks_per_step=2 $HELDOUT "${TRANSFER[@]}" &
  pids+=($!)
  spiking "adam_s$s" seed=$s outer=adam steps="$ADAM_STEPS" tasks_per_step="$ADAM_TASKS" adam.lr=0.1 $HELDOUT \
    --option baselines=false &
  pids+=($!)
done
( for s in 0 1 2; do
    spiking "esq_s$s" seed=$s steps="$ADAM_STEPS" es.population_size="$ADAM_TASKS" tasks_per_step=1 \
      --option classes=37-46 --option baselines=false
  done ) &
pids+=($!)
for s in 0 1 2; do for compiled in false true; do
  name=bio_compile-${compiled}_s$s
  ( timeout --kill-after=10 "$DEADLINE" $PY -m evoplastic train configs/es/bio.yaml seed=$s es.compile=$compiled \
      threads=1 $BIO_EXTRA eval_every=0 final_eval_tasks=20 name="$name" --runs-dir "$RUNS/bio" --no-progress \
      > "$LOGS/$name.log" 2>&1; echo "$name rc=$? at +$(( $(date +%s) - START )) s" >> "$LOGS/summary.txt" ) &
  pids+=($!)
done; done
running() { local p; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while running; do sleep 20; pack; done
wait; pack
cat "$LOGS/summary.txt"; nvidia-smi --query-gpu=memory.used --format=csv,noheader
