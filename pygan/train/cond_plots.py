"""Pictures of conditional runs (matplotlib, optional; drawn as :mod:`pygan.train.plots` draws).

* class labels: ``samples.png`` -- 2-D points: held-out real | generated, coloured by class;
  images: one row of generated samples per class;
* InfoGAN: ``samples.png`` -- points coloured by their categorical code (images: the grid of
  samples), and for images ``traversal.png``: one row per value of the categorical code (z' fixed
  along each column), then one row per continuous code swept from -1 to 1;
* pix2pix: ``samples.png`` -- input | output | target triplets of held-out pairs;
* always ``w1.png``, the exact W1 curve.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pygan.train import plots

__all__ = ["class_points", "class_rows", "draw_labels", "draw_infogan", "draw_pix2pix"]

_PER_ROW = 8


def _colours(k: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if k <= 10 else "tab20" if k <= 20 else "hsv"]
    return [cmap(i / max(k - 1, 1)) if k > 20 else cmap(i) for i in range(k)]


def class_points(panels: list[tuple[str, torch.Tensor, torch.Tensor]], num_classes: int, path, title: str = "") -> None:
    """Side-by-side scatter plots of 2-D points coloured by class: ``panels`` = [(title, x [N, 2], labels [N])]."""
    fig = plots.figure(5 * len(panels), 5)
    colours = _colours(num_classes)
    allx = torch.cat([p[1].detach().float().cpu() for p in panels])
    lo, hi = allx.min(0).values - 0.2, allx.max(0).values + 0.2
    for i, (name, x, y) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        x, y = x.detach().float().cpu(), y.cpu()
        for k in range(num_classes):
            m = y == k
            if bool(m.any()):
                ax.scatter(x[m, 0], x[m, 1], s=3, color=colours[k], alpha=0.7)
        ax.set_xlim(float(lo[0]), float(hi[0]))
        ax.set_ylim(float(lo[1]), float(hi[1]))
        ax.set_aspect("equal")
        ax.set_title(f"{title}\n{name}" if title else name, fontsize=9)
    plots.save_figure(fig, path)


def class_rows(images: torch.Tensor, labels: torch.Tensor, num_classes: int, path, title: str = "") -> None:
    """A grid with one row per class (up to 8 samples each, in the order given)."""
    rows = []
    for k in range(num_classes):
        pick = images[labels == k][:_PER_ROW]
        pad = images.new_full((_PER_ROW - pick.shape[0], *images.shape[1:]), -1.0)
        rows.append(torch.cat([pick, pad]))
    plots.image_grid(torch.cat(rows), path, title=title, ncol=_PER_ROW)


def draw_labels(trainer, cond) -> None:
    out, title = Path(trainer.out), f"conditional {trainer.spec.name}, step {trainer.step}"
    real, y = trainer.eval_data, cond.eval_labels.to(trainer.device)
    fake = cond.sample(trainer, z=trainer.eval_z, y=y)
    if real.dim() == 2 and real.shape[1] == 2:
        class_points([("held-out real, by class", real, y), ("generated with each label", fake, y)],
                     cond.num_classes, out / "samples.png", title)
    elif real.dim() == 4:
        class_rows(fake, y, cond.num_classes, out / "samples.png", title + " (one row per class)")
    plots.w1_curve(trainer.history, out / "w1.png", title=f"conditional {trainer.spec.name}: exact W1")


def draw_infogan(trainer, cond) -> None:
    from pygan.train.cond_eval import infogan_eval_latents
    from pygan.train.infogan import LatentCodes

    out, title = Path(trainer.out), f"InfoGAN {trainer.spec.name}, step {trainer.step}"
    codes = cond.codes
    latent, c = infogan_eval_latents(trainer, codes)
    fake = cond.sample(trainer, z=latent)
    if fake.dim() == 2 and fake.shape[1] == 2:
        labels = c.categorical if c.categorical is not None else torch.zeros(fake.shape[0], dtype=torch.long)
        class_points([("generated, by categorical code", fake, labels)], max(codes.categorical, 1),
                     out / "samples.png", title)
    elif fake.dim() == 4:
        plots.image_grid(fake[:64], out / "samples.png", title=title)
        rows = []
        noise = trainer.eval_z[:_PER_ROW, :codes.noise_dim]
        base_cont = torch.zeros(_PER_ROW, codes.continuous, device=noise.device, dtype=noise.dtype) \
            if codes.continuous else None
        base_cat = torch.zeros(_PER_ROW, dtype=torch.long, device=noise.device) if codes.categorical else None
        for k in range(codes.categorical):  # each categorical value along a row, z' fixed per column
            rows.append(codes.join(noise, LatentCodes(torch.full_like(base_cat, k), base_cont)))
        sweep = torch.linspace(-1, 1, _PER_ROW, device=noise.device, dtype=noise.dtype)
        for j in range(codes.continuous):  # each continuous code swept from -1 to 1, the same z'
            cont = base_cont.clone()
            cont[:, j] = sweep
            rows.append(codes.join(noise[:1].expand(_PER_ROW, -1), LatentCodes(base_cat, cont)))
        plots.image_grid(cond.sample(trainer, z=torch.cat(rows)), out / "traversal.png", ncol=_PER_ROW,
                         title="InfoGAN traversals: a row per categorical value, then per continuous code")
    plots.w1_curve(trainer.history, out / "w1.png", title=f"InfoGAN {trainer.spec.name}: exact W1")


def _rgb(x: torch.Tensor, channels: int) -> torch.Tensor:
    return x.expand(-1, channels, -1, -1) if x.shape[1] != channels else x


def draw_pix2pix(trainer, cond) -> None:
    out = Path(trainer.out)
    a, b = cond.eval_inputs[:_PER_ROW], trainer.eval_data[:_PER_ROW]
    fake = cond.sample(trainer, a=a)
    c = max(a.shape[1], b.shape[1])
    triplets = torch.stack([_rgb(a, c), _rgb(fake, c), _rgb(b, c)], dim=1).flatten(0, 1)
    plots.image_grid(triplets, out / "samples.png", ncol=6,
                     title=f"pix2pix {trainer.spec.name}, step {trainer.step}: input | output | target")
    plots.w1_curve(trainer.history, out / "w1.png", title=f"pix2pix {trainer.spec.name}: exact W1")
