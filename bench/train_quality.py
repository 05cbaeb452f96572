"""Training quality of ``python -m pygan train``: the final exact W1 of every loss on every toy dataset,
over several seeds, with pictures (docs/train_quality.md).

Each run is a subprocess ``python -m pygan train --loss L --data D --seed S --out RUNS/L/D/sS
--no-progress --force [extra trainer flags]`` with ``OMP_NUM_THREADS=1`` and ``PYGAN_REQUIRE_EXT=1``
(so each run uses one core and never silently falls back to the reference ops). Runs are independent,
``--jobs N`` runs N at a time.

Restartable: a run whose ``metrics.jsonl`` already holds its final step is skipped; a run with a
``checkpoint.pt`` but no final record (interrupted) is continued with ``--resume``; anything else is
started afresh with ``--force``.

Extra rows (``--extra-row "LABEL|LOSS|DATA|FLAGS"``, e.g. ``"wgan-gp, λ = 10|wgan-gp|8gaussians|
--penalty-weight 10"``) run into ``RUNS/<slug of LABEL>/DATA/sS`` with the common trainer flags plus
FLAGS, after the losses (``--order loss``) or after the losses of each seed (``--order seed``).

Order: the first loss of ``--losses`` runs first, all datasets and seeds; then ``--order loss`` runs
the other rows one after the other, ``--order seed`` runs every other row for seed 0, then seed 1, ...
(so that a matrix cut short by a deadline has every cell at least once). ``--list`` prints the order.

Collected per run (from ``metrics.jsonl`` and the final checkpoint):

* final W1 (the exact W1 of the last evaluation: 1000 generated samples, always from the same fixed
  noise ``trainer.eval_z``, vs 1000 held-out real samples), best W1 over the evaluations, final
  critic estimate (−L_D without the penalty), steps, wall time of the subprocess, mean step time;
* for the W losses, how the critic estimate tracks W1: Pearson correlation over the evaluations at
  step >= 1 and the final ratio estimate / W1;
* for the Gaussian mixtures, mode statistics of exactly the 1000 samples W1 was measured on (the
  generator rebuilt with ``pygan.train.build(TrainConfig(..., resume=True))``, samples
  ``trainer.sample(z=trainer.eval_z)``). Every sample is assigned to its nearest centre;
  ``modes`` = number of centres with at least 1% of the samples (10 of 1000) within ``R_MODE`` = 0.1
  of them (0.1 is 7σ of a 8gaussians component and 5.7σ of a 25gaussians one, and under a quarter
  of the distance between neighbouring centres: 1.08 and 0.71, so no sample is ambiguous);
  ``hq`` = fraction of samples within 0.1 of their centre, ``hq3`` = fraction within 3σ (the
  strict rule of VEEGAN / PacGAN's 2-D experiments; σ = 0.02/1.414 and 0.05/2.828). The same numbers
  for 1000 real samples are reported as the reference.

Also the "sampling floor": the exact W1 between two independent 1000-point samples of each dataset
(what a perfect generator would score, since W1 is measured between finite samples).

Writes ``--json`` (default: ``train_quality_cpu.json`` in a fresh ``./pygan-bench-results/<date-time>/``;
``--publish``: the tracked ``bench/results/train_quality_cpu.json``), prints a markdown table, and draws
into ``--img-dir`` (default: ``img/`` beside that JSON; ``--publish``: ``docs/img/train/``)
``quality_seed0.png`` (seed 0's samples.png of every run, rows = losses, columns =
datasets) and ``docs/img/train/wgan_gp_8gaussians_w1.png`` (W1 and the critic estimate vs step of
the wgan-gp / 8gaussians runs, all seeds; the same for each extra row, e.g.
``wgan_gp_lambda_10_8gaussians_w1.png``).

Usage::

    python bench/train_quality.py [--losses ...] [--datasets ...] [--seeds 0 1 2] [--jobs 1]
        [--runs-dir runs/quality] [--order loss|seed] [--extra-row "LABEL|LOSS|DATA|FLAGS"]
        [--collect-only] [--list] [--json PATH] [--img-dir DIR] [--publish]
        [-- extra trainer flags, e.g. --steps 1000 --hidden 256 --eval-every 100]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if not __package__:  # `python bench/train_quality.py`: run as a module of the bench package (PEP 366)
    sys.path.insert(0, str(ROOT))
    __package__ = "bench"

from . import _harness as H  # noqa: E402

LOSSES = ("gan", "nsgan", "wgan", "wgan-gp", "wgan-gp-one-sided", "nsgan-r1", "wgan-fd")
DATASETS = ("8gaussians", "25gaussians", "swissroll")
W_LOSSES = {"wgan", "wgan-gp", "wgan-gp-one-sided", "wgan-fd"}
R_MODE = 0.1
MODE_MIN_FRAC = 0.01
SIGMA = {"8gaussians": 0.02 / 1.414, "25gaussians": 0.05 / 2.828}
FLOOR_SEEDS = 5


# ------------------------------------------------------------------------------------------- runs
class Run:
    def __init__(self, label: str, loss: str, data: str, seed: int, flags: list[str], runs_dir: Path):
        self.label, self.loss, self.data, self.seed, self.flags = label, loss, data, seed, flags
        self.out = runs_dir / slug(label) / data / f"s{seed}"
        from pygan.train.cli import parser

        args = parser().parse_args(self.argv())  # validates the flags, gives steps / eval_every
        self.steps = args.steps
        self.args = args

    def argv(self) -> list[str]:
        return ["--loss", self.loss, "--data", self.data, "--seed", str(self.seed), "--out", str(self.out),
                "--no-progress", *self.flags]

    def records(self) -> list[dict]:
        path = self.out / "metrics.jsonl"
        if not path.exists():
            return []
        recs = []
        for line in path.read_text().splitlines():
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return recs

    def finished(self) -> bool:
        return any(r.get("step") == self.steps and r.get("w1") is not None for r in self.records())

    def name(self) -> str:
        return f"{self.label}/{self.data}/s{self.seed}"


def slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", label.replace("λ", "lambda")).strip("_")


def execute(run: Run, log) -> dict:
    """Run (or resume, or skip) one training; returns {status, wall_s, rc}."""
    timing = run.out / "bench_time.json"
    if run.finished():
        prev = json.loads(timing.read_text()) if timing.exists() else {}
        log(f"skip    {run.name()} (finished)")
        return {"status": "skipped (finished earlier)", "wall_s": prev.get("wall_s"), "rc": 0}
    resume = (run.out / "checkpoint.pt").exists() and bool(run.records())
    cmd = [sys.executable, "-m", "pygan", "train", *run.argv(), "--resume" if resume else "--force"]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYGAN_REQUIRE_EXT="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    log(f"{'resume' if resume else 'start '}  {run.name()}")
    run.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    (run.out / "train.log").write_text(proc.stdout)
    prev = json.loads(timing.read_text()) if (resume and timing.exists()) else {}
    total = wall + (prev.get("wall_s") or 0.0)
    timing.write_text(json.dumps({"wall_s": total, "resumed": resume or prev.get("resumed", False)}) + "\n")
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    log(f"{'done' if proc.returncode == 0 else 'FAILED'}    {run.name()} rc={proc.returncode} "
        f"{wall:.0f} s  {last}")
    return {"status": "ran" + (" (resumed)" if resume else ""), "wall_s": total, "rc": proc.returncode}


# ------------------------------------------------------------------------------------------- metrics
def centres(data: str):
    import torch

    if data == "8gaussians":
        s = 1 / math.sqrt(2)
        c = torch.tensor([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)],
                         dtype=torch.float64) * 2
        return c / 1.414
    if data == "25gaussians":
        grid = torch.arange(-2, 3, dtype=torch.float64) * 2
        return torch.cartesian_prod(grid, grid) / 2.828
    return None


def mode_stats(x, data: str) -> dict | None:
    """Modes covered and high-quality fractions of samples x [N, 2] (module docstring)."""
    import torch

    c = centres(data)
    if c is None:
        return None
    x = x.detach().double().cpu()
    d = torch.cdist(x, c)
    dmin, idx = d.min(dim=1)
    near = dmin <= R_MODE
    counts = torch.bincount(idx[near], minlength=c.shape[0])
    n = x.shape[0]
    return {"modes": int((counts >= MODE_MIN_FRAC * n).sum()), "n_modes": int(c.shape[0]),
            "hq": float(near.double().mean()), "hq3": float((dmin <= 3 * SIGMA[data]).double().mean()),
            "min_mode_count": int(counts.min()), "max_mode_count": int(counts.max())}


def generated_samples(run: Run):
    """The 1000 samples the final W1 was measured on (the final checkpoint's generator, fixed noise)."""
    import torch

    from pygan.train import TrainConfig, build

    cfg = TrainConfig(**{**vars(run.args), "resume": True, "force": False, "progress": False,
                         "plots": False, "device": "cpu"})
    torch.set_num_threads(1)
    trainer = build(cfg)
    return trainer.sample(z=trainer.eval_z), trainer.step


def optimizer_impl(path: Path) -> dict:
    """How the checkpoint's optimisers were implemented ({"g": "fused" | "foreach" | "default", "d": ...}):
    the trainer's choice can change between versions (same math, other rounding and speed)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for key, name in (("g", "g_optimizer"), ("d", "d_optimizer")):
        group = state[name]["param_groups"][0]
        out[key] = "fused" if group.get("fused") else "foreach" if group.get("foreach") else "default"
    return out


def pearson(a: list[float], b: list[float]) -> float | None:
    if len(a) < 3:
        return None
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    if va == 0 or vb == 0:
        return None
    return sum((x - ma) * (y - mb) for x, y in zip(a, b)) / math.sqrt(va * vb)


def collect(run: Run, outcome: dict) -> dict:
    row = {"label": run.label, "loss": run.loss, "data": run.data, "seed": run.seed, "out": str(run.out),
           "flags": run.flags, "status": outcome.get("status"), "rc": outcome.get("rc"),
           "wall_s": outcome.get("wall_s"), "finished": run.finished(), "steps_target": run.steps}
    recs = [r for r in run.records() if r.get("w1") is not None]
    if not recs:
        return row
    last = recs[-1]
    row["train_elapsed_s"] = last.get("elapsed")  # fit()'s own clock (the last session, if resumed)
    trained = [r for r in recs if r["step"] >= 1]
    times = [r["step_time"] for r in trained if r.get("step_time")]
    row.update(steps=last["step"], w1_final=last["w1"], w1_best=min(r["w1"] for r in recs),
               w1_best_step=min(recs, key=lambda r: r["w1"])["step"], w1_init=recs[0]["w1"],
               critic_estimate_final=last["critic_estimate"],
               step_time_mean=statistics.fmean(times) if times else None,
               curve=[[r["step"], r["w1"], r["critic_estimate"]] for r in recs])
    if run.loss in W_LOSSES and trained:
        row["estimate_w1_pearson"] = pearson([r["w1"] for r in trained], [r["critic_estimate"] for r in trained])
        row["estimate_over_w1_final"] = last["critic_estimate"] / last["w1"] if last["w1"] else None
    if (run.out / "checkpoint.pt").exists():
        row["optimizers"] = optimizer_impl(run.out / "checkpoint.pt")
    if row["wall_s"] is None:
        row["wall_s_note"] = "no subprocess timing recorded (the driver was restarted during this run)"
    # Only finished runs: build(resume=True) rewrites metrics.jsonl up to the checkpoint's step, which
    # must not happen under a run that is still training (a --collect-only beside a live matrix).
    if run.data in SIGMA and row["finished"] and (run.out / "checkpoint.pt").exists():
        try:
            x, step = generated_samples(run)
            row["mode_stats"] = mode_stats(x, run.data)
            row["mode_stats_step"] = step
        except Exception as exc:  # report, do not hide
            row["mode_stats_error"] = f"{type(exc).__name__}: {exc}"
    return row


def summary(values: list[float]) -> dict:
    return {"n": len(values), "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0, "min": min(values), "max": max(values)}


def aggregate(rows: list[dict]) -> list[dict]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["label"], r["data"]), []).append(r)
    out = []
    for (label, data), rs in groups.items():
        done = [r for r in rs if r.get("finished")]
        g = {"label": label, "loss": rs[0]["loss"], "data": data, "runs": len(rs), "finished": len(done),
             "seeds_finished": [r["seed"] for r in done]}
        if done:
            g["w1_final"] = summary([r["w1_final"] for r in done])
            g["w1_best"] = summary([r["w1_best"] for r in done])
            g["critic_estimate_final"] = summary([r["critic_estimate_final"] for r in done])
            walls = [r["wall_s"] for r in done if r.get("wall_s") is not None]
            if walls:
                g["wall_s"] = summary(walls)
            ms = [r["mode_stats"] for r in done if r.get("mode_stats")]
            if ms:
                g["modes"] = [m["modes"] for m in ms]
                g["n_modes"] = ms[0]["n_modes"]
                g["hq"] = summary([m["hq"] for m in ms])
                g["hq3"] = summary([m["hq3"] for m in ms])
            ps = [r["estimate_w1_pearson"] for r in done if r.get("estimate_w1_pearson") is not None]
            if ps:
                g["estimate_w1_pearson"] = summary(ps)
            ratios = [r["estimate_over_w1_final"] for r in done if r.get("estimate_over_w1_final") is not None]
            if ratios:
                g["estimate_over_w1_final"] = summary(ratios)
        out.append(g)
    return out


def sampling_floor(datasets: list[str], n: int = 1000) -> dict:
    import torch

    from pygan import ot
    from pygan.train import toy_sample

    floor = {}
    for data in datasets:
        w1s, ref_modes = [], []
        for s in range(FLOOR_SEEDS):
            a = toy_sample(data, n, generator=torch.Generator().manual_seed(10_000 + 2 * s))
            b = toy_sample(data, n, generator=torch.Generator().manual_seed(10_001 + 2 * s))
            w1s.append(float(ot.emd2_points(a.double(), b.double(), metric="euclidean")))
            ms = mode_stats(a, data)
            if ms:
                ref_modes.append(ms)
        floor[data] = {"w1": summary(w1s), "w1_values": w1s, "n": n, "seeds": FLOOR_SEEDS}
        if ref_modes:
            floor[data]["real_mode_stats"] = {"modes": [m["modes"] for m in ref_modes],
                                              "hq": summary([m["hq"] for m in ref_modes]),
                                              "hq3": summary([m["hq3"] for m in ref_modes])}
    return floor


# ------------------------------------------------------------------------------------------- output
def fmt_cell(g: dict | None) -> str:
    if not g or "w1_final" not in g:
        return "not run" if not g else f"0/{g['runs']} finished"
    s = g["w1_final"]
    cell = f"{s['mean']:.3f} ± {s['std']:.3f} ({s['min']:.3f}–{s['max']:.3f})"
    if g["finished"] < g["runs"]:
        cell += f" **[{g['finished']}/{g['runs']} seeds]**"
    return cell


def fmt_modes(g: dict | None) -> str:
    if not g or "modes" not in g:
        return "–"
    return f"{'/'.join(str(m) for m in g['modes'])} of {g['n_modes']}, hq {100 * g['hq']['mean']:.0f}%"


def markdown(groups: list[dict], labels: list[str], datasets: list[str], floor: dict) -> str:
    by = {(g["label"], g["data"]): g for g in groups}
    head = ["loss"] + [f"{d} W1" for d in datasets] + [f"{d} modes" for d in datasets if d in SIGMA]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for label in labels:
        cells = [label] + [fmt_cell(by.get((label, d))) for d in datasets]
        cells += [fmt_modes(by.get((label, d))) for d in datasets if d in SIGMA]
        lines.append("| " + " | ".join(cells) + " |")
    fl = ["sampling floor (real vs real)"]
    for d in datasets:
        s = floor[d]["w1"]
        fl.append(f"{s['mean']:.3f} ± {s['std']:.3f} ({s['min']:.3f}–{s['max']:.3f})")
    for d in datasets:
        if d in SIGMA:
            r = floor[d]["real_mode_stats"]
            fl.append(f"{'/'.join(str(m) for m in r['modes'])} of {len(centres(d))}, hq {100 * r['hq']['mean']:.0f}%")
    lines.append("| " + " | ".join(fl) + " |")
    return "\n".join(lines)


def _figure(w: float, h: float, dpi: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def montage(runs: list[Run], labels: list[str], datasets: list[str], seed: int, path: Path) -> None:
    import matplotlib.image as mpimg

    by = {(r.label, r.data): r for r in runs if r.seed == seed}
    panel = 2.0
    fig = _figure(panel * len(datasets) + 0.9, panel * len(labels) + 0.3, dpi=80)
    for i, label in enumerate(labels):
        for j, data in enumerate(datasets):
            ax = fig.add_subplot(len(labels), len(datasets), i * len(datasets) + j + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            r = by.get((label, data))
            png = r.out / "samples.png" if r else None
            if png is not None and png.exists():
                ax.imshow(mpimg.imread(png))
                if not r.finished():
                    ax.set_title("unfinished", fontsize=7, color="red")
            else:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", fontsize=8, transform=ax.transAxes)
            for side in ax.spines.values():
                side.set_visible(False)
            if i == 0:
                ax.set_title(data, fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.subplots_adjust(left=0.09, right=0.99, top=0.97, bottom=0.01, wspace=0.02, hspace=0.06)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def w1_figure(rows: list[dict], label: str, data: str, floor: float | None, path: Path) -> None:
    sel = sorted((r for r in rows if r["label"] == label and r["data"] == data and r.get("curve")),
                 key=lambda r: r["seed"])
    if not sel:
        return
    fig = _figure(6.0, 3.6, dpi=90)
    ax = fig.add_subplot(1, 1, 1)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for k, r in enumerate(sel):
        c = colours[k % len(colours)]
        steps = [p[0] for p in r["curve"]]
        ax.plot(steps, [p[1] for p in r["curve"]], "-o", ms=3, color=c, label=f"exact W1, seed {r['seed']}")
        ax.plot(steps, [p[2] for p in r["curve"]], "--", color=c, alpha=0.8, label=f"critic estimate, seed {r['seed']}")
    if floor is not None:
        ax.axhline(floor, color="gray", lw=1, ls=":", label=f"sampling floor {floor:.3f}")
    values = [v for r in sel for p in r["curve"] for v in p[1:] if v is not None]
    if values and min(values) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("generator step")
    ax.set_ylabel("exact W1 (1000 vs 1000) / estimate")
    ax.set_title(f"{label} on {data}: exact W1 and the critic's estimate", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict:
    import torch

    cpu = H.cpu_model()
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "threads_per_run": 1,
            "loadavg_at_collection": _loadavg(), "date": now}


# ------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    extra: list[str] = []
    if "--" in argv:
        k = argv.index("--")
        argv, extra = argv[:k], argv[k + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (each uses one thread)")
    p.add_argument("--runs-dir", default="runs/quality")
    p.add_argument("--order", choices=("loss", "seed"), default="loss",
                   help="loss: every run of a row before the next row; seed: every row (losses, then "
                        "extra rows) for seed 0, then seed 1, ... (the first loss of --losses always "
                        "goes first, all its seeds)")
    p.add_argument("--extra-row", action="append", default=[], metavar="LABEL|LOSS|DATA|FLAGS",
                   help="an extra table row (e.g. the same loss with other flags): the common flags plus FLAGS")
    p.add_argument("--collect-only", action="store_true", help="run nothing; collect what is there")
    p.add_argument("--list", action="store_true", help="print the runs in their order and exit")
    p.add_argument("--json", default=None, help="default: a fresh ./pygan-bench-results/<date-time>/"
                                                "train_quality_cpu.json (--publish: bench/results/)")
    p.add_argument("--img-dir", default=None, help="default: img/ beside --json (--publish: docs/img/train/)")
    p.add_argument("--publish", action="store_true",
                   help="update the tracked bench/results/train_quality_cpu.json and docs/img/train/")
    p.add_argument("--montage-seed", type=int, default=0)
    args = p.parse_args(argv)
    # Never overwrite the tracked results unless asked: a trial run must not replace the docs' numbers.
    if args.json is None:
        args.json = str(ROOT / "bench/results/train_quality_cpu.json" if args.publish
                        else H.fresh_out_dir() / "train_quality_cpu.json")
    if args.img_dir is None:
        args.img_dir = str(ROOT / "docs/img/train" if args.publish else Path(args.json).parent / "img")
    runs_dir = Path(args.runs_dir)

    # Rows: (label, loss, datasets, trainer flags); the extra rows after the losses.
    rows_spec = [(l, l, list(args.datasets), extra) for l in args.losses]
    for spec_ in args.extra_row:
        label, loss, data, flags = (spec_.split("|") + ["", "", ""])[:4]
        rows_spec.append((label, loss, [data], extra + shlex.split(flags)))
    labels = [r[0] for r in rows_spec]
    first, rest = rows_spec[0], rows_spec[1:]
    runs: list[Run] = [Run(first[0], first[1], d, s, first[3], runs_dir) for d in first[2] for s in args.seeds]
    if args.order == "loss":
        runs += [Run(lab, l, d, s, fl, runs_dir) for lab, l, ds, fl in rest for d in ds for s in args.seeds]
    else:
        runs += [Run(lab, l, d, s, fl, runs_dir) for s in args.seeds for lab, l, ds, fl in rest for d in ds]

    if args.list:
        for k, r in enumerate(runs):
            print(f"{k:3d} {r.name():45s} {'finished' if r.finished() else ''} {' '.join(r.flags)}")
        return 0
    t_start = time.perf_counter()
    logf = sys.stdout

    def log(msg: str) -> None:
        stamp = f"{datetime.datetime.now():%H:%M:%S} +{time.perf_counter() - t_start:6.0f}s"
        print(f"[{stamp}] {msg}", file=logf, flush=True)

    log(f"{len(runs)} runs, jobs {args.jobs}, trainer flags {extra}, runs in {runs_dir}")
    outcomes: dict[str, dict] = {}
    if not args.collect_only:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for run, res in zip(runs, pool.map(lambda r: execute(r, log), runs)):
                outcomes[run.name()] = res
    else:
        for run in runs:
            timing = run.out / "bench_time.json"
            wall = json.loads(timing.read_text()).get("wall_s") if timing.exists() else None
            outcomes[run.name()] = {"status": "collected", "wall_s": wall, "rc": None}
    t_runs = time.perf_counter() - t_start

    log("collecting")
    rows = [collect(r, outcomes[r.name()]) for r in runs]
    groups = aggregate(rows)
    floor = sampling_floor(list(args.datasets))
    table = markdown(groups, labels, list(args.datasets), floor)
    img = Path(args.img_dir)
    montage(runs, labels, list(args.datasets), args.montage_seed, img / "quality_seed0.png")
    if "wgan-gp" in labels and "8gaussians" in args.datasets:
        w1_figure(rows, "wgan-gp", "8gaussians", floor["8gaussians"]["w1"]["mean"], img / "wgan_gp_8gaussians_w1.png")
    for spec_ in args.extra_row:  # the extra rows' curves too, e.g. wgan-gp with λ = 10
        label, _, data = (spec_.split("|") + ["", ""])[:3]
        if data in floor:
            w1_figure(rows, label, data, floor[data]["w1"]["mean"],
                      img / f"{slug(label).replace('-', '_').lower()}_{data}_w1.png")

    command = ["python", "bench/train_quality.py", *(a for a in argv if a != "--collect-only")]
    command += ["--", *extra] if extra else []
    walls = [r["wall_s"] for r in rows if r.get("wall_s") is not None]
    result = {"command": " ".join(shlex.quote(c) for c in command), "collect_only": args.collect_only,
              "sum_run_wall_s": sum(walls), "runs_with_wall_s": len(walls),
              "per_run_command": "OMP_NUM_THREADS=1 PYGAN_REQUIRE_EXT=1 python -m pygan train --loss L --data D "
                                 "--seed S --out RUNS/L/D/sS --no-progress --force " + " ".join(extra),
              "trainer_flags": extra, "machine": machine_info(), "runs_wall_s": t_runs,
              "rules": {"modes": f"centres with >= {MODE_MIN_FRAC:.0%} of the samples within {R_MODE} "
                                 "(samples assigned to the nearest centre)",
                        "hq": f"fraction of samples within {R_MODE} of their nearest centre",
                        "hq3": "fraction within 3 sigma of the nearest centre (sigma = 0.02/1.414, 0.05/2.828)"},
              "sampling_floor": floor, "groups": groups, "runs": rows, "table_markdown": table}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(table)
    failed = [r for r in rows if not r.get("finished")]
    log(f"done: {len(rows) - len(failed)}/{len(rows)} runs finished; json {args.json}")
    for r in failed:
        log(f"unfinished: {r['label']}/{r['data']}/s{r['seed']} status {r.get('status')} rc {r.get('rc')}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
