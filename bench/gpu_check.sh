#!/usr/bin/env bash
# pygan's GPU validation, in one call on a fresh GPU machine (written for an H100/H200 with torch,
# nvcc, ninja and pytest installed and no network): builds the extension with its CUDA sources, runs
# `python -m pygan check --device cuda`, the CUDA tests, and the CUDA benchmarks of every op family,
# writing every result to files as it goes (so a time-out keeps what finished), then prints what to
# commit. Under 8 minutes by default: each step gets what is left of the time budget.
#
#   bash bench/gpu_check.sh [DIR]        results in DIR (default: $OUT if set, else gpu-check-<time>/)
#
# Environment:
#   PYGAN_GPU_CHECK_SECONDS  the whole run's budget in seconds (default 470)
#   PYGAN_GPU_CHECK_QUICK=1  short benchmark timing (smoke numbers, not for publishing)
#   PYGAN_GPU_CHECK_BENCH    the benchmark families, comma-separated (default clip,optim,penalty,train,emd)
#   PYGAN_GPU_CHECK_DEVICE=cpu  a rehearsal of every step on a machine without a GPU (with
#                            PYGAN_BUILD_CUDA=0): the same flow, on the CPU kernels
#
# Files in DIR (8 at most, none in sub-folders, as a lent machine returns them): gpu_check.log
# (everything printed, the build's output too), check_cuda.json, tests_cuda.log, and one
# <family>_cuda-<gpu>.json per benchmark family.
# The tests and benchmarks run with PYGAN_CUDA_KERNELS=1: they must exercise the CUDA kernels, which
# are otherwise off by default until a run like this one has verified them (docs/ops.md).
set -uo pipefail

start=$(date +%s)
budget=${PYGAN_GPU_CHECK_SECONDS:-470}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-${OUT:-$repo/gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$repo" || exit 1
exec > >(tee -a "$out/gpu_check.log") 2>&1

py=${PYTHON:-python3}
device=${PYGAN_GPU_CHECK_DEVICE:-cuda}
export PYTHONUNBUFFERED=1 PYGAN_REQUIRE_EXT=1 PYGAN_BUILD_CUDA=${PYGAN_BUILD_CUDA:-1}
export PYGAN_BUILD_DIR=${PYGAN_BUILD_DIR:-/tmp/pygan-gpu-check-build}
export PATH="$(dirname "$(command -v "$py")"):$PATH"  # ninja from the same environment as python

elapsed() { echo $(( $(date +%s) - start )); }
left() { echo $(( budget - $(elapsed) )); }
log() { echo "gpu-check [$(elapsed)s]: $*"; }
declare -A status

# step NAME CAP COMMAND...: run COMMAND with a time limit of min(CAP, what is left - 5 s).
step() {
  local name=$1 cap=$2
  shift 2
  local limit
  limit=$(( $(left) - 5 ))
  (( limit > cap )) && limit=$cap
  if (( limit < 10 )); then
    log "$name: SKIPPED (time budget spent)"
    status[$name]="skipped (no time left)"
    return 0
  fi
  log "$name: starting (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  if (( rc == 0 )); then status[$name]="ok"
  elif (( rc == 124 || rc == 137 )); then status[$name]="TIMED OUT after ${limit}s"
  else status[$name]="FAILED (exit $rc)"; fi
  log "$name: ${status[$name]}"
  return 0
}

log "results in $out"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv || true
"$py" - <<'EOF' || true
import platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| GPU", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
      "| capability", torch.cuda.get_device_capability(0) if torch.cuda.is_available() else "-")
EOF
command -v nvcc >/dev/null && nvcc --version | tail -2
git -C "$repo" rev-parse HEAD 2>/dev/null | sed 's/^/commit /' || echo "commit unknown (not a git checkout)"

# 1. The build: the same loader users get, with the CUDA sources, for the visible GPU (+PTX).
build_py='import os, pygan._build as b, torch
ok = b.load(); i = b.info()
print("loaded", ok, "| library", i.library, "| CUDA arch", i.cuda_arch, "| verified:", i.verified)
has = torch._C._dispatch_has_kernel_for_dispatch_key
missing = [op for op in ("clip_", "rmsprop_step_", "interpolate", "grad_penalty", "grad_penalty_backward")
           if not has("pygan::" + op, "CUDA")]
raise SystemExit(f"no CUDA kernel for {missing}" if missing and os.environ["PYGAN_GPU_CHECK_DEVICE"] == "cuda" else 0)'
PYGAN_GPU_CHECK_DEVICE=$device step build 300 "$py" -c "$build_py"
if [[ ${status[build]} != ok ]]; then
  log "the build failed (${status[build]}): its output is above. Nothing else can run."
  exit 1
fi

# 2. Every op's CUDA kernel against its twin (one child process per op: a crash is that op's row).
step check 180 "$py" -m pygan check --device "$device" --json "$out/check_$device.json"

# 3. The CUDA tests (every test id with "cuda": the device=cuda parametrizations and the CUDA-only
# tests; and test_clip's mixed-device test), kernels on.
step tests 150 env PYGAN_CUDA_KERNELS=1 "$py" -m pytest -q -p no:cacheprovider -k "cuda or mixed_devices" \
  -o addopts="" tests > "$out/tests_$device.log" 2>&1
tail -n 15 "$out/tests_$device.log"

# 4. The benchmarks, one family at a time, JSON into $out as each finishes.
quick=()
[[ ${PYGAN_GPU_CHECK_QUICK:-0} == 1 ]] && quick=(--quick)
IFS=, read -r -a families <<< "${PYGAN_GPU_CHECK_BENCH:-clip,optim,penalty,train,emd}"
for family in "${families[@]}"; do
  step "bench-$family" 100 env PYGAN_CUDA_KERNELS=1 "$py" -m pygan bench --only "$family" --device "$device" \
    --out "$out" "${quick[@]}"
done

# 5. The summary and what to commit.
log "done in $(elapsed)s of a ${budget}s budget"
for name in build check tests "${families[@]/#/bench-}"; do
  printf '  %-14s %s\n' "$name" "${status[$name]:-not run}"
done
"$py" - "$out" "${status[tests]:-not run}" "$device" <<'EOF' || true
import json, sys
from pathlib import Path

out, tests, device = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
check = out / f"check_{device}.json"
print("\nWhat to commit (from the repository root):")
for path in sorted(out.glob(f"*_{device}*.json")):
    print(f"  cp {path} bench/results/{path.name}")
if not check.is_file():
    print(f"  (no {check.name}: the check did not get through its first op; flip no default)")
    raise SystemExit(0)
result = json.loads(check.read_text())
passed = sorted({r["op"] for r in result["rows"] if r["backend"] == device and r["status"] == "pass"})
failed = sorted({r["op"] for r in result["rows"] if r["backend"] == device and r["status"] == "fail"})
print(f"\ncheck --device {device} on {result.get('gpus', 'no GPU')}: passed {passed or 'none'}; "
      f"failed {failed or 'none'}")
for r in result["rows"]:
    if r["status"] == "fail":
        print(f"  FAIL {r['op']}: {r['detail']}")
if device != "cuda":
    print("(a rehearsal on the CPU: nothing here can flip a CUDA default)")
    raise SystemExit(0)
if tests != "ok":
    print(f"The CUDA tests did not pass ({tests}): see tests_cuda.log; flip no default until they do.")
    raise SystemExit(0)
if result.get("quick") or not result.get("finished"):
    print("A quick or unfinished check does not justify flipping a default.")
    raise SystemExit(0)
kernels = {"clip_", "rmsprop_step_", "interpolate", "grad_penalty"}
flip = [op for op in passed if op in kernels and (op != "grad_penalty" or "grad_penalty_backward" in passed)]
print("\nThen, in pygan/_cuda_policy.py, VERIFIED may name the ops that passed (and only those):")
for op in flip:
    print(f'    "{op}": "bench/results/check_cuda.json",')
EOF
