"""Which training tricks help? Each of the five tricks of Salimans et al. 2016 alone against the same
run without it, with the exact W1 and the modes covered (docs/train_quality.md, "Training tricks").

Rows: none (the plain run), feature matching (``--feature-matching``), minibatch discrimination
(``--minibatch-discrimination --minibatch-kernels 8``), historical averaging (``--historical-averaging W``), one-sided
label smoothing (``--label-smoothing 0.9``), virtual batch norm (``--virtual-batchnorm``).
Columns: the losses nsgan and gan on 8gaussians, 25gaussians and swissroll, ``--seeds`` seeds
each; plus one image set (``--image-data``, default shapes) with ``--arch dcgan`` and nsgan.

Every run is ``pygan.train.run(TrainConfig(...))`` in a worker process (``--jobs`` at a time, one
torch thread each), all with the same reduced budget (``--steps``, ``--hidden``, ``--batch-size``;
the defaults are stated in the output and in docs/train_quality.md). Per run: the final exact W1
(``--eval-samples`` generated vs as many held-out real samples; images: flattened pixels), the W1 at
step 0, and for the Gaussian mixtures the modes covered by exactly those samples (a centre is
covered when at least 1% of the samples lie within 0.1 of it, as bench/train_quality.py counts).

Writes ``--json`` (default ``tricks_cpu.json`` in ``./pygan-bench-results/<date-time>/``;
``--publish``: ``bench/results/tricks_cpu.json`` and the pictures into ``docs/img/tricks/``) and
prints the markdown tables.

Usage::

    nice -n 10 python bench/tricks.py [--seeds 0 1 2] [--jobs 2] [--steps 300] [--publish]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TRICKS = {
    "none": {},
    "feature matching": {"feature_matching": True},
    "minibatch discrimination": {"minibatch_discrimination": True, "minibatch_kernels": 8},
    "historical averaging": {"historical_averaging": None},  # --ha-weight
    "label smoothing 0.9": {"label_smoothing": 0.9},
    "virtual batch norm": {"virtual_batchnorm": True},
}
TOY = ("8gaussians", "25gaussians", "swissroll")
LOSSES = ("nsgan", "gan")


def one_run(job: dict) -> dict:
    """Train one configuration in this (worker) process; return its row."""
    os.environ.setdefault("PYGAN_REQUIRE_EXT", "1")
    import torch

    torch.set_num_threads(1)
    from pygan.train import TrainConfig, run

    t0 = time.perf_counter()
    cfg = TrainConfig(**job["cfg"])
    if job.get("collect"):  # a finished run: rebuild it from its checkpoint (no training)
        from pygan.train import build

        cfg.resume, cfg.force = True, False
        trainer = build(cfg)
        if trainer.step < cfg.steps or not trainer.history:
            raise RuntimeError(f"{cfg.out} is not finished (step {trainer.step})")
        if trainer.run_lock is not None:
            trainer.run_lock.release()
    else:
        trainer = run(cfg)
    hist = trainer.history
    row = {"trick": job["trick"], "loss": cfg.loss, "data": cfg.data, "seed": cfg.seed, "steps": trainer.step,
           "w1": hist[-1]["w1"], "w1_step0": hist[0]["w1"], "best_w1": min(h["w1"] for h in hist),
           "wall_s": time.perf_counter() - t0, "train_s": hist[-1].get("elapsed"), "out": cfg.out}
    if cfg.data in ("8gaussians", "25gaussians"):
        from bench.train_quality import mode_stats

        ms = mode_stats(trainer.sample(z=trainer.eval_z).cpu().double(), cfg.data)
        row.update(modes=ms["modes"], n_modes=ms["n_modes"], hq=ms["hq"])
    return row


def jobs(args) -> list[dict]:
    out = []
    common = dict(steps=args.steps, eval_every=args.steps, ckpt_every=args.steps, eval_samples=args.eval_samples,
                  progress=False, plots=True, force=True, device="cpu", threads=1)
    for seed in args.seeds:  # seed-major: a run cut short still has every cell once
        for trick, opts in TRICKS.items():
            if args.tricks and trick not in args.tricks:
                continue
            opts = {k: (args.ha_weight if v is None else v) for k, v in opts.items()}
            for loss in LOSSES:
                for data in TOY:
                    out.append({"trick": trick, "cfg": dict(common, loss=loss, data=data, seed=seed, hidden=args.hidden,
                                                            layers=3, batch_size=args.batch_size,
                                                            out=str(args.runs_dir / slug(trick) / loss / data / f"s{seed}"),
                                                            **opts)})
            if args.image_data and seed in args.image_seeds:
                out.append({"trick": trick, "cfg": dict(common, loss="nsgan", data=args.image_data, seed=seed,
                                                        arch="dcgan", dcgan_width=args.dcgan_width, batch_size=args.image_batch,
                                                        steps=args.image_steps, eval_every=args.image_steps,
                                                        ckpt_every=args.image_steps,
                                                        out=str(args.runs_dir / slug(trick) / "nsgan" / args.image_data
                                                                / f"s{seed}"), **opts)})
    return out


def slug(s: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in s).strip("_")


def mean(v):
    return sum(v) / len(v) if v else float("nan")


def table(rows: list[dict], datasets, losses) -> str:
    lines = []
    for loss in losses:
        head = ["trick"] + [f"{d} W1" for d in datasets] + [f"{d} modes" for d in datasets if "gaussians" in d]
        lines += [f"\n**{loss}** (final exact W1, mean over seeds [each seed]; modes covered per seed)\n",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for trick in TRICKS:
            cells = [trick]
            for d in datasets:
                r = sorted((x for x in rows if x["trick"] == trick and x["loss"] == loss and x["data"] == d),
                           key=lambda x: x["seed"])
                cells.append(f"{mean([x['w1'] for x in r]):.3f} [{' '.join(format(x['w1'], '.3f') for x in r)}]" if r else "—")
            for d in datasets:
                if "gaussians" not in d:
                    continue
                r = sorted((x for x in rows if x["trick"] == trick and x["loss"] == loss and x["data"] == d),
                           key=lambda x: x["seed"])
                cells.append(f"{'/'.join(str(x['modes']) for x in r)} of {r[0]['n_modes']}" if r else "—")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def image_table(rows: list[dict]) -> str:
    img = [r for r in rows if r["data"] not in TOY]
    if not img:
        return ""
    lines = ["\n**nsgan, --arch dcgan on " + img[0]["data"] + "** (exact W1 on flattened pixels)\n",
             "| trick | W1 step 0 | final W1 [per seed] | final / step 0 |", "|---|---|---|---|"]
    for trick in TRICKS:
        r = sorted((x for x in img if x["trick"] == trick), key=lambda x: x["seed"])
        if r:
            lines.append(f"| {trick} | {mean([x['w1_step0'] for x in r]):.2f} | {mean([x['w1'] for x in r]):.2f} "
                         f"[{' '.join(format(x['w1'], '.2f') for x in r)}] | "
                         f"{mean([x['w1'] / x['w1_step0'] for x in r]):.2f} |")
    return "\n".join(lines)


def pictures(rows: list[dict], img_dir: Path) -> None:
    """Seed 0's samples.png of every nsgan run, one figure: rows = tricks, columns = datasets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    datasets = list(TOY) + sorted({r["data"] for r in rows if r["data"] not in TOY})
    for loss in LOSSES:
        fig, axes = plt.subplots(len(TRICKS), len(datasets), figsize=(3 * len(datasets), 3 * len(TRICKS)))
        for i, trick in enumerate(TRICKS):
            for j, d in enumerate(datasets):
                ax = axes[i][j]
                ax.axis("off")
                r = [x for x in rows if x["trick"] == trick and x["data"] == d and x["seed"] == 0
                     and x["loss"] == (loss if d in TOY else "nsgan")]
                png = Path(r[0]["out"]) / "samples.png" if r else None
                if png is not None and png.exists() and (d in TOY or loss == "nsgan"):
                    ax.imshow(mpimg.imread(png))
                    ax.set_title(f"{trick}\n{d}: W1 {r[0]['w1']:.3f}", fontsize=8)
        fig.tight_layout()
        fig.savefig(img_dir / f"tricks_{loss}_seed0.png", dpi=80)
        plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--image-seeds", type=int, nargs="+", default=[0])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--image-steps", type=int, default=300)
    p.add_argument("--image-batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-samples", type=int, default=500)
    p.add_argument("--ha-weight", type=float, default=0.01)
    p.add_argument("--dcgan-width", type=int, default=16)
    p.add_argument("--image-data", default="shapes", help="'' to skip the image runs")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/tricks"))
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--tricks", nargs="+", choices=list(TRICKS), default=None, help="only these rows")
    p.add_argument("--publish", action="store_true")
    p.add_argument("--collect-only", action="store_true",
                   help="train nothing: read the finished runs in --runs-dir (the others are left out)")
    args = p.parse_args(argv)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    res_dir = ROOT / "bench" / "results" if args.publish else Path("pygan-bench-results") / stamp
    json_path = args.json or res_dir / "tricks_cpu.json"
    img_dir = ROOT / "docs" / "img" / "tricks" if args.publish else json_path.parent / "img"
    todo = jobs(args)
    if args.collect_only:
        todo = [dict(j, collect=True) for j in todo if (Path(j["cfg"]["out"]) / "checkpoint.pt").exists()]
    rows, t0 = [], time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(one_run, j): j for j in todo}
        for f in as_completed(futures):
            try:
                rows.append(f.result())
            except Exception as exc:  # a failed run is a result too: say so, keep the others
                j = futures[f]
                print(f"failed: {j['trick']} {j['cfg']['loss']} {j['cfg']['data']} s{j['cfg']['seed']}: {exc}",
                      file=sys.stderr)
            print(f"[{len(rows)}/{len(todo)}] {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0
    meta = {"steps": args.steps, "image_steps": args.image_steps, "image_batch": args.image_batch, "hidden": args.hidden, "layers": 3,
            "batch_size": args.batch_size, "eval_samples": args.eval_samples, "ha_weight": args.ha_weight,
            "dcgan_width": args.dcgan_width, "jobs": args.jobs, "wall_s": wall, "seeds": args.seeds,
            "load_average": os.getloadavg(), "cpus": os.cpu_count()}
    text = table(rows, TOY, LOSSES) + "\n" + image_table(rows)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    # "command" and "table_markdown": what bench/tables.py renders for a results file with its own table.
    command = "nice -n 10 python bench/tricks.py " + " ".join(argv if argv is not None else sys.argv[1:])
    json_path.write_text(json.dumps({"command": command.strip(), "table_markdown": text, "meta": meta, "rows": rows},
                                    indent=1) + "\n")
    print(f"{len(rows)} runs in {wall:.0f} s (jobs {args.jobs}, load average at the end {meta['load_average']})")
    print(text)
    try:
        pictures(rows, img_dir)
    except ImportError:
        print("matplotlib is not installed: no pictures", file=sys.stderr)
    for r in rows:  # the image set's sample grids
        if r["data"] not in TOY and r["seed"] == 0 and (Path(r["out"]) / "samples.png").exists():
            shutil.copy(Path(r["out"]) / "samples.png", img_dir / f"dcgan_{r['data']}_{slug(r['trick'])}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
