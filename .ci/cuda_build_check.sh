#!/usr/bin/env bash
# CUDA build check (called by .ci/run after the CPU tests): compiles pygan's extension with its CUDA
# sources through pygan's own loader (pygan._build.load), exactly as users build it, on a machine
# without a GPU, and checks that every op has CPU and CUDA kernels registered. Nothing is run on a GPU.
#
# Needs: python3 (with venv), a C++ compiler, nvcc (CUDA 13) and pip access to torch==2.14.1+cu130.
# Environment:
#   PYGAN_CUDA_CHECK_ARCH   CUDA architecture to build for (default 9.0; one arch keeps it quick)
#   PYGAN_CUDA_CHECK_PYTHON a python whose torch is a CUDA build (default: a new venv with torch 2.14.1)
#   PYGAN_CUDA_CHECK_KEEP=1 keep the temporary directory (venv, build tree) for inspection
set -euo pipefail

start=$(date +%s)
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
arch=${PYGAN_CUDA_CHECK_ARCH:-9.0}
work=$(mktemp -d "${TMPDIR:-/tmp}/pygan-cuda-check.XXXXXX")
cleanup() {
  if [[ "${PYGAN_CUDA_CHECK_KEEP:-0}" == "1" ]]; then
    echo "cuda-build-check: kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

elapsed() { echo "$(( $(date +%s) - start ))s"; }
log() { echo "cuda-build-check [$(elapsed)]: $*"; }
trap 'echo "cuda-build-check: FAILED after $(elapsed) (see the output above)" >&2' ERR

# nvcc: PATH first, then the usual toolkit locations. torch's loader finds the toolkit via CUDA_HOME.
nvcc_bin=$(command -v nvcc || true)
for candidate in /usr/local/bin/nvcc "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" /usr/local/cuda/bin/nvcc; do
  if [[ -z "$nvcc_bin" && -x "$candidate" ]]; then nvcc_bin=$candidate; fi
done
if [[ -z "$nvcc_bin" ]]; then
  echo "cuda-build-check: FAILED: nvcc not found (PATH, /usr/local/bin, \$CUDA_HOME/bin, /usr/local/cuda/bin)" >&2
  exit 1
fi
# torch finds the toolkit through CUDA_HOME; guessing it from `which nvcc` fails when nvcc is a wrapper
# script in /usr/local/bin (it would pick /usr/local and link against a missing -lcudart).
if [[ -z "${CUDA_HOME:-}" ]]; then
  for candidate in /usr/local/cuda "$(dirname "$(dirname "$(readlink -f "$nvcc_bin")")")"; do
    if [[ -f "$candidate/include/cuda_runtime.h" ]]; then CUDA_HOME=$candidate; break; fi
  done
  if [[ -z "${CUDA_HOME:-}" ]]; then
    echo "cuda-build-check: FAILED: set CUDA_HOME (no include/cuda_runtime.h next to $nvcc_bin or in /usr/local/cuda)" >&2
    exit 1
  fi
  export CUDA_HOME
fi
export PATH="$(dirname "$nvcc_bin"):$CUDA_HOME/bin:$PATH"
log "nvcc: $nvcc_bin ($("$nvcc_bin" --version | grep -o 'release [0-9.]*' || echo 'unknown release')), CUDA_HOME=$CUDA_HOME"

if [[ -n "${PYGAN_CUDA_CHECK_PYTHON:-}" ]]; then
  # .ci/run passes the test venv's python: its `pip install .` already brought the CUDA build of torch.
  py="$PYGAN_CUDA_CHECK_PYTHON"
  log "using $py"
  "$py" -c 'import torch, sys; sys.exit(0 if torch.version.cuda else "cuda-build-check: FAILED: that torch is not a CUDA build")'
else
  log "creating a virtual environment in $work/venv"
  python3 -m venv "$work/venv"
  py="$work/venv/bin/python"
  log "installing torch==2.14.1 numpy ninja"
  "$py" -m pip install --quiet --disable-pip-version-check torch==2.14.1 numpy ninja
fi
"$py" -c 'import torch; print("cuda-build-check: torch", torch.__version__, "CUDA", torch.version.cuda)'

log "building pygan's extension with CUDA sources (TORCH_CUDA_ARCH_LIST=$arch)"
if [[ -n "${PYGAN_CUDA_CHECK_PYTHON:-}" ]]; then
  # Build from the installed package (outside the checkout), so a wheel missing CUDA sources fails.
  cd "$work"
  pythonpath="${PYTHONPATH:-}"
else
  cd "$repo_root"
  pythonpath="$repo_root${PYTHONPATH:+:$PYTHONPATH}"
fi
export PATH="$(dirname "$py"):$PATH"  # ninja from the venv
PYTHONPATH="$pythonpath" \
PYGAN_BUILD_CUDA=1 TORCH_CUDA_ARCH_LIST="$arch" PYGAN_REQUIRE_EXT=1 PYGAN_BUILD_DIR="$work/build" \
PYGAN_VERBOSE_BUILD="${PYGAN_VERBOSE_BUILD:-0}" \
"$py" - <<'EOF'
import sys

import torch

import pygan._build as build

try:
    loaded = build.load()
except ImportError as exc:
    # load() imports pygan.ops after the library is loaded; the kernels are registered by then.
    print(f"cuda-build-check: note: pygan.ops could not be imported after loading ({exc})")
    loaded = None
info = build._info
if info is not None:
    print(f"cuda-build-check: library {info.library or '?'}; cuda sources: {info.cuda_sources}")
    print("cuda-build-check: sources:", *(s for s in info.sources), sep="\n    ")
if loaded is False:
    sys.exit("cuda-build-check: FAILED: the extension did not load")

missing = [
    f"{op} ({key})"
    for op in ("pygan::clip_", "pygan::rmsprop_step_", "pygan::interpolate", "pygan::grad_penalty",
               "pygan::grad_penalty_backward")
    for key in ("CPU", "CUDA")
    if not torch._C._dispatch_has_kernel_for_dispatch_key(op, key)
]
if missing:
    sys.exit(f"cuda-build-check: FAILED: no kernel registered for {missing}")
print("cuda-build-check: CPU and CUDA kernels registered for pygan::clip_, pygan::rmsprop_step_, "
      "pygan::interpolate, pygan::grad_penalty and pygan::grad_penalty_backward")
EOF

log "OK (elapsed $(elapsed))"
