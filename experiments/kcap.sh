#!/usr/bin/env bash
# Every k-cap (Balwani, Gupta & Shu) figure of the README, from scratch: trains the runs of configs/kcap/ into
# runs/kcap/ and writes the evaluation tables to docs/results/kcap/ (*.md; the per-task *.json are
# not committed). About 1.5 hours on one CPU core for train + evaluate (the MLP runs take an hour of it);
# controls ~10 min, bias ~3 min, target ~40 min (three 60-generation runs), claims ~25 min on one free core.
# Usage: bash experiments/kcap.sh [train|evaluate|controls|bias|target|claims|variants|all] (default all).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
RUNS=runs/kcap
OUT=docs/results/kcap
mkdir -p "$RUNS" "$OUT"
run() { ls -d "$RUNS"/*_"$1" | tail -n 1; }  # newest run directory of that name

train() {
  evoplastic train configs/kcap/es_pool.yaml --seeds 1-3 --runs-dir "$RUNS" --no-progress
  evoplastic train configs/kcap/gradient.yaml --seeds 1-3 --runs-dir "$RUNS" --no-progress
  # the MLP rule costs ~20-30 s per generation here (an 8-unit MLP on every synapse): ~20 min a run
  evoplastic train configs/kcap/es_mlp.yaml --seeds 1-3 --runs-dir "$RUNS" --no-progress
  train_rest
}

train_rest() {  # what follows the MLP run, when that one runs in another process
  evoplastic train configs/kcap/quickstart.yaml --runs-dir "$RUNS" --no-progress
  evoplastic train configs/kcap/es_pool_l1.yaml --runs-dir "$RUNS" --no-progress
  for held in moons circles blobs; do
    evoplastic train configs/kcap/holdout_$held.yaml --runs-dir "$RUNS" --no-progress
  done
}

evaluate() {
  local pool=("$(run es_pool_seed1)" "$(run es_pool_seed2)" "$(run es_pool_seed3)")
  local grad=("$(run gradient_seed1)" "$(run gradient_seed2)" "$(run gradient_seed3)")
  local mlp=("$(run es_mlp_seed1)" "$(run es_mlp_seed2)" "$(run es_mlp_seed3)")
  # (i) + (ii) at L = 5: the rules, the untrained network, raw input and backprop autoencoders
  # (--tasks counts tasks per dataset: 100 fresh tasks per cell)
  evoplastic evaluate "${pool[@]}" --autoencoders --tasks 100 --no-progress --json "$OUT/baselines.json" \
    > "$OUT/baselines.md"
  # (ii) probe accuracy against labels per class
  for labels in 1 2 5 10 20; do
    evoplastic evaluate "${pool[@]}" --tasks 100 --no-progress --set kcap.labels_per_class=$labels \
      --json "$OUT/labels_$labels.json" > "$OUT/labels_$labels.md"
  done
  # (iii) meta-trained on two datasets, evaluated on the third, beside the rule trained on all three
  for held in moons circles blobs; do
    evoplastic evaluate "$(run holdout_$held)" "${pool[0]}" --tasks 100 --no-progress \
      --set "kcap.datasets=[$held]" --json "$OUT/holdout_$held.json" > "$OUT/holdout_$held.md"
  done
  # ES vs the paper's gradient loop, and the term pool vs the MLP rule, at equal inner-loop episodes
  evoplastic evaluate "${pool[@]}" "${grad[@]}" "${mlp[@]}" --tasks 100 --no-progress --no-baselines \
    --json "$OUT/outer_loops.json" > "$OUT/outer_loops.md"
  # report.md + plots of ES against the gradient loop (curves against steps, seconds and episodes)
  evoplastic compare "${pool[@]}" "${grad[@]}" --out "$OUT/es_vs_gradient" --eval-tasks 20 --no-progress
  # which terms survive L1 (each coefficient zeroed in turn, paired against the full rule)
  evoplastic evaluate "$(run es_pool_l1)" --ablate --tasks 100 --no-progress --no-baselines \
    --json "$OUT/ablation.json" > "$OUT/ablation.md"
  python - "${pool[@]}" "${grad[@]}" "${mlp[@]}" "$(run es_pool_l1)" "$(run holdout_moons)" \
    "$(run holdout_circles)" "$(run holdout_blobs)" > "$OUT/theta.md" <<'PY'
import json, pathlib, sys
print("| run | outer | θ | accuracy on its final tasks (%) |\n|---|---|---|---|")
for run in map(pathlib.Path, sys.argv[1:]):
    d = json.loads((run / "theta.json").read_text())
    theta = ", ".join(f"{k} {v:.4g}" for k, v in zip(d["labels"], d["theta"])) if len(d["theta"]) < 20 \
        else f"{len(d['theta'])} MLP weights"
    print(f"| {run.name} | {d['outer']} | {theta} | {100 * d['final/accuracy']:.2f} ± {100 * d['final/accuracy_ci95']:.2f} |")
PY
  python experiments/kcap_tables.py "$OUT" > "$OUT/summary.md"  # the README's tables
}

controls() {  # every rule beside the start rule (hebb 0.01) and θ = 0 on the same tasks (paired)
  local pool=("$(run es_pool_seed1)" "$(run es_pool_seed2)" "$(run es_pool_seed3)")
  for labels in 1 2 5 10 20; do
    python experiments/kcap_controls.py "${pool[@]}" "$(run kcap_quickstart)" --tasks 100 \
      --set kcap.labels_per_class=$labels --json "$OUT/controls_L$labels.json" > "$OUT/controls_L$labels.md"
  done
  for held in moons circles blobs; do
    python experiments/kcap_controls.py "$(run holdout_$held)" "${pool[0]}" --tasks 100 \
      --set "kcap.datasets=[$held]" --json "$OUT/holdout_$held.json" > "$OUT/holdout_$held.md"
  done
  python experiments/kcap_controls.py "${pool[@]}" --autoencoders --tasks 100 --json "$OUT/baselines.json" \
    > "$OUT/baselines.md"  # ~4 minutes of backprop training on one free core
  python experiments/kcap_tables.py "$OUT" > "$OUT/summary.md"
}

bias() {  # the constant input unit: controls and baselines in networks with input_bias b
  for b in 1 3 6; do
    python experiments/kcap_controls.py --tasks 100 --set kcap.input_bias=$b --json "$OUT/bias_$b.json" \
      > "$OUT/bias_$b.md"
  done
}

target() {  # the rule space where meta-learning matters (configs/kcap/bias_auto.yaml), 3 seeds, paired
  evoplastic train configs/kcap/bias_auto.yaml --seeds 1-3 --runs-dir "$RUNS" --no-progress
  python experiments/kcap_controls.py "$(run bias_auto_seed1)" "$(run bias_auto_seed2)" "$(run bias_auto_seed3)" \
    --tasks 100 --set kcap.input_bias=3 --json "$OUT/target.json" > "$OUT/target.md"
  # the same space meta-trained on moons and blobs only: circles becomes a held-out dataset
  for s in 1 2 3; do
    evoplastic train configs/kcap/bias_auto.yaml name=bias_auto_mb_seed$s "kcap.datasets=[moons,blobs]" seed=$s \
      --runs-dir "$RUNS" --no-progress
  done
  python experiments/kcap_controls.py "$(run bias_auto_mb_seed1)" "$(run bias_auto_mb_seed2)" \
    "$(run bias_auto_mb_seed3)" --tasks 100 --set kcap.input_bias=3 --json "$OUT/target_mb.json" > "$OUT/target_mb.md"
  # the probe error as meta-objective (3 seeds), and a 150-generation budget (one seed)
  for s in 1 2 3; do
    evoplastic train configs/kcap/bias_auto.yaml name=bias_auto_err_seed$s kcap.objective=probe_error seed=$s \
      --runs-dir "$RUNS" --no-progress
  done
  evoplastic train configs/kcap/bias_auto.yaml name=bias_auto_long_seed1 steps=150 seed=1 --runs-dir "$RUNS" --no-progress
  python experiments/kcap_controls.py "$(run bias_auto_err_seed1)" "$(run bias_auto_err_seed2)" \
    "$(run bias_auto_err_seed3)" --tasks 100 --set kcap.input_bias=3 --json "$OUT/target_err.json" > "$OUT/target_err.md"
  python experiments/kcap_controls.py "$(run bias_auto_long_seed1)" --tasks 100 --set kcap.input_bias=3 \
    --json "$OUT/target_long.json" > "$OUT/target_long.md"
}

claims() {  # §5.2 (wider presynaptic field) and §5.3 (cross-entropy read-out against labels)
  evoplastic train configs/kcap/field.yaml --seeds 1-3 --runs-dir "$RUNS" --no-progress
  for s in 1 2 3; do
    evoplastic train configs/kcap/field.yaml name=hebb_only "kcap.terms=[hebb]" seed=$s --runs-dir "$RUNS" \
      --no-progress
  done
  local field=("$(run field_seed1)" "$(run field_seed2)" "$(run field_seed3)")
  python experiments/kcap_claims.py "$(run es_pool_seed1)" "$(run es_pool_seed2)" "$(run es_pool_seed3)" \
    kcap:hebb=0.01 kcap:hebb=0 "${field[@]}" $(ls -d "$RUNS"/*_hebb_only | tail -n 3) \
    --tasks 100 --json "$OUT/claims.json" > "$OUT/claims.md"
}

variants() {  # is it the network, not the rule? the es_pool search on shallower and wider k-cap RNNs
  evoplastic train configs/kcap/es_pool.yaml name=t0 kcap.recurrent_steps=0 "kcap.plastic=[M_in]" \
    final_eval_tasks=30 --runs-dir "$RUNS" --no-progress
  evoplastic train configs/kcap/es_pool.yaml name=t1 kcap.recurrent_steps=1 final_eval_tasks=30 \
    --runs-dir "$RUNS" --no-progress
  evoplastic train configs/kcap/es_pool.yaml name=m256 kcap.n_hidden=256 kcap.cap=32 final_eval_tasks=30 \
    --runs-dir "$RUNS" --no-progress
  for v in t0 t1 m256; do  # each beside the untrained network of its own shape
    evoplastic evaluate "$(run $v)" --tasks 100 --no-progress --json "$OUT/variant_$v.json" > "$OUT/variant_$v.md"
  done
}

case "${1:-all}" in
  train) train ;;
  train-rest) train_rest ;;
  evaluate) evaluate ;;
  variants) variants ;;
  controls) controls ;;
  bias) bias ;;
  target) target ;;
  claims) claims ;;
  all) train; evaluate; controls; bias; target; claims; variants ;;
  *) echo "usage: $0 [train|evaluate|controls|bias|target|claims|variants|all]" >&2; exit 2 ;;
esac
