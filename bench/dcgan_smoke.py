"""Does DCGAN nsgan train on the shipped shapes images? A short CPU run, the exact W1 first vs last.

A plain training loop (the trainer's --arch dcgan wiring comes later): pygan.train.dcgan's generator
and discriminator (batch norm in both, the paper's defaults), the non-saturating GAN loss, Adam
(2e-4, betas 0.5 / 0.999), on pygan.train.images.shapes (grey, 32x32 by default). Every
``--eval-every`` steps: the exact W1 (pygan.ot.emd2_points, euclidean) between ``--eval-samples``
generated images (always from the same fixed noise) and as many held-out real ones, on flattened
pixels; and, for scale, the "sampling floor": W1 between two independent real sets of that size.
Optionally a picture grid of samples (``--picture``, needs matplotlib) and the numbers as JSON
(``--json``).

    python bench/dcgan_smoke.py --steps 600 --threads 1 --picture /tmp/dcgan.png

Not a test: it is stochastic and takes minutes; nothing asserts on it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("PYGAN_REQUIRE_EXT", "1")  # emd2_points must use the compiled solver

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

if __package__ in (None, ""):  # `python bench/dcgan_smoke.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pygan.ot import emd2_points  # noqa: E402
from pygan.train.dcgan import DCGANDiscriminator, DCGANGenerator  # noqa: E402
from pygan.train.images import shapes  # noqa: E402


def w1(a: torch.Tensor, b: torch.Tensor) -> float:
    """Exact W1 between two image sets, on flattened pixels (euclidean ground cost)."""
    return float(emd2_points(a.flatten(1).double(), b.flatten(1).double()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/dcgan_smoke.py", description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--side", type=int, default=32, choices=(32, 64))
    p.add_argument("--channels", type=int, default=1, choices=(1, 3))
    p.add_argument("--width", type=int, default=32, help="DCGAN width w (channels of the widest-resolution map)")
    p.add_argument("--latent-dim", type=int, default=64)
    p.add_argument("--train-size", type=int, default=10000)
    p.add_argument("--eval-samples", type=int, default=500)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--picture", type=Path, default=None, help="write a grid of 64 final samples (PNG)")
    p.add_argument("--json", type=Path, default=None, help="write the measurements as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    data, _ = shapes(args.train_size, side=args.side, channels=args.channels, seed=args.seed)
    held, _ = shapes(args.eval_samples, side=args.side, channels=args.channels, seed=args.seed + 1_000_003)
    floor_set, _ = shapes(args.eval_samples, side=args.side, channels=args.channels, seed=args.seed + 2_000_003)
    floor = w1(held, floor_set)

    G = DCGANGenerator(args.latent_dim, args.channels, args.side, args.width)
    D = DCGANDiscriminator(args.channels, args.side, args.width)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(args.seed + 7)
    eval_z = torch.randn(args.eval_samples, args.latent_dim, generator=gen)

    def evaluate(step: int) -> dict:
        with torch.no_grad():  # batch norm in training mode, as DCGAN samples (statistics of these samples)
            fake = G(eval_z)
        return {"step": step, "w1": w1(fake, held), "seconds": round(time.perf_counter() - t0, 1)}

    t0 = time.perf_counter()
    log = [evaluate(0)]
    print(f"step {0:5d}  W1 {log[-1]['w1']:.3f}  (sampling floor {floor:.3f})", flush=True)
    for step in range(1, args.steps + 1):
        real = data[torch.randint(data.shape[0], (args.batch_size,), generator=gen)]
        z = torch.randn(args.batch_size, args.latent_dim, generator=gen)
        fake = G(z)
        loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-D(fake)).mean()  # non-saturating: minimise -log D(G(z))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if step % args.eval_every == 0 or step == args.steps:
            log.append(evaluate(step))
            print(f"step {step:5d}  W1 {log[-1]['w1']:.3f}  loss_d {loss_d.item():.3f}  loss_g {loss_g.item():.3f}"
                  f"  {log[-1]['seconds']:.0f} s", flush=True)

    first, last = log[0]["w1"], log[-1]["w1"]
    print(f"\nW1 first {first:.3f} -> last {last:.3f} (ratio {last / first:.3f}; floor {floor:.3f}); "
          f"target: last <= first / 2: {'met' if last <= first / 2 else 'NOT met'}")
    result = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "sampling_floor_w1": floor, "evaluations": log, "ratio_last_first": last / first,
              "torch": torch.__version__, "threads": args.threads}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.picture:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        with torch.no_grad():
            grid = G(eval_z)[:64]
        grid = ((grid + 1) / 2).clamp(0, 1)
        fig, axes = plt.subplots(8, 16, figsize=(16, 8.4))
        for i in range(64):
            for j, img in enumerate((grid[i], (held[i] + 1) / 2)):
                ax = axes[i // 8, (i % 8) + 8 * j]
                ax.imshow(img[0] if args.channels == 1 else img.permute(1, 2, 0), cmap="gray", vmin=0, vmax=1)
                ax.axis("off")
        fig.suptitle(f"DCGAN nsgan after {args.steps} steps (left) and real shapes (right); "
                     f"W1 {first:.2f} -> {last:.2f}")
        fig.savefig(args.picture, dpi=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
