"""The experiments' pictures (matplotlib's Figure + Agg canvas, never pyplot; written atomically)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from pygan.experiments._common import figure, save_figure

__all__ = ["weights", "grad_norms", "losses", "surfaces", "w_vs_js"]

_COLOURS = ["#d62728", "#ff7f0e", "#9467bd", "#1f77b4", "#2ca02c", "#8c564b"]


def _colour(i: int, setting: str) -> str:
    return "#2ca02c" if setting == "gp" else _COLOURS[i % len(_COLOURS)]


def weights(path: Path, ws: dict, depth: dict) -> None:
    """One histogram of all critic weights per setting, with ±c marked for clipping.

    Args:
        path: the PNG to write.
        ws: ``ws[setting]``: every weight of that setting's critic, flat. Settings are ``"gp"`` or
            ``"clip=<c>"``.
        depth: ``depth[setting]["fraction_near_clip"]``: a fraction (clipping) or, for ``"gp"``, a
            dict ``{c: fraction}``.
    """
    n = len(ws)
    fig = figure(3.2 * n, 2.8)
    for i, (setting, w) in enumerate(ws.items()):
        ax = fig.add_subplot(1, n, i + 1)
        ax.hist(w.numpy(), bins=100, color=_colour(i, setting))
        near = depth[setting]["fraction_near_clip"]
        if setting == "gp":
            text = "\n".join(f"{v:.1%} within 1% of ±{k}" for k, v in near.items())
            ax.set_title(f"gradient penalty\n{text}", fontsize=7)
            ax.set_yscale("log")
        else:
            c = float(setting.split("=", 1)[1])
            for x in (-c, c):
                ax.axvline(x, color="0.3", lw=0.8, ls="--")
            ax.set_title(f"weight clipping c = {c:g}\n{near:.1%} of weights within 1% of ±c", fontsize=8)
        ax.set_xlabel("weight value", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
    fig.axes[0].set_ylabel("count", fontsize=8)
    save_figure(fig, path)


def grad_norms(path: Path, depth: dict, title: str) -> None:
    """log ||∂L_D/∂h_l|| against the layer l, from the output back to the first layer (1).

    Args:
        path: the PNG to write.
        depth: ``depth[setting]["layer_grad_norms"]``: one norm per layer, first layer first.
        title: the picture's title (the critic and its training).
    """
    fig = figure(5.5, 4)
    ax = fig.add_subplot(1, 1, 1)
    for i, (setting, entry) in enumerate(depth.items()):
        norms = entry["layer_grad_norms"]
        layers = list(range(1, len(norms) + 1))
        label = "gradient penalty" if setting == "gp" else f"weight clipping c = {setting.split('=', 1)[1]}"
        ax.semilogy(layers, norms, "-o", ms=3.5, color=_colour(i, setting), label=label)
    ax.invert_xaxis()
    ax.set_xticks(layers)
    ax.set_xlabel(f"critic layer l ({len(layers)} = output)")
    ax.set_ylabel("‖∂L_D / ∂h_l‖ (log scale)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="major")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def losses(path: Path, depth: dict) -> None:
    """The critic's estimate −L_D = E D(real) − E D(fake) during training, one panel per setting."""
    n = len(depth)
    fig = figure(3.0 * n, 2.6)
    for i, (setting, entry) in enumerate(depth.items()):
        ax = fig.add_subplot(1, n, i + 1)
        curve = entry["loss_curve"]
        est = [0.0 - v for v in curve["critic_loss"]]  # 0.0 - v: no "-0" in the titles
        ax.plot(curve["step"], est, color=_colour(i, setting))
        label = "gradient penalty" if setting == "gp" else f"clipping c = {setting.split('=', 1)[1]}"
        ax.set_title(f"{label}\nfinal −L_D = {est[-1]:.3g}" if est else label, fontsize=8)
        ax.set_xlabel("critic step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.axes[0].set_ylabel("−L_D (training batch)", fontsize=8)
    fig.suptitle("critic training against the fixed generator (Swiss roll + N(0, I))", fontsize=9, y=1.1)
    save_figure(fig, path)


def surfaces(path: Path, values: dict, points: dict, extent: float, depth_layers: int, surface_layers: int) -> None:
    """Rows: datasets; columns: settings; each panel the critic's value over [-extent, extent]² with the
    real points drawn over it.

    Args:
        path: the PNG to write.
        values: ``values[row][setting]``: the critic's values on a square grid over the extent
            (``[y, x]``, as ``torch.meshgrid(xs, xs, indexing="xy")`` lays them out). A row is a
            dataset's name, optionally followed by a space and a note (``"swissroll (depth critic)"``).
        points: ``points[dataset]``: [N, 2] real samples to scatter, by dataset name.
        extent: the half-width of the square the grid covers.
        depth_layers, surface_layers: hidden layers of the depth critic and of the value-surface
            critics, for the row labels (a row whose name mentions "depth" is the depth critic).
    """
    rows = list(values)
    settings = list(values[rows[0]]) if rows else []
    fig = figure(2.6 * len(settings), 2.5 * len(rows))
    for r, dataset in enumerate(rows):
        name = dataset.split(" ")[0]
        pts = points[name]
        for c, setting in enumerate(settings):
            ax = fig.add_subplot(len(rows), len(settings), r * len(settings) + c + 1)
            v = values[dataset][setting].float()
            xs = torch.linspace(-extent, extent, v.shape[-1])
            gx, gy = torch.meshgrid(xs, xs, indexing="xy")
            spread = float(v.max() - v.min()) if torch.isfinite(v).all() else math.nan
            if spread > 1e-5 * float(v.abs().max()):
                ax.contourf(gx.numpy(), gy.numpy(), v.numpy(), levels=20, cmap="viridis")
            else:  # a critic whose input dependence is below float32 rounding: its contour would be noise
                ax.text(0, -extent * 0.8, f"constant to float32\n(spread {spread:.1e})", ha="center", fontsize=7)
            ax.scatter(pts[:, 0], pts[:, 1], s=1, c="#ff7f0e", alpha=0.7)
            ax.set_xlim(-extent, extent)
            ax.set_ylim(-extent, extent)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("gradient penalty" if setting == "gp" else f"clipping c = {setting.split('=', 1)[1]}",
                             fontsize=9)
            if c == 0:
                layers = depth_layers if "depth" in dataset else surface_layers
                ax.set_ylabel(f"{name}\n({layers} hidden layers)", fontsize=8)
    save_figure(fig, path)


def w_vs_js(path: Path, report: dict) -> None:
    """Three panels against θ: exact W1, the JS estimates, the KL estimates."""
    thetas = report["theta"]
    order = sorted(range(len(thetas)), key=lambda i: thetas[i])
    th = [thetas[i] for i in order]

    def col(key):
        return [report[key][i] for i in order]

    def finite(xs, ys):
        pairs = [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    fig = figure(13, 3.8)
    ax = fig.add_subplot(1, 3, 1)
    ax.plot(th, [abs(t) for t in th], color="0.6", lw=3, label="|θ|")
    ax.plot(th, col("w1_shared_y"), "o", ms=3, color="#1f77b4", label="exact W1, same y draws")
    ax.plot(th, col("w1_independent_y"), "s", ms=3, mfc="none", color="#d62728", label="exact W1, independent y")
    ax.set_xlabel("θ")
    ax.set_title(f"Wasserstein-1 (pygan.ot.emd2_points, n = {report['samples']})", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)

    ax = fig.add_subplot(1, 3, 2)
    ax.axhline(math.log(2), color="0.6", lw=3, label="log 2 (the true JS for θ ≠ 0)")
    ax.plot(*finite(th, col("js_binned")), "o-", ms=3, lw=0.8, color="#1f77b4",
            label=f"histogram, bin {report['bin_width']:g}")
    ax.plot(*finite(th, col("js_knn")), "s-", ms=3, lw=0.8, mfc="none", color="#d62728",
            label=f"k-NN density ratio, k = {report['k']}")
    ax.set_xlabel("θ")
    ax.set_title("Jensen–Shannon, estimated from samples", fontsize=9)
    ax.legend(fontsize=6.5, loc="lower right")
    ax.grid(alpha=0.3)
    near = [i for i, t in enumerate(th) if abs(t) <= 0.05]
    if len(near) > 2:  # a zoom on the jump at θ = 0
        inset = ax.inset_axes([0.1, 0.22, 0.36, 0.42])
        zt = [th[i] for i in near]
        inset.axhline(math.log(2), color="0.6", lw=2)
        inset.plot(*finite(zt, [col("js_binned")[i] for i in near]), "o-", ms=2.5, lw=0.8, color="#1f77b4")
        inset.plot(*finite(zt, [col("js_knn")[i] for i in near]), "s-", ms=2.5, lw=0.8, mfc="none", color="#d62728")
        inset.set_title("|θ| ≤ 0.05", fontsize=7)
        inset.tick_params(labelsize=6)
        inset.grid(alpha=0.3)

    ax = fig.add_subplot(1, 3, 3)
    xs, ys = finite(th, col("kl_knn"))
    ax.plot(xs, ys, "s-", ms=3, lw=0.8, mfc="none", color="#d62728", label="k-NN (Wang–Kulkarni–Verdú)")
    xs, ys = finite(th, col("kl_binned"))
    ax.plot(xs, ys, "o", ms=4, color="#1f77b4", label="histogram (finite values only)")
    inf_th = [t for t, v in zip(th, col("kl_binned")) if v is None]
    if inf_th:
        top = max([y for y in col("kl_knn") if y is not None] + [1.0])
        ax.plot(inf_th, [top * 1.05] * len(inf_th), "^", ms=4, color="#1f77b4",
                label=f"histogram = +inf ({len(inf_th)} of {len(th)} θ)")
    ax.set_xlabel("θ")
    ax.set_title("KL(P_0 ‖ P_θ), estimated from samples (true: +inf for θ ≠ 0)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    save_figure(fig, path)
