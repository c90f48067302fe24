#!/usr/bin/env bash
# The single-pass Triton step on one GPU in under 7 minutes: the kernel's rows against its roofline and the
# Inductor step, the CUDA test cases (failing ones by name), one end-to-end ES run at population 4096, then, if
# mpiexec really gives two ranks, mpiexec -n 2 vs -n 1 sharing the GPU (same θ), and `evoplastic bench --device
# cuda` with whatever time is left.
#
# Prepare on the development machine (once):  bash ../shared/tools/device-pack   (.device/: evotorch, MPI, EMNIST)
# Run on the GPU machine (device tool):        run(carry=[".device"], timeout_s=540,
#                                                  command=". .device/activate && bash experiments/gpu_check.sh")
# Sections run in order of value, each under its own time limit, so one that hangs or overruns is stopped and
# the rest still run; GPU_CHECK_SECONDS (default 400) is the deadline the last sections fit into (the limits of
# the sections up to the MPI pair add up to about 400 s; the bench section runs only if time is left).
# Everything is written to $OUT (./gpu_check_out without it):
# gpu_check.log (all output), summary.txt (one line per section, printed again at the end), tests.log, rows.json,
# train.log, mpi.log, bench.json.
set -uo pipefail
export SHELLOPTS  # pipefail in the bash -c sections too
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
: > "$OUT/summary.txt"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
PY=${PYTHON:-python3}
START=$(date +%s)
DEADLINE=${GPU_CHECK_SECONDS:-400}
export PYTHONUNBUFFERED=1 EVOPLASTIC_DATA=${EVOPLASTIC_DATA:-$PWD/.device/data}
export EVOPLASTIC_DEVICE_DATA=${EVOPLASTIC_DEVICE_DATA:-npz:$EVOPLASTIC_DATA/emnist-balanced-subset.npz}
RUNS=$(mktemp -d)
export PY RUNS OUT

note() { echo "$*" | tee -a "$OUT/summary.txt"; }
left() { echo $((DEADLINE - ($(date +%s) - START))); }

section() {  # NAME LIMIT_SECONDS COMMAND... — run under a time limit (capped by the deadline), one summary line
  local name=$1 limit=$2; shift 2
  local remaining; remaining=$(left)
  if ((remaining < limit)); then limit=$remaining; fi
  if ((limit < 20)); then note "$(printf '%-30s skipped: %ss left before the deadline' "$name" "$remaining")"; return 99; fi
  local t0; t0=$(date +%s)
  echo; echo "=== $name (limit ${limit} s, at +$((t0 - START)) s) ==="
  timeout --signal=TERM --kill-after=15 "$limit" "$@"
  local rc=$?
  note "$(printf '%-30s rc=%-3s %4s s%s' "$name" "$rc" "$(($(date +%s) - t0))" \
    "$([ $rc = 124 ] && echo '  (stopped at its time limit)')")"
  return $rc
}

train() {  # RUNS_SUBDIR OVERRIDES... — one `evoplastic train` of the pool_l1 config into $RUNS/RUNS_SUBDIR
  local dir=$RUNS/$1; shift
  $PY -m evoplastic train configs/es/pool_l1.yaml device=cuda "$@" --runs-dir "$dir" --no-progress
}

generation_times() {  # RUN_DIR — seconds per generation from metrics.jsonl (the first includes compile + capture)
  $PY - "$1" <<'PY'
import json, sys
from pathlib import Path
run = next(Path(sys.argv[1]).iterdir())
elapsed = [json.loads(line)["time/elapsed"] for line in (run / "metrics.jsonl").read_text().splitlines()
           if "time/elapsed" in json.loads(line)]
steps = [b - a for a, b in zip([0.0] + elapsed, elapsed)]
final = json.loads((run / "theta.json").read_text())
print(f"generations: {', '.join(f'{s:.2f} s' for s in steps)} (first: compile + capture); final θ {final['theta']}, "
      f"accuracy {final['final/accuracy']:.4f} on {final.get('final/tasks', '?')} fresh tasks")
PY
}

same_theta() {  # DIR_ONE DIR_TWO — exit 0 iff both runs logged the same θ and fitnesses, bit for bit (the final
  # evaluation is compared too, but only reported: on CPU its mean loss over 8 tasks differed in the last float32 digit)
  $PY - "$1" "$2" <<'PY'
import json, sys
from pathlib import Path
runs = [next(Path(d).iterdir()) for d in sys.argv[1:]]
records = [[json.loads(line) for line in (r / "metrics.jsonl").read_text().splitlines()] for r in runs]
steps = len(records[0]) == len(records[1]) and all(
    a.get(k) == b.get(k) for a, b in zip(*records) for k in ("theta/center", "fitness/members"))
finals = [json.loads((r / "theta.json").read_text()) for r in runs]
theta = finals[0]["theta"] == finals[1]["theta"]
evaluation = all(finals[0][k] == finals[1][k] for k in ("final/loss", "final/accuracy"))
print(f"{len(records[0])} vs {len(records[1])} steps; θ and fitnesses identical at every step: {steps}; final θ "
      f"identical: {theta}; final evaluation (loss, accuracy) identical: {evaluation}")
for name, f in zip(("one process", "two ranks"), finals):
    print(f"  {name:12} θ = {f['theta']}  final loss {f['final/loss']!r} accuracy {f['final/accuracy']!r}")
sys.exit(0 if steps and theta else 1)
PY
}

# --- 0. what is here --------------------------------------------------------------------------------------
echo "=== environment ==="
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader || true
$PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda, \
'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"
git rev-parse --short HEAD 2>/dev/null || true
[ -f "$EVOPLASTIC_DATA/emnist-balanced-subset.npz" ] || echo "WARNING: no EMNIST subset in $EVOPLASTIC_DATA (run ../shared/tools/device-pack here first): the train sections will fail"
command -v mpiexec >/dev/null || echo "WARNING: no mpiexec on PATH (.device/activate puts the carried MPICH there)"
grep -q "es.kernel" evoplastic/families/paper/problem.py \
  || note "NOTE: evoplastic/families/paper/problem.py does not pass es.kernel to FusedOptions: the train and MPI" \
    "sections run the Inductor step, and test_cuda_configured_triton_fitness_matches_cpu fails"

# --- 1. the kernel's rows: row pass alone, episodes per path (a fallback is named per row), profile ----------
section "kernel rows (N=4096)" 150 $PY experiments/gpu_kernel_rows.py --members 4096 --min-seconds 1 \
  --json "$OUT/rows.json"

# --- 2. the CUDA cases of the kernel and GPU-path tests (their CPU cases run on every machine) ----------------
# Each test's outcome is printed as it finishes (-v), so a time limit still leaves the failing names in the log.
parallel=()
$PY -c "import xdist" 2>/dev/null && parallel=(-n 4)
section "tests (CUDA cases)" 90 bash -c "$PY -m pytest -v -rf -p no:cacheprovider ${parallel[*]} -k cuda \
  tests/test_triton_step.py tests/test_gpu_path.py 2>&1 | tee '$OUT/tests.log' \
  | grep --line-buffered -E 'FAILED|ERROR|[0-9]+ (passed|failed|skipped|deselected)'"

# --- 3. end to end at population 4096 ------------------------------------------------------------------------
: > "$OUT/train.log"
export -f train same_theta
section "train pool_l1 P=4096" 70 bash -c \
  "train e2e es.compile=true es.cuda_graph=true es.kernel=triton es.population_size=4096 steps=3" \
  >> "$OUT/train.log" 2>&1 && generation_times "$RUNS/e2e" | tee -a "$OUT/train.log"
grep -E "RuntimeWarning|accuracy|generations" "$OUT/train.log" | tail -4

# --- 4. mpiexec -n 2 sharing the GPU vs one process: the same θ, bit for bit (only if MPI gives two ranks) ----
: > "$OUT/mpi.log"
mpi_pair() {  # TAG OVERRIDES... — the same run under mpiexec -n 1 and -n 2 (as bench mpi launches), then same_theta
  local tag=$1 n launcher; shift
  for n in 1 2; do
    launcher=$($PY -c "from evoplastic.bench.mpi import mpiexec_command; print(*mpiexec_command($n))") || return 3
    echo "--- $tag: $launcher ... $*" >> "$OUT/mpi.log"
    $launcher $PY -m evoplastic train configs/es/pool_l1.yaml device=cuda steps=2 eval_every=0 final_eval_tasks=8 \
      "$@" --runs-dir "$RUNS/mpi-$tag-n$n" --no-progress >> "$OUT/mpi.log" 2>&1 || return 2
  done
  same_theta "$RUNS/mpi-$tag-n1" "$RUNS/mpi-$tag-n2" | tee -a "$OUT/mpi.log"
}
mpi_world() {  # exit 0 iff mpiexec -n 2 gives mpi4py a world of two ranks (a mismatched MPI gives two worlds of one)
  local launcher
  launcher=$($PY -c "from evoplastic.bench.mpi import mpiexec_command; print(*mpiexec_command(2))") || return 3
  $launcher $PY -c "from mpi4py import MPI; import sys; sys.exit(MPI.COMM_WORLD.Get_size() != 2)"
}
export -f mpi_pair mpi_world
if section "mpiexec -n 2 gives 2 ranks" 20 bash -c mpi_world >> "$OUT/mpi.log" 2>&1; then
  section "mpi -n 2 = -n 1 (triton)" 70 bash -c \
    "mpi_pair triton es.compile=true es.cuda_graph=true es.kernel=triton es.population_size=256"
else
  note "mpi pair skipped: mpiexec -n 2 did not give mpi4py one world of 2 ranks (see mpi.log: mpi4py built for another MPI?)"
fi

# --- 5. the bench suite's default CUDA set, only with the time left ---------------------------------------------
bench_flags=(--device cuda --members 4096 --min-seconds 1 --check-tasks 2 --json "$OUT/bench.json")
$PY -m evoplastic bench --help 2>/dev/null | grep -q -- "--families" && bench_flags+=(--families none)
section "evoplastic bench --device cuda" 60 $PY -m evoplastic bench "${bench_flags[@]}"

echo; echo "=== summary (+$(($(date +%s) - START)) s) ==="
cat "$OUT/summary.txt"
rm -rf "$RUNS"
