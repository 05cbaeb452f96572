"""The parallel-segments example (WGAN, Arjovsky et al. 2017, Example 1).

P_0 is uniform on the segment {0} × [0, 1] and P_θ uniform on {θ} × [0, 1]. Then W1(P_0, P_θ) = |θ|,
continuous in θ, while JS(P_0, P_θ) = log 2 and KL(P_0 ‖ P_θ) = +inf for every θ ≠ 0 (both 0 at
θ = 0): the supports are disjoint however close the segments are.

``python -m pygan experiment w-vs-js --out DIR`` measures all three from n samples per segment:

* **W1, exact** (:func:`pygan.ot.emd2_points`, Euclidean cost, uniform weights), twice: with the *same*
  uniform y draws for both segments (the optimal plan then matches each point with its translate, so
  W1 = |θ| exactly, up to float rounding), and with *independent* y draws (then W1 of the two empirical
  measures is >= |θ| and tends to it as n grows; at θ = 0 it is the 1-D W1 between two samples of
  U[0, 1], of order n^-1/2).
* **JS and KL estimated from samples** (independent y draws, nats), two estimators each:
  a histogram with square bins of side ``bin_width`` (the x bins centred on 0, so the segments share
  a column iff |θ| < bin_width / 2: the estimated JS is ≈ 0 below that and exactly log 2 above; the
  histogram KL is +inf as soon as one bin of P_0 is empty under P_θ), and k-nearest-neighbour
  estimators with the segments' intrinsic dimension d = 1: Wang–Kulkarni–Verdú (2009) for KL,
  D̂ = (d/n) Σ log(ν_k / ρ_k) + log(m / (n − 1)), and the same density ratio q̂/p̂ = ((n−1)/m)(ρ_k/ν_k)^d
  plugged into JS = log 2 − ½ E_P log(1 + q/p) − ½ E_Q log(1 + p/q). For disjoint supports the k-NN
  KL is finite but grows like d·log n (ν_k stays ≈ |θ| while ρ_k shrinks like k / 2n): the estimate
  of an infinite quantity, reported as it comes out, with its growth in n measured at one θ.

Outputs in DIR: ``report.json`` (every number; +inf written as null) and ``w_vs_js.png``.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field

import torch

from pygan import _validate as check
from pygan import ot
from pygan.experiments import _common

__all__ = ["WvsJSConfig", "FILES", "DEFAULT_THETAS", "run", "segments", "js_kl_binned", "js_kl_knn"]

FILES = ("report.json", "w_vs_js.png")
DEFAULT_THETAS = tuple(sorted({round(-1 + 0.05 * i, 10) for i in range(41)}
                              | {s * t for s in (-1, 1) for t in (0.002, 0.005, 0.01, 0.02)}))


@dataclass
class WvsJSConfig:
    """Options of ``w-vs-js`` (the CLI's flags, ``-`` for ``_``)."""

    out: str = "runs/w-vs-js"
    thetas: tuple = field(default=DEFAULT_THETAS, metadata={
        "help": "comma-separated θ values, e.g. --thetas=-0.5,0,0.5 (with '=' when the first is negative)",
        "default_text": "-1 to 1 step 0.05, plus ±0.002, ±0.005, ±0.01, ±0.02"})
    samples: int = field(default=2000, metadata={"help": "points per segment"})
    bin_width: float = field(default=0.02, metadata={"help": "histogram estimator's bin side"})
    k: int = field(default=10, metadata={"help": "k of the k-NN estimators"})
    growth_theta: float = field(default=0.5, metadata={"cli": False})
    seed: int = 0
    device: str = "cpu"
    force: bool = False
    quiet: bool = False
    plots: bool = True

    def validate(self) -> None:
        """Check every option (named by its flag). Raises: ExperimentError."""
        with _common.options_checked():
            if not self.thetas:
                raise _common.ExperimentError("--thetas must be one or more finite numbers, got none")
            for t in self.thetas:
                check.number(t, "--thetas")
            check.integer(self.samples, "--samples", low=2)
            check.integer(self.k, "--k", low=1, high=self.samples - 1)  # k < samples: a neighbour besides itself
            check.number(self.bin_width, "--bin-width", low=0, low_open=True)
            check.number(self.growth_theta, "--growth-theta")


def segments(theta: float, y0: torch.Tensor, y1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (0, y0_i) and (θ, y1_i), float64 [n, 2] each."""
    x0 = torch.stack([torch.zeros_like(y0), y0], 1)
    x1 = torch.stack([torch.full_like(y1, theta), y1], 1)
    return x0, x1


def js_kl_binned(p: torch.Tensor, q: torch.Tensor, bin_width: float) -> tuple[float, float]:
    """JS(P‖Q) and KL(P‖Q) (nats) of the two samples' histograms on square bins centred on x = 0.

    Returns:
        (js, kl); kl is +inf when a bin holds points of p and none of q.
    """
    def keys(z):
        ix = torch.floor(z[:, 0] / bin_width + 0.5).long()
        iy = torch.floor(z[:, 1] / bin_width).long()
        return ix * 1_000_003 + iy

    kp, kq = keys(p), keys(q)
    uniq, inv = torch.unique(torch.cat([kp, kq]), return_inverse=True)
    cp = torch.bincount(inv[:kp.numel()], minlength=uniq.numel()).double() / kp.numel()
    cq = torch.bincount(inv[kp.numel():], minlength=uniq.numel()).double() / kq.numel()
    m = (cp + cq) / 2

    def xlogy_ratio(a, b):  # Σ a log(a / b), with 0 log 0 = 0
        mask = a > 0
        return float((a[mask] * torch.log(a[mask] / b[mask])).sum())

    js = 0.5 * xlogy_ratio(cp, m) + 0.5 * xlogy_ratio(cq, m)
    kl = math.inf if bool(((cp > 0) & (cq == 0)).any()) else xlogy_ratio(cp, cq)
    return js, kl


def _kth(dist: torch.Tensor, k: int) -> torch.Tensor:
    return dist.topk(k, dim=1, largest=False).values[:, -1]


def js_kl_knn(p: torch.Tensor, q: torch.Tensor, k: int, dim: int = 1) -> tuple[float, float]:
    """k-NN estimates of JS(P‖Q) and KL(P‖Q) (nats), with intrinsic dimension ``dim`` (module docstring).

    Returns:
        (js, kl).
    """
    n, m = p.shape[0], q.shape[0]
    inf_diag = torch.diag(torch.full((n,), math.inf, dtype=p.dtype))
    rho_p = _kth(torch.cdist(p, p) + inf_diag, k)         # k-th neighbour in its own sample, itself excluded
    nu_p = _kth(torch.cdist(p, q), k)                       # k-th neighbour in the other sample
    rho_q = _kth(torch.cdist(q, q) + torch.diag(torch.full((m,), math.inf, dtype=q.dtype)), k)
    nu_q = _kth(torch.cdist(q, p), k)
    log_ratio_p = dim * (torch.log(rho_p) - torch.log(nu_p)) + math.log((n - 1) / m)   # log q̂/p̂ at p's points
    log_ratio_q = dim * (torch.log(rho_q) - torch.log(nu_q)) + math.log((m - 1) / n)   # log p̂/q̂ at q's points
    js = math.log(2) - 0.5 * float(torch.nn.functional.softplus(log_ratio_p).mean()) \
        - 0.5 * float(torch.nn.functional.softplus(log_ratio_q).mean())
    kl = float(dim * (torch.log(nu_p) - torch.log(rho_p)).mean()) + math.log(m / (n - 1))
    return js, kl


def _log(cfg: WvsJSConfig, msg: str) -> None:
    if not cfg.quiet:
        print(msg, file=sys.stderr, flush=True)


def run(cfg: WvsJSConfig) -> dict:
    """Run the experiment; write report.json and w_vs_js.png into ``cfg.out``; return the report."""
    cfg.validate()
    _common.resolve_device(cfg.device)  # the solver runs on the CPU; --device is checked for uniformity
    out = _common.prepare_out(cfg.out, FILES, cfg.force)
    start = time.perf_counter()
    n = cfg.samples
    gen = torch.Generator().manual_seed(cfg.seed)
    y_shared = torch.rand(n, generator=gen, dtype=torch.float64)
    y_a = torch.rand(n, generator=gen, dtype=torch.float64)
    y_b = torch.rand(n, generator=gen, dtype=torch.float64)
    thetas = [float(t) for t in cfg.thetas]
    rows = {key: [] for key in ("w1_shared_y", "w1_independent_y", "js_binned", "kl_binned", "js_knn", "kl_knn")}
    for theta in thetas:
        p, q = segments(theta, y_shared, y_shared)
        rows["w1_shared_y"].append(float(ot.emd2_points(p, q)))
        p, q = segments(theta, y_a, y_b)
        rows["w1_independent_y"].append(float(ot.emd2_points(p, q)))
        js, kl = js_kl_binned(p, q, cfg.bin_width)
        rows["js_binned"].append(js)
        rows["kl_binned"].append(kl)
        js, kl = js_kl_knn(p, q, cfg.k)
        rows["js_knn"].append(js)
        rows["kl_knn"].append(kl)
    t_main = time.perf_counter() - start

    growth = {"theta": cfg.growth_theta, "samples": [], "kl_knn": [], "js_knn": []}
    for size in sorted({max(cfg.k + 1, n // 8), max(cfg.k + 1, n // 4), max(cfg.k + 1, n // 2), n}):
        p, q = segments(cfg.growth_theta, y_a[:size], y_b[:size])
        js, kl = js_kl_knn(p, q, cfg.k)
        growth["samples"].append(size)
        growth["kl_knn"].append(kl)
        growth["js_knn"].append(js)

    errors = [abs(w - abs(t)) for w, t in zip(rows["w1_shared_y"], thetas)]
    far = [i for i, t in enumerate(thetas) if abs(t) >= cfg.bin_width]
    report = {
        "experiment": "w-vs-js", "config": asdict(cfg), "torch": torch.__version__,
        "theta": thetas, "abs_theta": [abs(t) for t in thetas], "samples": n,
        "bin_width": cfg.bin_width, "k": cfg.k, "knn_dimension": 1,
        **rows,
        "kl_binned_infinite": [math.isinf(v) for v in rows["kl_binned"]],
        "true": {"w1": "|θ|", "js": "log 2 = 0.693147 for θ ≠ 0, 0 at θ = 0",
                 "kl": "+inf for θ ≠ 0, 0 at θ = 0"},
        "summary": {
            "w1_shared_y_max_abs_error": max(errors),
            "w1_independent_y_minus_abs_theta_min": min(w - abs(t) for w, t in zip(rows["w1_independent_y"], thetas)),
            "w1_independent_y_minus_abs_theta_max": max(w - abs(t) for w, t in zip(rows["w1_independent_y"], thetas)),
            "js_binned_far_from_0": [min((rows["js_binned"][i] for i in far), default=None),
                                     max((rows["js_binned"][i] for i in far), default=None)],
            "js_knn_far_from_0": [min((rows["js_knn"][i] for i in far), default=None),
                                  max((rows["js_knn"][i] for i in far), default=None)],
            "kl_binned_infinite_count": sum(math.isinf(v) for v in rows["kl_binned"]),
        },
        "kl_knn_growth": growth,
    }
    report["wall_seconds"] = {"measure": t_main, "total": time.perf_counter() - start}
    if cfg.plots and _common.plots_available():
        from pygan.experiments import plots

        plots.w_vs_js(out / "w_vs_js.png", _common.to_jsonable(report))
    elif cfg.plots:
        _log(cfg, "matplotlib is not installed: no picture (pip install 'pygan-torch[plot]'); report.json only")
    report["wall_seconds"]["total"] = time.perf_counter() - start
    _common.write_json(out / "report.json", report)
    _log(cfg, f"w-vs-js: {len(thetas)} θ, n = {n}: max |W1 − |θ|| (same y) = {max(errors):.3g}; "
              f"{report['wall_seconds']['total']:.1f} s")
    return report
