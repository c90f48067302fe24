#!/usr/bin/env bash
# Issue 13's robust objective, one seed: ES with the CVaR of the task losses (configs/es/bio_cvar.yaml)
# against the mean (bio_mean8.yaml, same budget), then both on the same 100 held-out Fashion-MNIST
# test tasks (and fa/bp): mean query accuracy and the share of tasks below 30 %. ~20 min on 2 cores.
# Data: EMNIST and Fashion-MNIST from the data directory (e.g. EVOPLASTIC_DATA=../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
RUNS=runs/robust
OUT=docs/results/robust
mkdir -p "$RUNS" "$OUT"
run() { ls -d "$RUNS"/*_"$1" | tail -n 1; }
if [ "${1:-all}" != evaluate ]; then
  evoplastic train configs/es/bio_cvar.yaml --runs-dir "$RUNS" --no-progress
  evoplastic train configs/es/bio_mean8.yaml --runs-dir "$RUNS" --no-progress
fi
for name in es_bio_cvar es_bio_mean8; do
  evoplastic evaluate "$(run $name)" --dataset fashion-mnist --split test --tasks 100 --no-progress \
    --json "$OUT/$name.json" > "$OUT/$name.md"
done
evoplastic evaluate bio:0.013,-0.054,-0.0065 --dataset fashion-mnist --split test --tasks 100 --no-progress \
  --no-baselines --json "$OUT/published_bio.json" > "$OUT/published_bio.md"  # the paper's rule, same tasks
python - "$OUT"/es_bio_cvar.json "$OUT"/es_bio_mean8.json "$OUT"/published_bio.json > "$OUT/summary.md" <<'PY'
import json, math, sys
print("| rule | θ | mean query accuracy (%) | tasks below 30 % |\n|---|---|---|---|")
seen = set()
for path in sys.argv[1:]:
    for r in json.load(open(path))["results"]:
        if r["label"] in seen:
            continue
        seen.add(r["label"])
        acc = r["task_accuracy"]
        mean = sum(acc) / len(acc)
        ci = 1.96 * math.sqrt(sum((a - mean) ** 2 for a in acc) / (len(acc) - 1) / len(acc))
        low = sum(a < 0.3 for a in acc)
        theta = ", ".join(f"{t:.4g}" for t in r["theta"])
        print(f"| {r['label']} | {theta} | {100 * mean:.1f} ± {100 * ci:.1f} | {low} of {len(acc)} |")
PY
cat "$OUT/summary.md"
