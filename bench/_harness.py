"""The one harness every pygan benchmark script uses (``from . import _harness as H``).

What it guarantees: every candidate is checked against the first baseline before
anything is timed (a wrong kernel fails loudly instead of looking fast); each candidate is warmed up,
then timed in samples of ``inner`` back-to-back calls with ``time.perf_counter_ns`` (synchronising
the GPU around each sample when timing CUDA); we report medians and the inter-quartile range; ratios
are against the *fastest* baseline of the same run; a table goes to the screen and JSON to disk.

The pieces, for scripts whose work does not fit :func:`run_case` (slow solvers, whole training steps):
:func:`check_candidates` (phase 1, correctness), :func:`sample` / :func:`round_robin` /
:func:`summarize` (phase 2, timing), :func:`finish_case` (ratios), :func:`print_rows` (the table) and
:func:`write_json`. Results go to a fresh folder unless ``--publish`` (or ``--out``) says otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

# Benchmarks must never time the pure-PyTorch fallback by accident: make a failed build an error.
# Set before pygan's loader runs (it reads the variable lazily, at the first load()).
os.environ["PYGAN_REQUIRE_EXT"] = "1"

import torch  # noqa: E402

if importlib.util.find_spec("pygan") is None:
    # `python bench/clip.py` in a checkout without `pip install -e .`: use the checkout's pygan.
    _root = Path(__file__).resolve().parent.parent
    if (_root / "pygan" / "__init__.py").is_file():
        sys.path.insert(0, str(_root))


@dataclasses.dataclass
class Candidate:
    """One way of doing the benchmarked work.

    Attributes:
        name: the row label in the table and JSON.
        role: ``"baseline"`` (torch's own ways; the fastest one is what ratios are against),
            ``"pygan"`` (what is being measured) or ``"reference"`` (a limit shown for scale, such as
            one flat ``clamp_`` over the same number of elements; never a baseline).
        setup: builds fresh state (its own copies of the inputs) and returns it.
        run: does the work once on that state, in place.
        result: the tensors to compare after one ``run``, in the same order/shapes for every candidate.
        check: False only for references that do different work (a plain copy, for bandwidth).
        verify: optional; called on the state after the correctness run, raises AssertionError
            naming the case and row (an optimality certificate, "no warnings").
    """

    name: str
    role: str
    setup: Callable[[], Any]
    run: Callable[[Any], None]
    result: Callable[[Any], list[torch.Tensor]]
    check: bool = True
    verify: Callable[[Any], None] | None = None  # a check of its own after the correctness run


@dataclasses.dataclass
class Timing:
    """Per-call times in microseconds over all samples (each sample = mean of ``inner`` calls)."""

    median_us: float
    q1_us: float
    q3_us: float
    samples: int
    inner: int


def mlp(hidden: int, width: int) -> torch.nn.Module:
    """The toy-GAN critic: input 2, ``hidden`` layers of ``width`` with ReLU, output 1."""
    layers: list[torch.nn.Module] = [torch.nn.Linear(2, width), torch.nn.ReLU()]
    for _ in range(hidden - 1):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))


def dcgan64() -> torch.nn.Module:
    """The DCGAN-64 critic of the WGAN paper: 4x4 stride-2 convs 3-64-128-256-512, BatchNorm in the middle."""
    def block(c_in: int, c_out: int, bn: bool) -> list[torch.nn.Module]:
        conv = torch.nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)
        return [conv, *([torch.nn.BatchNorm2d(c_out)] if bn else []), torch.nn.LeakyReLU(0.2)]

    return torch.nn.Sequential(*block(3, 64, False), *block(64, 128, True), *block(128, 256, True),
                               *block(256, 512, True), torch.nn.Conv2d(512, 1, 4, 1, 0, bias=False))


def critics(device: str, include_100m: bool = True) -> list[tuple[str, Callable[[], list[torch.Tensor]]]]:
    """The parameter lists every benchmark runs on, as (name, builder) pairs.

    Args:
        device: where to put the parameters.
        include_100m: whether to add the 100M-parameter list (25 tensors of 4M float32, 400 MB).

    Returns:
        Builders (called lazily, so only one case's tensors are alive at a time) returning
        ``list(module.parameters())`` on ``device``, seeded so every run sees the same values.
    """
    def from_module(make: Callable[[], torch.nn.Module]) -> Callable[[], list[torch.Tensor]]:
        def build() -> list[torch.Tensor]:
            torch.manual_seed(0)
            return list(make().to(device).parameters())
        return build

    def big() -> list[torch.Tensor]:
        gen = torch.Generator(device=device).manual_seed(0)
        return [torch.nn.Parameter(torch.randn(4_000_000, device=device, generator=gen) * 0.02)
                for _ in range(25)]

    cases = [("MLP 4x128", from_module(lambda: mlp(4, 128))),
             ("MLP 4x512", from_module(lambda: mlp(4, 512))),
             ("MLP 12x512", from_module(lambda: mlp(12, 512))),
             ("DCGAN-64", from_module(dcgan64))]
    return cases + ([("100M list", big)] if include_100m else [])


def synchronize(device: str) -> None:
    """Wait for queued GPU work so the clock measures it (a no-op on CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def sample(fn: Callable[[], None], device: str, inner: int) -> float:
    """One sample: ``inner`` back-to-back calls, synchronised at both ends; returns µs per call."""
    synchronize(device)
    start = time.perf_counter_ns()
    for _ in range(inner):
        fn()
    synchronize(device)
    return (time.perf_counter_ns() - start) / inner / 1e3


def round_robin(fns: list[Callable[[], None]], device: str, inners: list[int],
                counts: list[int], warm: list[int] | None = None) -> list[list[float]]:
    """Sample several functions in turn: round r takes one sample of each function that wants more.

    Args:
        fns: the work to time (already warmed up).
        device: decides whether to synchronise around samples.
        inners: calls per sample, per function.
        counts: samples wanted, per function.
        warm: per function, the untimed calls before each of its samples (None: none). A sample of
            a few calls would otherwise start on the caches (and allocator state) that the previous
            function's sample left, and those misses count against whichever function happens to
            follow a heavy one in the round.

    Returns:
        The per-call times in µs of each function's samples, in the order of ``fns``.
    """
    times: list[list[float]] = [[] for _ in fns]
    warm = warm if warm is not None else [0] * len(fns)
    for r in range(max(counts, default=0)):
        for fn, k, n, w, out in zip(fns, inners, counts, warm, times):
            if r < n:
                for _ in range(w):
                    fn()
                out.append(sample(fn, device, k))
    return times


def summarize(times: list[float], inner: int) -> Timing:
    """Median and quartiles of one function's samples."""
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return Timing(statistics.median(times), q1, q3, len(times), inner)


# Samples of few short calls get an untimed sample of the same function before each (time_interleaved).
WARM_BEFORE_SAMPLE_US, WARM_MAX_INNER = 10e3, 16


def time_interleaved(fns: list[Callable[[], None]], device: str, quick: bool = False) -> list[Timing]:
    """Time several functions, interleaving their samples round-robin; return one Timing each.

    Interleaving matters on a shared machine: a burst of background load then slows every candidate's
    samples alike instead of skewing whichever candidate happened to be running, so ratios stay fair.

    Args:
        fns: the work to time; each is called many times on its own state.
        device: ``"cpu"`` or ``"cuda"``; decides whether to synchronise around samples.
        quick: fewer, shorter samples (a smoke run, not numbers to publish).

    Returns:
        Timings in the order of ``fns``. Calls are batched into samples of at least ~1 ms (2 ms on
        CUDA) so the clock and synchronisation overheads stay small against microsecond-scale kernels.
        A sample of at most ``WARM_MAX_INNER`` calls, each under ``WARM_BEFORE_SAMPLE_US``, is
        preceded by as many untimed calls (see :func:`round_robin`): a 64 x 64 ``ot.emd2`` call
        (~0.2 ms, ~4 to a sample) measured 35-60 µs slower in the sample right after POT's than
        after pygan's own, still ~35 µs after one untimed call, 5-10 µs after five.
    """
    budget_us = (0.15 if quick else 0.8) * 1e6 * len(fns)  # total timed time for this case
    min_samples, max_samples = (3, 30) if quick else (7, 200)
    min_sample_us = 2e3 if device.startswith("cuda") else 1e3
    inners, warm, ones = [], [], []
    for fn in fns:
        for _ in range(2 if quick else 3):  # warm-up: lazy state, allocator, caches, thread pool
            fn()
        one = sample(fn, device, 1)
        inners.append(max(1, math.ceil(min_sample_us / max(one, 1e-3))))
        warm.append(inners[-1] if one < WARM_BEFORE_SAMPLE_US and inners[-1] <= WARM_MAX_INNER else 0)
        ones.append(one)
    per_round = sum(sample(fn, device, k) * k + one * w for fn, k, w, one in zip(fns, inners, warm, ones))
    n_samples = int(min(max_samples, max(min_samples, budget_us // per_round)))
    per_call = round_robin(fns, device, inners, [n_samples] * len(fns), warm)
    return [summarize(times, k) for k, times in zip(inners, per_call)]


def check_close(name: str, expected: list[torch.Tensor], got: list[torch.Tensor], rtol: float,
                atol: float) -> None:
    """Fail loudly (AssertionError naming the candidate and tensor) if ``got`` differs from ``expected``."""
    if len(expected) != len(got):
        raise AssertionError(f"{name}: {len(got)} result tensors, expected {len(expected)}")
    for i, (e, g) in enumerate(zip(expected, got)):
        torch.testing.assert_close(g, e, rtol=rtol, atol=atol, equal_nan=True,
                                   msg=lambda m, i=i: f"{name}: tensor {i} differs from the baseline: {m}")


def check_candidates(case: str, candidates: list[Candidate], device: str, rtol: float, atol: float,
                     expected: list[torch.Tensor] | None = None, against: str | None = None) -> list[float]:
    """Phase 1: run every candidate once on fresh state and compare the checked ones' results.

    Args:
        case: the row group label (in error messages).
        candidates: the rows; each gets its own ``setup()``.
        device: synchronised around each call.
        rtol, atol: tolerances of the comparison.
        expected: an independent reference result; None: the first checked candidate's result.
        against: how to name ``expected`` in messages (when it is given).

    Returns:
        Each candidate's first-call time in seconds (a warm-up that slow scripts reuse).

    Raises:
        AssertionError naming the case and the candidate that differs (or that its ``verify`` rejects).
    """
    first_s = []
    for cand in candidates:
        state = cand.setup()
        synchronize(device)
        start = time.perf_counter()
        cand.run(state)
        synchronize(device)
        first_s.append(time.perf_counter() - start)
        if cand.check:
            got = cand.result(state)
            if expected is None:
                expected, against = got, cand.name
            else:
                check_close(f"{case} / {cand.name} vs {against}", expected, got, rtol, atol)
        if cand.verify is not None:
            cand.verify(state)
        del state
    return first_s


def timing_row(name: str, role: str, t: Timing, **extra: Any) -> dict:
    """A JSON row: name, role, the timing fields and the IQR, then ``extra``."""
    return {"name": name, "role": role, **dataclasses.asdict(t), "iqr_us": t.q3_us - t.q1_us, **extra}


def finish_case(case: dict, vs: str | None = None, vs_key: str | None = None) -> dict:
    """Fill in ``fastest_baseline`` and each timed row's ``speedup_vs_fastest_baseline`` (> 1: faster
    than the fastest baseline of this run; None when no baseline ran); with ``vs_key``, also
    ``row[vs_key]`` = row ``vs``'s median / this row's (None when ``vs`` did not run)."""
    timed = [r for r in case["rows"] if r.get("median_us") is not None]
    baselines = [r for r in timed if r.get("role") == "baseline"]
    fastest = min(baselines, key=lambda r: r["median_us"]) if baselines else None
    case["fastest_baseline"] = fastest["name"] if fastest else None
    other = next((r for r in timed if r["name"] == vs), None) if vs else None
    for r in timed:
        r["speedup_vs_fastest_baseline"] = fastest["median_us"] / r["median_us"] if fastest else None
        if vs_key is not None:
            r[vs_key] = other["median_us"] / r["median_us"] if other else None
    return case


def run_case(case: str, candidates: list[Candidate], device: str, quick: bool, rtol: float = 0.0,
             atol: float = 0.0, nbytes: int | None = None) -> dict:
    """Check every candidate against the first one (a baseline), then time each.

    Args:
        case: the row group label (a critic's name).
        candidates: the first must have role ``"baseline"``; it is the correctness reference.
        device: where the tensors live (``"cpu"`` or ``"cuda"``).
        quick: shorter timing.
        rtol, atol: tolerances of the correctness check (0 = bit-exact, right for clamping).
        nbytes: bytes a single pass must read + write (the memory-bound minimum); gives a GB/s column.

    Returns:
        A JSON-ready dict: the case, rows with medians/IQR/speedups, and the fastest baseline.
    """
    assert candidates and candidates[0].role == "baseline", "the first candidate is the reference"
    assert candidates[0].check, "the first candidate is the reference"
    # Phase 1: correctness of everything before timing anything. Each candidate gets fresh inputs.
    check_candidates(case, candidates, device, rtol, atol)
    # Phase 2: timing, all candidates' states alive at once so that their samples can interleave.
    states = [cand.setup() for cand in candidates]
    timings = time_interleaved([lambda st=st, c=cand: c.run(st) for cand, st in zip(candidates, states)],
                               device, quick)
    del states
    rows = []
    for cand, t in zip(candidates, timings):
        extra = {} if nbytes is None else {"gb_per_s": nbytes / (t.median_us * 1e-6) / 1e9}
        rows.append(timing_row(cand.name, cand.role, t, **extra))
        print(f"  {case:<14} {cand.name:<38} {t.median_us:>12.1f} us", file=sys.stderr, flush=True)
    return finish_case({"case": case, "fastest_baseline": None, "bytes_per_call": nbytes, "rows": rows})


def row(case: dict, role_or_name: str) -> dict | None:
    """The first row of ``case`` whose role or name is ``role_or_name``; ``"best"`` = fastest baseline."""
    if role_or_name == "best":
        role_or_name = case["fastest_baseline"]
    return next((r for r in case["rows"] if role_or_name in (r["role"], r["name"])), None)


def ratio(cases: dict[str, dict], case: str, num: str, den: str) -> float | None:
    """median time of row ``num`` / median time of row ``den`` in ``cases[case]`` (None if absent)."""
    c = cases.get(case)
    a, b = (None, None) if c is None else (row(c, num), row(c, den))
    return None if a is None or b is None else a["median_us"] / b["median_us"]


def target(name: str, value: float | None, op: str, threshold: float) -> dict:
    """One target's outcome: ``met`` is None when the case was not run (skipped)."""
    compare = {"<": lambda v: v < threshold, "<=": lambda v: v <= threshold,
               ">=": lambda v: v >= threshold, ">": lambda v: v > threshold}
    if op not in compare:
        raise ValueError(f"op: expected one of {sorted(compare)}, got {op!r}")
    met = None if value is None else compare[op](value)
    return {"target": name, "value": value, "op": op, "threshold": threshold, "met": met}


def print_targets(targets: list[dict]) -> None:
    """Print each target as MET / MISSED / not measured (the numbers are reported, never asserted)."""
    print("targets:")
    for t in targets:
        status = {True: "MET", False: "MISSED", None: "not measured"}[t["met"]]
        value = "n/a" if t["value"] is None else f"{t['value']:.2f}"
        print(f"  {status:<12} {t['target']}: {value} (target {t['op']} {t['threshold']})")


def device_label(device: str) -> str:
    """``cpu``, or ``cuda-<gpu>`` from the device name (e.g. ``NVIDIA H100 80GB HBM3`` -> ``cuda-h100``)."""
    if not device.startswith("cuda"):
        return "cpu"
    words = [w for w in torch.cuda.get_device_name().replace("-", " ").split()
             if w.lower() not in ("nvidia", "geforce", "tesla")]
    picked = []
    for w in words:  # words up to the first with a digit: "H100", "RTX 4090", "A100"
        picked.append(w.lower())
        if any(c.isdigit() for c in w):
            break
    return "cuda-" + ("-".join(picked) or "gpu")


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _command() -> str:
    """The command line as typed: ``python -m pygan bench ...`` shows as such, not as a __main__.py path."""
    argv = list(sys.argv)
    if argv and argv[0].endswith("__main__.py"):
        argv[0:1] = ["-m", Path(argv[0]).resolve().parent.name]
    return " ".join(["python", *argv])


def machine_info(device: str) -> dict:
    """Everything needed to interpret (and reproduce) the numbers: hardware, versions, build, command."""
    import pygan._build as build

    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": _command(),
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("PYGAN_", "OMP_", "MKL_", "CUDA_VISIBLE", "TORCH_CUDA_ARCH"))},
        "cwd": os.getcwd(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pygan_build": {k: v for k, v in dataclasses.asdict(build.info()).items() if k != "sources"},
    }
    try:
        import pygan

        info["pygan_version"] = getattr(pygan, "__version__", None)
    except ImportError:
        info["pygan_version"] = None
    if device.startswith("cuda"):
        info["cuda_device"] = torch.cuda.get_device_name()
        info["cuda_version"] = torch.version.cuda
    return info


def require_extension(device: str) -> None:
    """Load pygan's compiled kernels or fail: timing the reference fallback would be meaningless."""
    import pygan._build as build

    if not build.load():  # PYGAN_REQUIRE_EXT=1 already makes a failed build raise
        raise RuntimeError("pygan's compiled extension is not loaded; refusing to benchmark the fallback")
    if device.startswith("cuda") and not build.info().cuda_sources:
        raise RuntimeError("pygan was built without CUDA kernels; cannot benchmark on CUDA "
                           "(see `python -m pygan info`, PYGAN_BUILD_CUDA)")


def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]  # total, idle + iowait


def load_check() -> float | None:
    """Measure how busy the CPUs are while this process sleeps; warn when others compete for them.

    Returns:
        The busy fraction of all CPUs over 0.5 s (0 = idle, 1 = all busy; None where /proc/stat is
        missing). Stored in the JSON so a reader can judge how quiet the run was: on a shared machine
        someone else's compile makes CPU medians meaningless.
    """
    try:
        total0, idle0 = _cpu_times()
        time.sleep(0.5)  # we are idle now, so what is busy is someone else
        total1, idle1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    busy = 1.0 - (idle1 - idle0) / max(total1 - total0, 1)
    if busy > 0.1:
        print(f"WARNING: other processes kept {busy:.0%} of the {os.cpu_count()} CPUs busy before "
              "timing; CPU timings will be noisy (rerun on a quiet machine)", file=sys.stderr)
    return busy


@dataclasses.dataclass
class Column:
    """One column of a table on screen: its header, width, alignment and how to fill a cell."""

    header: str
    width: int
    cell: Callable[[dict, dict], str]  # (case, row) -> text
    align: str = ">"  # "<" for text columns


def print_rows(title: str, cases: list[dict], columns: list[Column], note: Callable[[dict, dict], str]) -> None:
    """Print a table: the title, a header, one line per row of each case (then a blank line), and a
    free-text note at the end of each line."""
    print(f"\n{title}")
    head = " ".join(f"{c.header:{c.align}{c.width}}" for c in columns) + "  note"
    print(head)
    print("-" * len(head))
    for case in cases:
        for r in case["rows"]:
            print(" ".join(f"{c.cell(case, r):{c.align}{c.width}}" for c in columns) + f"  {note(case, r)}")
        print()


def print_table(title: str, cases: list[dict], extra: Callable[[dict, dict], str] | None = None) -> None:
    """Print one block per case: median, IQR, speedup vs the fastest baseline (and GB/s if known)."""
    columns = [Column("case", 14, lambda c, r: c["case"], "<"),
               Column("candidate", 34, lambda c, r: r["name"], "<"),
               Column("median us", 11, lambda c, r: f"{r['median_us']:.1f}"),
               Column("IQR us", 9, lambda c, r: f"{r['iqr_us']:.1f}"),
               Column("vs best", 8, lambda c, r: f"{r['speedup_vs_fastest_baseline']:.2f}x"),
               Column("GB/s", 7, lambda c, r: "" if r.get("gb_per_s") is None else f"{r['gb_per_s']:.1f}")]

    def note(case: dict, r: dict) -> str:
        text = "fastest baseline" if r["name"] == case["fastest_baseline"] else ""
        return text if extra is None else " ".join(s for s in (text, extra(case, r)) if s)

    print_rows(title, cases, columns, note)


def write_json(out_dir: Path, bench: str, device: str, payload: dict) -> Path:
    """Write ``<out_dir>/<bench>_<device label>.json`` with the machine info added; return the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    label = device_label(device)
    path = out_dir / f"{bench}_{label}.json"
    data = {"benchmark": bench, "device": label, "machine": machine_info(device), **payload}
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")
    return path


PUBLISHED = Path("bench") / "results"  # the tracked results of a checkout, relative to its root


def fresh_out_dir(parent: Path = Path("pygan-bench-results")) -> Path:
    """A new folder for this run's JSON: ``<parent>/<UTC date-time>[-k]/``, never an existing one.

    A run never overwrites earlier results unless asked to (``--publish`` or ``--out``): a quick smoke
    run must not replace the numbers the docs quote.
    """
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    path, k = parent / stamp, 1
    while path.exists():
        k += 1
        path = parent / f"{stamp}-{k}"
    return path


def parse_args(argv: list[str] | None, prog: str, with_only: bool) -> argparse.Namespace:
    """The options every entry point shares (``python -m pygan bench`` and each script).

    ``--out DIR`` writes there; ``--publish`` updates the checkout's ``bench/results/`` (a full run
    only); neither: a fresh ``./pygan-bench-results/<date-time>/``. Bad combinations exit 2.
    """
    p = argparse.ArgumentParser(prog=prog, description="pygan benchmarks: correctness check, then timing.")
    if with_only:
        from . import BENCHMARKS  # here, not at the top: bench/__init__ imports this module lazily

        names = ",".join(BENCHMARKS)
        p.add_argument("--only", default=names, help=f"comma-separated benchmarks (default: all of {names})")
    p.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                   help="all = cpu, plus cuda when torch.cuda.is_available()")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=None,
                       help="JSON output dir (default: a fresh ./pygan-bench-results/<date-time>/)")
    where.add_argument("--publish", action="store_true",
                       help=f"update the tracked results in {PUBLISHED}/ (run from a checkout's root; "
                            "not with --quick)")
    p.add_argument("--quick", action="store_true", help="short timing (smoke run, not for publishing)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = p.parse_args(argv)
    if args.publish:
        if args.quick:
            p.error("--publish: a --quick run is a smoke test, not numbers to publish; drop --quick "
                    "(or pass --out DIR)")
        if not PUBLISHED.is_dir():
            p.error(f"--publish: no {PUBLISHED}/ here; run from the root of a pygan checkout (or pass --out DIR)")
        args.out = PUBLISHED
    elif args.out is None:
        args.out = fresh_out_dir()
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def devices(choice: str) -> list[str]:
    """Resolve ``--device`` into the list of devices to run on (error if CUDA was asked for but absent)."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False")
    if choice == "cpu" or not torch.cuda.is_available():
        return ["cpu"]
    return ["cuda"] if choice == "cuda" else ["cpu", "cuda"]


def script_main(run: Callable[[str, Path | None, bool], dict], argv: list[str] | None, prog: str) -> int:
    """``python bench/<name>.py``: parse the shared options (minus ``--only``) and run on each device.

    Args:
        run: the script's ``run(device, out_dir, quick)``.
        argv: command-line arguments without the program name.
        prog: the program name shown in ``--help``.

    Returns:
        0 (failures raise).
    """
    args = parse_args(argv, prog, with_only=False)
    for device in devices(args.device):
        run(device, args.out, args.quick)
    return 0
