#!/usr/bin/env bash
# Timings of the spiking family on one GPU before a longer run is planned: seconds per ES generation at a few
# population sizes, per Adam step at a few task batches, and how three processes sharing the GPU slow each other.
# Run on the GPU machine: . .device/activate && bash experiments/spiking_gpu_probe.sh   (writes $OUT/probe.log)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/spiking_probe_out}; mkdir -p "$OUT"
exec > >(tee -a "$OUT/probe.log") 2>&1
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 EVOPLASTIC_DATA=${EVOPLASTIC_DATA:-$PWD/.device/data}
PY=${PYTHON:-python3}
RUNS=$(mktemp -d)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc; $PY -c "import torch; print(torch.__version__)"
steps() {  # NAME OVERRIDES... — train a few steps and print seconds per step
  local name=$1; shift
  timeout 150 $PY -m evoplastic train configs/spiking/emnist_split.yaml device=cuda eval_every=0 final_eval_tasks=1 \
    name="$name" "$@" --runs-dir "$RUNS/$name" --no-progress > "$OUT/$name.txt" 2>&1
  echo "$name rc=$?: $($PY - "$RUNS/$name" <<'PY'
import json, sys
from pathlib import Path
runs = list(Path(sys.argv[1]).iterdir())
if not runs: raise SystemExit("no run directory")
lines = [json.loads(l) for l in (runs[0] / "metrics.jsonl").read_text().splitlines()]
t = [r["time/elapsed"] for r in lines if "time/elapsed" in r]
print("step seconds " + ", ".join(f"{b - a:.2f}" for a, b in zip([0.0] + t, t)))
PY
)"
}
t0=$(date +%s)
steps es_p16 steps=3 es.population_size=16
steps es_p128 steps=3 es.population_size=128
steps es_p64_t4 steps=3 es.population_size=64 tasks_per_step=4
steps adam_t1 outer=adam steps=2 tasks_per_step=1
steps adam_t16 outer=adam steps=2 tasks_per_step=16
echo "three ES processes at once (population 64):"
for i in 1 2 3; do steps "es_p64_par$i" steps=3 es.population_size=64 & done; wait
echo "ES and Adam at once:"
steps es_p64_mix steps=3 es.population_size=64 & steps adam_t16_mix outer=adam steps=2 tasks_per_step=16 & wait
nvidia-smi --query-gpu=memory.used --format=csv,noheader
echo "probe took $(( $(date +%s) - t0 )) s"
