"""``python -m pygan check``: verify this install's compiled kernels against their pure-PyTorch twins.

For every op and backend the install has, the compiled kernel (called through the dispatcher,
``torch.ops.pygan.*``, whatever the default for CUDA tensors is) runs against its twin in
:mod:`pygan.reference` over dtypes, memory layouts (contiguous, transposed, strided, channels_last,
storage offsets that break 16-byte alignment), sizes on both sides of every chunk, launch and grain
boundary of the kernels, mixed CPU/CUDA lists, NaN and inf; the exact EMD solver is checked against
its optimality certificate. One row per op and backend: pass, fail (with the largest difference
against the tolerance and the case it came from), or skipped and why.

Exit status: 0 when nothing failed, 1 when something did, 2 for bad input (a device this machine
does not have). A failing or crashing op never stops the others: on CUDA each op runs in its own
child process (an illegal memory access kills the whole CUDA context), so a crash is reported as
that op's failure.

The cases, and the kernel constants their sizes come from, are in pygan/_check_cases.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

# (_Failure and _layouts too: the tests build their own cases with them.)
from pygan._check_cases import Checker as _Checker  # noqa: F401
from pygan._check_cases import Failure as _Failure  # noqa: F401
from pygan._check_cases import clip_cases, emd_cases, rmsprop_cases
from pygan._check_cases import layout_variants as _layouts  # noqa: F401
from pygan._check_penalty import grad_penalty_backward_cases, grad_penalty_cases, interpolate_cases

# The op suite, one entry per op: a generator of (case name, check) pairs for a _Checker.
_CASES = {
    "clip_": clip_cases,
    "rmsprop_step_": rmsprop_cases,
    "interpolate": interpolate_cases,
    "grad_penalty": grad_penalty_cases,
    "grad_penalty_backward": grad_penalty_backward_cases,
    "emd": emd_cases,
}

__all__ = ["main", "run_checks", "Row", "OPS"]

OPS = ("clip_", "rmsprop_step_", "interpolate", "grad_penalty", "grad_penalty_backward", "emd")


@dataclasses.dataclass
class Row:
    """One op on one backend."""

    op: str
    backend: str
    status: str = "pass"  # "pass" | "fail" | "skipped"
    cases: int = 0
    worst: float = 0.0  # the largest |kernel - twin| / tolerance over the cases (<= 1 passes)
    worst_diff: float = 0.0  # the largest |kernel - twin| of that case
    worst_case: str = ""
    detail: str = ""
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------

def _skip_reason(op: str, backend: str) -> str | None:
    """Why op cannot be checked on backend in this install, or None."""
    from pygan import _build

    if not _build.load():
        return f"the extension is not loaded ({_build.info().error})"
    if op == "emd":
        return None
    schema = f"pygan::{op}"
    key = "CUDA" if backend == "cuda" else "CPU"
    if not torch._C._dispatch_has_kernel_for_dispatch_key(schema, key):
        why = " (this build has no CUDA sources: see PYGAN_BUILD_CUDA)" if key == "CUDA" else ""
        return f"no {key} kernel is registered for {schema}{why}"
    return None


def run_op(op: str, backend: str, quick: bool) -> Row:
    """Check one op on one backend in this process.

    Args:
        op: one of :data:`OPS`.
        backend: "cpu" or "cuda".
        quick: fewer and smaller cases.

    Returns:
        The row.
    """
    row = Row(op, backend)
    try:
        reason = _skip_reason(op, backend)
    except Exception as exc:  # PYGAN_REQUIRE_EXT=1 and a failed build
        reason = f"the extension did not load: {exc}"
        row.status, row.detail = "fail", reason
        return row
    if reason is not None:
        # A missing kernel is a failure of this install (the check exists to verify it), except the
        # CUDA kernels of a build made without CUDA sources, which are absent by choice.
        row.status = "skipped" if "PYGAN_BUILD_CUDA" in reason else "fail"
        row.detail = reason
        return row
    checker = _Checker(row, backend, quick)
    try:
        checker.run(_CASES[op](checker))
    except Exception as exc:  # a bug in building the cases must not stop the other ops either
        row.status = "fail"
        row.detail = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    return row


def _run_isolated(op: str, backend: str, quick: bool, timeout: float) -> Row:
    """run_op in a child process, so that a crash (or a dead CUDA context) is this op's failure only."""
    with tempfile.TemporaryDirectory(prefix="pygan-check-") as tmp:
        out = Path(tmp) / "row.json"
        cmd = [sys.executable, "-m", "pygan", "check", "--device", backend, "--only", op,
               "--no-isolate", "--json", str(out), "--quiet", "--threads", str(torch.get_num_threads())]
        cmd += ["--quick"] if quick else []
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Row(op, backend, status="fail", detail=f"did not finish within {timeout:.0f} s",
                       seconds=time.perf_counter() - start)
        if out.is_file():
            rows = json.loads(out.read_text()).get("rows", [])
            if rows:
                return Row(**rows[0])
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        return Row(op, backend, status="fail", seconds=time.perf_counter() - start,
                   detail=f"the check process died ({how}): {' | '.join(tail)}")


def run_checks(backends: list[str], ops: list[str], quick: bool, isolate: bool,
               progress: Callable[[Row], None] | None = None) -> list[Row]:
    """Every op on every backend; CUDA ops in child processes when `isolate`."""
    rows = []
    for backend in backends:
        for op in ops:
            if isolate and backend == "cuda":
                row = _run_isolated(op, backend, quick, timeout=300 if quick else 900)
            else:
                row = run_op(op, backend, quick)
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def _format_row(row: Row) -> str:
    if row.status == "pass":
        what = f"pass   {row.cases:3d} cases, worst {row.worst:.2g}x tolerance (|diff| {row.worst_diff:.2g})"
    elif row.status == "skipped":
        what = f"skipped: {row.detail}"
    else:
        what = f"FAIL   {row.detail}"
        if row.worst > 1 and row.worst_case:
            what += f"; largest |diff| {row.worst_diff:.3g} ({row.worst:.3g}x tolerance) in {row.worst_case}"
    return f"{row.op:<22} {row.backend:<5} {what}  [{row.seconds:.1f} s]"


def _commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "") if head else None
    except (OSError, subprocess.SubprocessError):
        return None


def _environment() -> dict:
    import pygan
    from pygan import _build, _cuda_policy

    env = {"pygan": pygan.__version__, "commit": _commit(), "python": platform.python_version(),
           "torch": torch.__version__, "torch_cuda": torch.version.cuda, "machine": platform.machine(),
           "cpu_threads": torch.get_num_threads()}
    try:
        info = _build.info()
        env.update(library=info.library, verified=info.verified, cuda_arch=info.cuda_arch,
                   cpu_capability=info.cpu_capability, extension_loaded=info.loaded)
    except Exception as exc:
        env.update(extension_loaded=False, error=str(exc))
    if torch.cuda.is_available():
        env["gpus"] = [{"name": torch.cuda.get_device_name(i),
                        "capability": ".".join(map(str, torch.cuda.get_device_capability(i)))}
                       for i in range(torch.cuda.device_count())]
        env["cuda_path_for_cuda_tensors"] = {op: _cuda_policy.describe(op) for op in _cuda_policy.OPS}
    return env


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m pygan check",
        description="Check this install's compiled kernels against their pure-PyTorch twins, per op and "
                    "backend. Exit 0: all passed; 1: a failure; 2: bad input.")
    p.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                   help="which backend(s) to check (default: all this machine has)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the results here")
    p.add_argument("--quick", action="store_true", help="fewer and smaller cases (under a minute on a CPU)")
    p.add_argument("--only", default=",".join(OPS), help=f"comma-separated ops (default: all of {','.join(OPS)})")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads for the CPU kernels and the twins (default: torch's)")
    p.add_argument("--no-isolate", dest="isolate", action="store_false",
                   help="run the CUDA checks in this process (default: one child process per op)")
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pygan check``.

    Returns:
        0 when every checked op passed, 1 when one failed, 2 for bad input.
    """
    try:
        args = _parse(argv)
    except SystemExit as exc:  # argparse: --help is 0, a bad option 2
        return int(exc.code or 0)
    ops = [o.strip() for o in args.only.split(",") if o.strip()]
    unknown = sorted(set(ops) - set(OPS))
    if unknown or not ops:
        print(f"check: --only: expected ops from {', '.join(OPS)}; got {args.only!r}", file=sys.stderr)
        return 2
    has_cuda = torch.cuda.is_available()
    if args.device == "cuda" and not has_cuda:
        why = ("this torch is a CPU-only build" if not torch.version.cuda
               else f"torch {torch.__version__} sees no CUDA device")
        print(f"check: --device cuda: no GPU is available ({why}); use --device cpu", file=sys.stderr)
        return 2
    backends = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else ["cpu", "cuda"]
    if args.json is not None and args.json.parent and not args.json.parent.exists():
        print(f"check: --json: the folder {args.json.parent} does not exist", file=sys.stderr)
        return 2

    if args.threads is not None:
        if args.threads < 1:
            print(f"check: --threads: expected a number >= 1, got {args.threads}", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    os.environ.setdefault("PYGAN_REQUIRE_EXT", "0")
    if not args.quiet:
        print(f"pygan check: torch {torch.__version__}"
              + (f", {torch.cuda.get_device_name(0)}" if has_cuda else ", no GPU")
              + (" (quick)" if args.quick else ""), flush=True)

    start = time.perf_counter()
    environment = _environment()
    done: list[Row] = []

    def write(finished: bool) -> dict:
        # Rewritten after every row, so a run stopped part-way keeps the rows it finished.
        failed = [r for r in done if r.status == "fail"]
        result = {"passed": finished and not failed, "finished": finished, "quick": args.quick,
                  "seconds": round(time.perf_counter() - start, 1), **environment,
                  "rows": [dataclasses.asdict(r) for r in done]}
        if args.json is not None:
            tmp = args.json.with_name(f".{args.json.name}.tmp-{os.getpid()}")
            tmp.write_text(json.dumps(result, indent=1, default=str) + "\n")
            os.replace(tmp, args.json)
        return result

    def progress(row: Row) -> None:
        done.append(row)
        write(False)
        if not args.quiet:
            print(_format_row(row), flush=True)

    run_checks([b for b in backends if b != "cuda" or has_cuda], ops, args.quick, args.isolate, progress)
    if "cuda" in backends and not has_cuda:
        for op in ops:
            progress(Row(op, "cuda", status="skipped", detail="no GPU is available"))
    rows = done
    result = write(True)
    failed = [r for r in rows if r.status == "fail"]
    if not args.quiet:
        passed = sum(r.status == "pass" for r in rows)
        skipped = sum(r.status == "skipped" for r in rows)
        print(f"{passed} passed, {len(failed)} failed, {skipped} skipped in {result['seconds']} s"
              + (f"; results in {args.json}" if args.json else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
