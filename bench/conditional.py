"""Quality runs of the conditional models (not timed tests): ``python bench/conditional.py``.

For each target, ``pygan.train.run`` trains with the defaults of ``python -m pygan train`` (except
--steps where given) over several seeds and reads the last evaluation of ``metrics.jsonl``:

* conditional nsgan and wgan-gp on 8gaussians: the largest per-class exact W1 (target <= 0.05);
* conditional nsgan on 25gaussians: the largest per-class W1 (target <= 0.1);
* InfoGAN with K = 8 on 8gaussians (labels unused): code_accuracy (target >= 0.95 in 2 of 3 seeds);
* conditional nsgan on digits: class_accuracy (target >= 0.9);
* pix2pix nsgan on outlines: held-out L1 against the L1 of always predicting the mean training
  target (target: at most a fifth of it);
* the wall time of each run (target <= 10 minutes on 2 CPU cores).

Options: ``--seeds 0 1 2``, ``--only NAME`` (repeatable), ``--steps-scale F`` (multiply every
run's steps), ``--json FILE`` (the rows), ``--quick`` (a few steps each: checks the script runs).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYGAN_REQUIRE_EXT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from pygan.train import TrainConfig, run  # noqa: E402

# name -> (options, steps, metric, target description, check(value) -> bool)
TARGETS = {
    "cond-nsgan-8g": (dict(conditional=True, loss="nsgan", data="8gaussians"), 250, "max_w1_per_class", "<= 0.05",
                      lambda v: v <= 0.05),
    "cond-wgan-gp-8g": (dict(conditional=True, loss="wgan-gp", data="8gaussians"), 250, "max_w1_per_class",
                        "<= 0.05", lambda v: v <= 0.05),
    "cond-nsgan-25g": (dict(conditional=True, loss="nsgan", data="25gaussians"), 400, "max_w1_per_class", "<= 0.1",
                       lambda v: v <= 0.1),
    "infogan-nsgan-8g": (dict(infogan_categorical=8, loss="nsgan", data="8gaussians"), 250, "code_accuracy",
                         ">= 0.95 (2 of 3 seeds)", lambda v: v >= 0.95),
    "cond-nsgan-digits": (dict(conditional=True, loss="nsgan", data="digits"), 500, "class_accuracy", ">= 0.9",
                          lambda v: v >= 0.9),
    "pix2pix-nsgan-outlines": (dict(pix2pix=True, loss="nsgan", data="outlines"), 250, "l1_over_mean_l1", "<= 0.2",
                               lambda v: v <= 0.2),
}


def mean_target_l1(cfg: TrainConfig) -> float:
    """L1 on the held-out pairs of always predicting the mean training target (pixelwise)."""
    from pygan.train.cond_data import paired_data
    from pygan.train.cond_setup import PIX2PIX_DEPTH

    _, b, _, b_held = paired_data(cfg.data, cfg.seed, cfg.eval_samples, 2 ** PIX2PIX_DEPTH)
    return float((b_held - b.mean(0, keepdim=True)).abs().mean())


def one(name: str, seed: int, scale: float, quick: bool, root: Path) -> dict:
    options, steps, metric, _, check = TARGETS[name]
    steps = 4 if quick else max(1, round(steps * scale))
    cfg = TrainConfig(out=str(root / f"{name}-{seed}"), seed=seed, steps=steps, eval_every=max(1, steps // 4),
                      ckpt_every=steps, progress=False, plots=False, **options)
    t0 = time.perf_counter()
    trainer = run(cfg)
    wall = time.perf_counter() - t0
    last = trainer.history[-1]
    row = {"target": name, "seed": seed, "steps": steps, "wall_s": round(wall, 1), "w1": last.get("w1")}
    if metric == "max_w1_per_class":
        row["value"] = max(last["w1_per_class"])
    elif metric == "l1_over_mean_l1":
        row["l1"], row["mean_l1"] = last["l1"], mean_target_l1(cfg)
        row["value"] = last["l1"] / row["mean_l1"]
    else:
        row["value"] = last[metric]
    row["met"] = bool(check(row["value"]))
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--only", action="append", choices=list(TARGETS))
    p.add_argument("--steps-scale", type=float, default=1.0)
    p.add_argument("--json", type=Path)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(TARGETS):
            for seed in args.seeds:
                row = one(name, seed, args.steps_scale, args.quick, Path(tmp))
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print("| target | metric (goal) | steps | seeds: value | met | wall per run (s) |")
    print("|---|---|---|---|---|---|")
    for name in args.only or list(TARGETS):
        r = [x for x in rows if x["target"] == name]
        _, _, metric, goal, _ = TARGETS[name]
        values = ", ".join(f"{x['seed']}: {x['value']:.4g}" for x in r)
        met = sum(x["met"] for x in r)
        print(f"| {name} | {metric} ({goal}) | {r[0]['steps']} | {values} | {met}/{len(r)} | "
              f"{', '.join(str(x['wall_s']) for x in r)} |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "machine": platform.platform(), "load": os.getloadavg(),
                                         "quick": args.quick}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
