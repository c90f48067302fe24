#!/usr/bin/env bash
# Issue 13's robust objective over seeds: ES with the CVaR of the task losses (configs/es/bio_cvar.yaml)
# against the mean (bio_mean8.yaml, same budget), then every rule on the same 100 held-out Fashion-MNIST
# test tasks (and fa/bp): mean query accuracy and the share of tasks below 30 %. ~7 min per run on one
# core of a 2-core machine; finished runs (with theta.json) are reused.
# Usage: bash experiments/robust.sh [train|evaluate|all]; SEEDS="0 1 2" by default.
# Data: EMNIST and Fashion-MNIST from the data directory (e.g. EVOPLASTIC_DATA=../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
RUNS=runs/robust
OUT=docs/results/robust
SEEDS=${SEEDS:-0 1 2}
mkdir -p "$RUNS" "$OUT"
run() { ls -d "$RUNS"/*_"$1" 2>/dev/null | tail -n 1; }
finished() { [ -n "$(run "$1")" ] && [ -f "$(run "$1")/theta.json" ]; }
if [ "${1:-all}" != evaluate ]; then
  for seed in $SEEDS; do
    for kind in cvar mean8; do
      name=es_bio_${kind}_s$seed
      finished "$name" || echo "configs/es/bio_$kind.yaml seed=$seed name=$name"
    done
  done | xargs -P "${PARALLEL:-2}" -I{} sh -c \
    'set -- {}; evoplastic train "$1" --runs-dir '"$RUNS"' --no-progress --set "$2" "$3" > '"$RUNS"'/"${3#name=}".log 2>&1 || echo "failed: {}"'
fi
[ "${1:-all}" = train ] && exit 0
for seed in $SEEDS; do
  for kind in cvar mean8; do
    name=es_bio_${kind}_s$seed
    evoplastic evaluate "$(run $name)" --dataset fashion-mnist --split test --tasks 100 --no-progress \
      --json "$OUT/$name.json" > "$OUT/$name.md"
  done
done
evoplastic evaluate bio:0.013,-0.054,-0.0065 --dataset fashion-mnist --split test --tasks 100 --no-progress \
  --no-baselines --json "$OUT/published_bio.json" > "$OUT/published_bio.md"  # the paper's rule, same tasks
python - "$OUT" $SEEDS > "$OUT/summary.md" <<'PY'
import json, math, sys
from pathlib import Path
out, seeds = Path(sys.argv[1]), sys.argv[2:]
def stats(acc):
    mean = sum(acc) / len(acc)
    ci = 1.96 * math.sqrt(sum((a - mean) ** 2 for a in acc) / (len(acc) - 1) / len(acc))
    return mean, ci, sum(a < 0.3 for a in acc)
print("| rule | seed | θ | mean query accuracy (%) | tasks below 30 % |\n|---|---|---|---|---|")
rows, seen = {}, set()
for kind in ("cvar", "mean8"):
    for seed in seeds:
        for r in json.loads((out / f"es_bio_{kind}_s{seed}.json").read_text())["results"]:
            label = r["label"] if "baseline" in r["label"] else f"ES bio, {kind}"
            if "baseline" in label and label in seen:
                continue
            seen.add(label)
            mean, ci, low = stats(r["task_accuracy"])
            rows.setdefault(label, []).append((mean, low))
            theta = ", ".join(f"{t:.4g}" for t in r["theta"])
            print(f"| {label} | {'—' if 'baseline' in label else seed} | {theta} | {100 * mean:.1f} ± {100 * ci:.1f} "
                  f"| {low} of {len(r['task_accuracy'])} |")
for r in json.loads((out / "published_bio.json").read_text())["results"]:
    mean, ci, low = stats(r["task_accuracy"])
    print(f"| published bio | — | 0.013, -0.054, -0.0065 | {100 * mean:.1f} ± {100 * ci:.1f} | {low} of 100 |")
print("\n| objective | seeds | mean accuracy over seeds (%) | tasks below 30 %, per seed |\n|---|---|---|---|")
for label, values in rows.items():
    if "baseline" not in label:
        print(f"| {label} | {len(values)} | {100 * sum(m for m, _ in values) / len(values):.1f} | "
              f"{', '.join(str(low) for _, low in values)} |")
PY
cat "$OUT/summary.md"
