#!/usr/bin/env bash
# Score every finished rule of experiments/spaces.sh (runs/spaces) and the fa/bp baselines on the same
# 100 tasks of four held-out sets: EMNIST classes 37-46 (never meta-trained on), EMNIST digits (test),
# Fashion-MNIST (test) and its odd-index half (never seen by the mixture runs, which train on the even half).
# Writes docs/results/spaces/<run>_<set>.md (+ .json) and summary.md: accuracy ± 95 % CI and the paired
# difference to bp per set. ~1.5 min per run on one core; evaluations already written are skipped.
# Data: from the data directory (e.g. EVOPLASTIC_DATA=../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
RUNS=${RUNS:-runs/spaces}
OUT=docs/results/spaces
DATA=${EVOPLASTIC_DATA:-$HOME/.cache/evoplastic}
mkdir -p "$OUT"
[ -f runs/data/fashion-mnist-test-b.npz ] || python experiments/fashion_halves.py runs/data
score() {  # score RUN NAME SET [evaluate options]: one held-out set, unless written already
  local run=$1 name=$2 set=$3
  shift 3
  [ -f "$OUT/${name}_$set.json" ] && return 0
  evoplastic evaluate "$run" --tasks 100 --no-progress "$@" --json "$OUT/${name}_$set.json" > "$OUT/${name}_$set.md"
}
for run in "$RUNS"/*/; do
  run=${run%/}
  [ -f "$run/theta.json" ] || { echo "skipping unfinished $run"; continue; }
  name=$(basename "$run" | cut -d_ -f2-)
  score "$run" "$name" heldout --dataset emnist --classes 37-46
  score "$run" "$name" digits --dataset "npz:$DATA/emnist-digits-test.npz"
  score "$run" "$name" fashion --dataset fashion-mnist --split test
  score "$run" "$name" fashionb --dataset npz:runs/data/fashion-mnist-test-b.npz
done
# the shared bio rule CMA-ES found on classes 0-36 (README, "Rules on classes and datasets they never saw")
rule=bio:0.0175,-0.0472,-0.0051
score "$rule" shared_bio_es_split heldout --dataset emnist --classes 37-46
score "$rule" shared_bio_es_split digits --dataset "npz:$DATA/emnist-digits-test.npz"
score "$rule" shared_bio_es_split fashion --dataset fashion-mnist --split test
score "$rule" shared_bio_es_split fashionb --dataset npz:runs/data/fashion-mnist-test-b.npz
python experiments/spaces_table.py "$OUT" > "$OUT/summary.md"
cat "$OUT/summary.md"
