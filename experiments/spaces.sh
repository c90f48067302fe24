#!/usr/bin/env bash
# The rule spaces only ES searches, meta-trained by ES on EMNIST classes 0-36 (configs/spaces/), two runs at a time:
#   per-layer pool (50 coefficients): sep-CMA-ES vs SNES, same budget, seeds 0 and 1;
#   per-layer bio (15 coefficients), seeds 0-2 (the θ-per-layer plot);
#   plastic feedback (bio on W + hebb, ee, decay, Oja on B), seeds 0 and 1; generated pool with L1, seed 0;
#   per-layer bio (seeds 0-2) and pool (seed 0) meta-trained on a mixture of EMNIST 0-36 and half of
#   Fashion-MNIST's test images (the other half scores them); the generated pool likewise (seeds 0-2), and
#   the generated pool on EMNIST alone again (seeds 1, 2).
# Then: experiments/spaces_eval.sh scores every rule on the same held-out tasks. ~80 min on 2 cores.
# Data: EMNIST from the data directory (e.g. EVOPLASTIC_DATA=../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
RUNS=${RUNS:-runs/spaces}
mkdir -p "$RUNS"
jobs() {
  echo "configs/spaces/per_layer_pool_sepcma.yaml seed=0 rule.per_layer=false name=es_pool_shared_s0"  # reference
  for seed in 0 1; do
    echo "configs/spaces/per_layer_pool_sepcma.yaml seed=$seed name=es_per_layer_pool_sepcma_s$seed"
    echo "configs/spaces/per_layer_pool_snes.yaml seed=$seed name=es_per_layer_pool_snes_s$seed"
  done
  for seed in 0 1 2; do echo "configs/spaces/per_layer_bio.yaml seed=$seed name=es_per_layer_bio_s$seed"; done
  for seed in 0 1; do echo "configs/spaces/plastic_feedback.yaml seed=$seed name=es_plastic_feedback_s$seed"; done
  echo "configs/spaces/generated_l1.yaml seed=0 name=es_generated_l1_s0"
  for seed in 0 1 2; do echo "configs/spaces/per_layer_bio_mixture.yaml seed=$seed name=es_per_layer_bio_mixture_s$seed"; done
  echo "configs/spaces/per_layer_pool_mixture.yaml seed=0 name=es_per_layer_pool_mixture_s0"
  for seed in 0 1 2; do echo "configs/spaces/generated_mixture.yaml seed=$seed name=es_generated_mixture_s$seed"; done
  for seed in 1 2; do echo "configs/spaces/generated_l1.yaml seed=$seed name=es_generated_l1_s$seed"; done
}
[ -f runs/data/fashion-mnist-test-a.npz ] || python experiments/fashion_halves.py runs/data
# each job: CONFIG KEY=VALUE ... name=NAME (the name last: it names the log)
jobs | xargs -P "${PARALLEL:-2}" -I{} sh -c \
  'set -- {}; cfg=$1; shift; for last; do :; done
   evoplastic train "$cfg" --runs-dir '"$RUNS"' --no-progress --set "$@" > '"$RUNS"'/"${last#name=}".log 2>&1 || echo "failed: {}"'
ls "$RUNS"
