#!/usr/bin/env bash
# The robust objective over seeds: ES with the CVaR of the task losses (configs/es/RULE_cvar.yaml)
# against the mean (RULE_mean8.yaml, same budget), for the bio rule and the pool (λ = 0.1), then every
# rule on the same 100 held-out Fashion-MNIST test tasks (and fa/bp): mean query accuracy and the share of
# tasks below 30 %. ~7-10 min per run on one core of a 2-core machine; finished runs and evaluations are reused.
# Usage: bash experiments/robust.sh [train|evaluate|all]; SEEDS="0 1 2" and RULES="bio pool_l1" by default
# (the README's pool rows: SEEDS=0 RULES=pool_l1).
# Data: EMNIST and Fashion-MNIST from the data directory (e.g. EVOPLASTIC_DATA=../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
RUNS=runs/robust
OUT=docs/results/robust
SEEDS=${SEEDS:-0 1 2}
RULES=${RULES:-bio pool_l1}
mkdir -p "$RUNS" "$OUT"
run() { ls -d "$RUNS"/*_"$1" 2>/dev/null | tail -n 1; }
finished() { [ -n "$(run "$1")" ] && [ -f "$(run "$1")/theta.json" ]; }
if [ "${1:-all}" != evaluate ]; then
  for rule in $RULES; do
    for seed in $SEEDS; do
      for kind in cvar mean8; do
        name=es_${rule}_${kind}_s$seed
        finished "$name" || echo "configs/es/${rule}_$kind.yaml seed=$seed name=$name"
      done
    done
  done | xargs -P "${PARALLEL:-2}" -I{} sh -c \
    'set -- {}; evoplastic train "$1" --runs-dir '"$RUNS"' --no-progress --set "$2" "$3" > '"$RUNS"'/"${3#name=}".log 2>&1 || echo "failed: {}"'
fi
[ "${1:-all}" = train ] && exit 0
for rule in $RULES; do
  for seed in $SEEDS; do
    for kind in cvar mean8; do
      name=es_${rule}_${kind}_s$seed
      [ -f "$OUT/$name.json" ] && continue  # evaluated already (delete it to redo)
      finished "$name" || { echo "no finished run $name: skipped"; continue; }
      evoplastic evaluate "$(run $name)" --dataset fashion-mnist --split test --tasks 100 --no-progress \
        --json "$OUT/$name.json" > "$OUT/$name.md"
    done
  done
done
[ -f "$OUT/published_bio.json" ] || evoplastic evaluate bio:0.013,-0.054,-0.0065 --dataset fashion-mnist --split test \
  --tasks 100 --no-progress --no-baselines --json "$OUT/published_bio.json" > "$OUT/published_bio.md"
python - "$OUT" > "$OUT/summary.md" <<'PY'
import json, math, re, sys
from pathlib import Path
out = Path(sys.argv[1])
def stats(acc):
    mean = sum(acc) / len(acc)
    ci = 1.96 * math.sqrt(sum((a - mean) ** 2 for a in acc) / (len(acc) - 1) / len(acc))
    return mean, ci, sum(a < 0.3 for a in acc)
print("| rule | objective | seed | mean query accuracy (%) | tasks below 30 % |\n|---|---|---|---|---|")
rows, seen = {}, set()
for path in sorted(out.glob("es_*_s*.json")):
    rule, kind, seed = re.fullmatch(r"es_(.+)_(cvar|mean8)_s(\d+)", path.stem).groups()
    for r in json.loads(path.read_text())["results"]:
        baseline = "baseline" in r["label"]
        if baseline and r["label"] in seen:
            continue
        seen.add(r["label"])
        mean, ci, low = stats(r["task_accuracy"])
        if not baseline:
            rows.setdefault((rule, kind), []).append((mean, low))
        label = r["label"] if baseline else f"ES {rule}"
        print(f"| {label} | {'—' if baseline else kind} | {'—' if baseline else seed} | {100 * mean:.1f} ± {100 * ci:.1f} "
              f"| {low} of {len(r['task_accuracy'])} |")
for r in json.loads((out / "published_bio.json").read_text())["results"]:
    mean, ci, low = stats(r["task_accuracy"])
    print(f"| published bio (0.013, -0.054, -0.0065) | — | — | {100 * mean:.1f} ± {100 * ci:.1f} | {low} of 100 |")
print("\n| rule | objective | seeds | mean accuracy over seeds (%) | tasks below 30 %, per seed |\n|---|---|---|---|---|")
for (rule, kind), values in sorted(rows.items()):
    print(f"| ES {rule} | {kind} | {len(values)} | {100 * sum(m for m, _ in values) / len(values):.1f} | "
          f"{', '.join(str(low) for _, low in values)} |")
PY
cat "$OUT/summary.md"
