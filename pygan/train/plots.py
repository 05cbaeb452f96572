"""Pictures (matplotlib, an optional extra: ``pip install "pygan-torch[plot]"``).

Drawn with matplotlib's object API (``Figure`` + the Agg canvas), never ``pyplot``: no global state,
no window, safe in a training process and alongside a user's own interactive backend. Files are
written to a temporary name and renamed, so a reader never sees half a PNG.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pygan._atomic import atomic_write

__all__ = ["available", "figure", "save_figure", "points", "image_grid", "w1_curve", "draw_run"]


def available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def figure(width: float, height: float, dpi: int = 100):
    """A matplotlib Figure on the Agg canvas (never pyplot: no global state, no window)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | Path) -> None:
    """Save a figure as PNG atomically (``pygan._atomic``)."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", bbox_inches="tight"))


def points(real: torch.Tensor, fake: torch.Tensor, critic=None, path: str | Path = "samples.png",
           title: str = "", grid: int = 128) -> None:
    """Real (orange) vs generated (green) points over the critic's contour (2-D data).

    For data of more than two dimensions the first two coordinates are scattered and no contour is
    drawn (the critic is a function of all of them).

    Args:
        real, fake: [N, d] samples.
        critic: the critic, evaluated on a grid over the plane (2-D only); None skips the contour.
        path: the PNG to write.
        title: the figure title.
        grid: contour resolution per axis.
    """
    r = real.detach().float().cpu()
    f = fake.detach().float().cpu()
    fig = figure(6, 6)
    ax = fig.add_subplot(1, 1, 1)
    both = torch.cat([r[:, :2], f[:, :2]])
    lo, hi = both.min(0).values, both.max(0).values
    pad = 0.15 * (hi - lo).clamp_min(1e-3)
    lo, hi = lo - pad, hi + pad
    if critic is not None and r.shape[1] == 2:
        xs = torch.linspace(float(lo[0]), float(hi[0]), grid)
        ys = torch.linspace(float(lo[1]), float(hi[1]), grid)
        gx, gy = torch.meshgrid(xs, ys, indexing="xy")
        pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
        param = next(critic.parameters(), None)
        dev, dt = (param.device, param.dtype) if param is not None else (torch.device("cpu"), torch.float32)
        with torch.no_grad():
            vals = torch.cat([critic(c.to(dev, dt)).reshape(-1).float().cpu() for c in pts.split(8192)])
        cs = ax.contourf(gx.numpy(), gy.numpy(), vals.reshape(grid, grid).numpy(), levels=20, cmap="viridis", alpha=0.8)
        fig.colorbar(cs, ax=ax, fraction=0.046, pad=0.04, label="critic D(x)")
    ax.scatter(r[:, 0], r[:, 1], s=3, c="#ff7f0e", label="real (held out)", alpha=0.6)
    ax.scatter(f[:, 0], f[:, 1], s=3, c="#2ca02c", label="generated", alpha=0.6)
    ax.set_xlim(float(lo[0]), float(hi[0]))
    ax.set_ylim(float(lo[1]), float(hi[1]))
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4, fontsize=8)
    ax.set_title(title)
    save_figure(fig, path)


def image_grid(images: torch.Tensor, path: str | Path = "samples.png", title: str = "", ncol: int = 8) -> None:
    """A grid of images [N, C, H, W] in [-1, 1]."""
    x = images.detach().float().cpu().clamp(-1, 1).add(1).div(2)
    n, c, h, w = x.shape
    nrow = (n + ncol - 1) // ncol
    canvas = torch.ones(c, nrow * (h + 2), ncol * (w + 2))
    for i in range(n):
        r, col = divmod(i, ncol)
        canvas[:, r * (h + 2) + 1:r * (h + 2) + 1 + h, col * (w + 2) + 1:col * (w + 2) + 1 + w] = x[i]
    fig = figure(ncol * 0.8 + 0.5, nrow * 0.8 + 0.6)
    ax = fig.add_subplot(1, 1, 1)
    img = canvas[0].numpy() if c == 1 else canvas.permute(1, 2, 0).numpy()
    ax.imshow(img, cmap="gray" if c == 1 else None, vmin=0, vmax=1)
    ax.axis("off")
    ax.set_title(title)
    save_figure(fig, path)


def w1_curve(history: list[dict], path: str | Path = "w1.png", title: str = "") -> None:
    """Exact W1 and the critic's estimate −L_D against the generator step (log-scale W1 axis)."""
    rows = [h for h in history if h.get("w1") is not None]
    fig = figure(7, 4)
    ax = fig.add_subplot(1, 1, 1)
    if rows:
        steps = [h["step"] for h in rows]
        ax.plot(steps, [h["w1"] for h in rows], "-o", ms=3, label="exact W1 (pygan.ot.emd2_points)")
        ax.plot(steps, [h["critic_estimate"] for h in rows], "-s", ms=3, label="critic's estimate −L_D")
        n = rows[-1].get("w1_samples")
        ax.set_xlabel("generator step")
        ax.set_ylabel("distance")
        ax.axhline(0, color="0.7", lw=0.8)
        ax.legend(fontsize=8)
        if n:
            ax.set_title(f"{title}\n({n} generated vs {n} held-out real samples)", fontsize=9)
        else:
            ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    save_figure(fig, path)


def draw_run(out: str | Path, loss: str, step: int, real: torch.Tensor, fake: torch.Tensor, critic,
             history: list[dict]) -> None:
    """A training run's pictures: ``OUT/samples.png`` and ``OUT/w1.png``.

    Args:
        out: the run directory.
        loss: the loss's name (for the titles).
        step: the generator step (for the title).
        real, fake: held-out real and generated samples: points [N, 2] (drawn over the critic's
            contour) or images [N, C, H, W] (the first 64 generated ones in a grid).
        critic: the critic, for the contour of 2-D points.
        history: the metrics records, for the W1 curve.
    """
    out = Path(out)
    title = f"{loss}, step {step}"
    if real.dim() == 2:
        points(real, fake, critic, out / "samples.png", title=title)
    else:
        image_grid(fake[:64], out / "samples.png", title=title)
    w1_curve(history, out / "w1.png", title=f"{loss}: exact W1 and the critic's estimate")

