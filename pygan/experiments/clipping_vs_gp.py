"""WGAN-GP §3 / Figure 1: weight clipping against the gradient penalty, with the generator held fixed.

``python -m pygan experiment clipping-vs-gp --out DIR`` trains WGAN critics "towards optimality"
against a *fixed* generator, P_g = P_r + N(0, I) (each real batch plus unit Gaussian noise, as the
authors' toy code does with ``FIXED_GENERATOR``), once per setting: weight clipping with each c in
``clips`` (``pygan.optim.ClippedRMSprop``, lr 5e-5) and the gradient penalty (``pygan.gradient_penalty``,
Adam lr 1e-4, β (0.5, 0.9), λ = 0.1 as in the toy code whose fixed-generator mode drew Figure 1a; the
paper's image experiments use λ = 10, ``penalty_weight=10``). Critic loss L_D = E D(fake) − E D(real)
(+ the penalty). Batches of 256, as in the toy code.

* **Depth** (Figure 1b): on the Swiss roll, a deep critic (12 hidden ReLU layers, no BatchNorm). After
  training: the weight histograms, the fraction of weights within 1% of ±c, and the norm of the
  gradient of the critic loss (without the penalty) with respect to each layer's activations
  ||∂L_D/∂h_l||, l = 1..13 (h_1..h_12 the hidden ReLU outputs, h_13 the critic's output), averaged
  over fresh batches.
* **Value surfaces** (Figure 1a): on 8gaussians, 25gaussians and swissroll, the toy code's critic
  (3 hidden ReLU layers), one per setting, evaluated on a grid over [-3, 3]².

All critics start from the same He-initialised weights (so the backward signal is preserved through
depth at initialisation: what the norms do afterwards is the training's doing) and see the same
batches; every random draw comes from generators seeded from ``seed``. Outputs in DIR:
``report.json``, ``weights.png``, ``grad_norms.png``, ``surfaces.png``, ``losses.png``.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from pygan import _validate as check
from pygan.experiments import _common
from pygan.optim import ClippedRMSprop
from pygan.penalties import gradient_penalty
from pygan.train.data import TOY_DATASETS, toy_sample

__all__ = ["ClippingConfig", "FILES", "run", "make_critic", "activation_grad_norms", "fraction_near"]

FILES = ("report.json", "weights.png", "grad_norms.png", "surfaces.png", "losses.png")
RANGE = 3.0  # the value surfaces cover [-RANGE, RANGE]^2, as the toy code's plots do


@dataclass
class ClippingConfig:
    """Options of ``clipping-vs-gp`` (the CLI's flags, ``-`` for ``_``)."""

    out: str = "runs/clipping-vs-gp"
    steps: int = field(default=400, metadata={"help": "critic updates per depth critic"})
    surface_steps: int = field(default=1500, metadata={"help": "critic updates per value-surface critic"})
    clips: tuple = field(default=(0.1, 0.01, 0.001), metadata={
        "help": "clipping thresholds c, comma-separated", "default_text": "0.1,0.01,0.001"})
    penalty_weight: float = field(default=0.1, metadata={
        "help": "the penalty's λ", "default_text": "%(default)s, the authors' toy code's; the paper's image "
                                                  "experiments use 10",
        "deprecated_flags": ("--gp-weight",)})
    width: int = field(default=512, metadata={"help": "depth critic width"})
    layers: int = field(default=12, metadata={"help": "depth critic hidden layers"})
    surface_width: int = field(default=512, metadata={"help": "value-surface critic width"})
    surface_layers: int = field(default=3, metadata={"help": "value-surface critic hidden layers",
                                                     "default_text": "%(default)s, the toy code's"})
    batch_size: int = field(default=256, metadata={"help": "critic batch size"})
    lr_clip: float = field(default=5e-5, metadata={"cli": False})
    lr_gp: float = field(default=1e-4, metadata={"cli": False})
    measure_batches: int = field(default=8, metadata={"help": "fresh batches the final numbers are averaged over"})
    grid: int = field(default=96, metadata={"help": "value-surface resolution per axis"})
    datasets: tuple = field(default=TOY_DATASETS, metadata={"cli": False})
    surfaces: bool = field(default=True, metadata={"help": "skip the value surfaces"})
    seed: int = 0
    device: str = "cpu"
    force: bool = False
    quiet: bool = False
    plots: bool = True

    def validate(self) -> None:
        """Check every option (named by its flag). Raises: ExperimentError."""
        with _common.options_checked():
            for name in ("steps", "surface_steps", "width", "layers", "surface_width", "surface_layers",
                         "batch_size", "measure_batches", "grid"):
                check.integer(getattr(self, name), _common.flag(name), low=1)
            if not self.clips:
                raise _common.ExperimentError("--clips must be one or more positive finite numbers, got none")
            for c in self.clips:
                check.number(c, "--clips", low=0, low_open=True)
            if len(set(self.clips)) != len(self.clips):
                raise _common.ExperimentError(f"--clips has repeated values: {list(self.clips)!r}")
            check.number(self.penalty_weight, "--penalty-weight", low=0)
            for name in ("lr_clip", "lr_gp"):
                check.number(getattr(self, name), _common.flag(name), low=0, low_open=True)
            bad = [d for d in self.datasets if d not in TOY_DATASETS]
            if bad or not self.datasets:
                raise _common.ExperimentError(f"--datasets: unknown {', '.join(map(repr, bad)) or '(none given)'}; "
                                              f"expected some of {', '.join(TOY_DATASETS)}")

    @property
    def gp_weight(self) -> float:
        """Deprecated name of :attr:`penalty_weight` (for one release)."""
        warnings.warn("ClippingConfig.gp_weight is deprecated; use penalty_weight", DeprecationWarning, stacklevel=2)
        return self.penalty_weight

    @gp_weight.setter
    def gp_weight(self, value: float) -> None:
        warnings.warn("ClippingConfig.gp_weight is deprecated; use penalty_weight", DeprecationWarning, stacklevel=2)
        self.penalty_weight = value


# The field's old keyword, ClippingConfig(gp_weight=...), still works for one release.
ClippingConfig.__init__ = check.renamed_keywords("ClippingConfig", gp_weight="penalty_weight")(ClippingConfig.__init__)


def _setting_names(clips) -> list[str]:
    return [f"clip={c:g}" for c in clips] + ["gp"]


def make_critic(width: int, layers: int, generator: torch.Generator, device) -> nn.Sequential:
    """An MLP critic 2 -> width (x layers, ReLU) -> 1, no normalisation, He-normal weights, zero biases.

    He initialisation (std sqrt(2 / fan_in)) keeps the backward signal's scale through ReLU layers at
    initialisation, so growth or decay with depth after training comes from the training itself.
    """
    mods, d_in = [], 2
    for _ in range(layers):
        mods += [nn.Linear(d_in, width), nn.ReLU()]
        d_in = width
    mods.append(nn.Linear(d_in, 1))
    critic = nn.Sequential(*mods)
    with torch.no_grad():
        for m in critic:
            if isinstance(m, nn.Linear):
                w = torch.empty(m.weight.shape)
                nn.init.kaiming_normal_(w, nonlinearity="relu", generator=generator)
                m.weight.copy_(w)
                m.bias.zero_()
    return critic.to(device)


def activation_grad_norms(critic: nn.Sequential, real: torch.Tensor, fake: torch.Tensor) -> list[float]:
    """||∂L/∂h_l|| for L = E D(fake) − E D(real): h_l the output of each hidden ReLU, then D's output.

    Returns:
        One norm per layer (layer 1 first); each is the Frobenius norm over the batch [2B, width].
    """
    h = torch.cat([real, fake])
    acts = []
    for module in critic:
        h = module(h)
        if isinstance(module, nn.ReLU):
            acts.append(h)
    acts.append(h)
    b = real.shape[0]
    loss = h[b:].mean() - h[:b].mean()
    grads = torch.autograd.grad(loss, acts)
    return [float(g.double().norm()) for g in grads]  # float64: squares of 1e-25 underflow in float32


def _weights(critic: nn.Module) -> torch.Tensor:
    return torch.cat([m.weight.detach().reshape(-1) for m in critic if isinstance(m, nn.Linear)]).cpu()


def fraction_near(weights: torch.Tensor, c: float, rel: float = 0.01) -> float:
    """The fraction of ``weights`` within ``rel``·c of +c or −c: | |w| − c | <= rel·c."""
    return float(((weights.abs() - c).abs() <= rel * c).double().mean())


def _batch(dataset: str, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A real batch and the fixed generator's batch: the same points plus N(0, I) noise."""
    real = toy_sample(dataset, n, generator=gen)
    return real, real + torch.randn(real.shape, generator=gen, device=real.device)


def _train(cfg: ClippingConfig, dataset: str, setting: str, width: int, layers: int, steps: int,
           device: torch.device) -> tuple[nn.Sequential, dict]:
    """Train one critic against the fixed generator; return it and its training record."""
    init_gen = torch.Generator().manual_seed(cfg.seed)            # same initial weights for every setting
    critic = make_critic(width, layers, init_gen, device)
    data_gen = torch.Generator(device).manual_seed(cfg.seed + 1)  # same batches for every setting
    alpha_gen = torch.Generator(device).manual_seed(cfg.seed + 2)
    if setting == "gp":
        clip = None
        opt = torch.optim.Adam(critic.parameters(), lr=cfg.lr_gp, betas=(0.5, 0.9))
    else:
        clip = float(setting.split("=", 1)[1])
        opt = ClippedRMSprop(critic.parameters(), lr=cfg.lr_clip, clip=clip)
    log_every = max(1, steps // 100)
    curve_steps, curve_loss = [], []
    after_first = None
    b = cfg.batch_size
    for step in range(steps):
        real, fake = _batch(dataset, b, data_gen)
        scores = critic(torch.cat([real, fake])).reshape(-1)
        w_loss = scores[b:].mean() - scores[:b].mean()
        loss = w_loss
        if clip is None and cfg.penalty_weight > 0:
            loss = loss + gradient_penalty(critic, real, fake, weight=cfg.penalty_weight, generator=alpha_gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step == 0 and clip is not None:
            after_first = fraction_near(_weights(critic), clip)
        if step % log_every == 0 or step == steps - 1:
            curve_steps.append(step + 1)
            curve_loss.append(float(w_loss.detach()))
    if not all(math.isfinite(v) for v in curve_loss):
        print(f"warning: {dataset} {setting}: non-finite critic loss during training", file=sys.stderr)
    return critic, {"clip": clip, "after_first_step": after_first, "curve": {"step": curve_steps,
                                                                             "critic_loss": curve_loss}}


def _measure(cfg: ClippingConfig, critic: nn.Sequential, dataset: str, device, is_gp: bool) -> dict:
    """Critic loss, penalty, input-gradient norm and per-layer activation-gradient norms on fresh batches."""
    gen = torch.Generator(device).manual_seed(cfg.seed + 3)
    alpha_gen = torch.Generator(device).manual_seed(cfg.seed + 4)
    norms, losses, penalties, in_norms = [], [], [], []
    for _ in range(cfg.measure_batches):
        real, fake = _batch(dataset, cfg.batch_size, gen)
        norms.append(activation_grad_norms(critic, real, fake))
        with torch.no_grad():
            losses.append(float(critic(fake).double().mean() - critic(real).double().mean()))
        # ||∇_x D(x̂)|| at the penalty's interpolates, and the penalty (at the configured λ) itself
        alpha = torch.rand(real.shape[0], 1, generator=alpha_gen, device=device)
        x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)
        g_norm = g.double().norm(dim=1)
        in_norms.append(float(g_norm.mean()))
        penalties.append(float(cfg.penalty_weight * ((g_norm - 1) ** 2).mean()))
    layer = torch.tensor(norms, dtype=torch.float64).mean(0)
    positive = layer[layer > 0]
    span = float(torch.log10(positive.max() / positive.min())) if positive.numel() == layer.numel() else math.inf
    return {
        "critic_loss": sum(losses) / len(losses),
        # the penalty term only where it is trained; input_grad_norm says how far from 1 clipping is
        "penalty": sum(penalties) / len(penalties) if is_gp else None,
        "input_grad_norm": sum(in_norms) / len(in_norms),
        "layer_grad_norms": layer.tolist(),
        "grad_norm_ratio_layer1_over_last": float(layer[0] / layer[-1]) if layer[-1] > 0 else math.inf,
        "layer_grad_norm_log10_span": span,
    }


def _weight_stats(critic: nn.Sequential, clips, record: dict) -> dict:
    weights = _weights(critic)
    stats = {"weight_abs_max": float(weights.abs().max()), "weight_std": float(weights.std()),
             "n_weights": weights.numel()}
    if record["clip"] is not None:
        stats["fraction_near_clip"] = fraction_near(weights, record["clip"])
        stats["fraction_near_clip_after_first_step"] = record["after_first_step"]
        # every parameter, biases included (ClippedRMSprop clamps them all), against c as a float32
        stats["inside_clip_range"] = all(bool((p.detach().abs() <= record["clip"]).all())
                                         for p in critic.parameters())
    else:  # the penalty has no c: the fraction near each c that clipping used
        stats["fraction_near_clip"] = {f"{c:g}": fraction_near(weights, c) for c in clips}
    return stats


def _surface(critic: nn.Sequential, grid: int, device) -> torch.Tensor:
    xs = torch.linspace(-RANGE, RANGE, grid)
    gx, gy = torch.meshgrid(xs, xs, indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1).to(device)
    with torch.no_grad():
        return critic(pts).reshape(grid, grid).cpu()


def _log(cfg: ClippingConfig, msg: str) -> None:
    if not cfg.quiet:
        print(msg, file=sys.stderr, flush=True)


def run(cfg: ClippingConfig) -> dict:
    """Run the experiment; write report.json and the pictures into ``cfg.out``; return the report."""
    cfg.validate()
    device = _common.resolve_device(cfg.device)
    out = _common.prepare_out(cfg.out, FILES, cfg.force)
    settings = _setting_names(cfg.clips)
    start = time.perf_counter()
    report = {"experiment": "clipping-vs-gp", "config": asdict(cfg),
              "torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads()}

    depth, depth_critics, weights = {}, {}, {}
    for setting in settings:
        t0 = time.perf_counter()
        critic, record = _train(cfg, "swissroll", setting, cfg.width, cfg.layers, cfg.steps, device)
        weights[setting] = _weights(critic)
        entry = _weight_stats(critic, cfg.clips, record)
        entry.update(_measure(cfg, critic, "swissroll", device, setting == "gp"))
        entry["loss_curve"] = record["curve"]
        entry["seconds"] = time.perf_counter() - t0
        depth[setting], depth_critics[setting] = entry, critic
        _log(cfg, f"depth   swissroll   {setting:<11} {cfg.steps} steps {entry['seconds']:6.1f} s  "
                  + (f"within 1% of ±c {entry['fraction_near_clip']:.1%}  " if record["clip"] else "")
                  + f"layer norms span 10^{entry['layer_grad_norm_log10_span']:.2f}")
    report["depth"] = {"dataset": "swissroll", "hidden_layers": cfg.layers, "width": cfg.width,
                       "steps": cfg.steps, "settings": depth}
    t_depth = time.perf_counter() - start

    surfaces, surface_values = {}, {}
    if cfg.surfaces:
        for dataset in cfg.datasets:
            surfaces[dataset], surface_values[dataset] = {}, {}
            for setting in settings:
                t0 = time.perf_counter()
                critic, record = _train(cfg, dataset, setting, cfg.surface_width, cfg.surface_layers,
                                        cfg.surface_steps, device)
                m = _measure(cfg, critic, dataset, device, setting == "gp")
                entry = {"critic_loss": m["critic_loss"], "input_grad_norm": m["input_grad_norm"],
                         "seconds": time.perf_counter() - t0}
                if record["clip"] is not None:
                    entry["fraction_near_clip"] = fraction_near(_weights(critic), record["clip"])
                    entry["fraction_near_clip_after_first_step"] = record["after_first_step"]
                surfaces[dataset][setting] = entry
                surface_values[dataset][setting] = _surface(critic, cfg.grid, device)
                _log(cfg, f"surface {dataset:<11} {setting:<11} {cfg.surface_steps} steps {entry['seconds']:6.1f} s")
        surface_values["swissroll (depth critic)"] = {name: _surface(critic, cfg.grid, device)
                                                      for name, critic in depth_critics.items()}
    report["surfaces"] = {"hidden_layers": cfg.surface_layers, "width": cfg.surface_width,
                          "steps": cfg.surface_steps, "range": RANGE, "datasets": surfaces}
    report["checks"] = _checks(cfg, depth)
    report["wall_seconds"] = {"depth": t_depth, "surfaces": time.perf_counter() - start - t_depth}

    if cfg.plots and _common.plots_available():
        t0 = time.perf_counter()
        from pygan.experiments import plots

        plots.weights(out / "weights.png", weights, depth)
        plots.grad_norms(out / "grad_norms.png", depth,
                         f"Swiss roll, critic {cfg.layers}×{cfg.width} ReLU, {cfg.steps} critic steps")
        plots.losses(out / "losses.png", depth)
        if cfg.surfaces:
            # The real points drawn over each dataset's surfaces (a draw of its own: the runs' are unchanged).
            points = {name.split(" ")[0]: toy_sample(name.split(" ")[0], 300,
                                                     generator=torch.Generator().manual_seed(cfg.seed + 5))
                      for name in surface_values}
            plots.surfaces(out / "surfaces.png", surface_values, points, RANGE, cfg.layers, cfg.surface_layers)
        report["wall_seconds"]["plots"] = time.perf_counter() - t0
    elif cfg.plots:
        _log(cfg, "matplotlib is not installed: no pictures (pip install 'pygan-torch[plot]'); report.json only")
    report["wall_seconds"]["total"] = time.perf_counter() - start
    _common.write_json(out / "report.json", report)
    return report


def _checks(cfg: ClippingConfig, depth: dict) -> dict:
    """The targets, evaluated on this run's numbers (True / False, None when not applicable)."""
    checks = {}
    for c in cfg.clips:
        entry = depth[f"clip={c:g}"]
        checks[f"clip={c:g}: all weights inside [-c, c]"] = entry["inside_clip_range"]
    if 0.01 in cfg.clips:
        checks["clip=0.01: most weights within 1% of ±c (> 0.5)"] = depth["clip=0.01"]["fraction_near_clip"] > 0.5
        checks["gp: few weights within 1% of ±0.01 (< 0.05)"] = depth["gp"]["fraction_near_clip"]["0.01"] < 0.05
    if 0.1 in cfg.clips:
        checks["clip=0.1: norms grow towards layer 1 by > 100x"] = \
            depth["clip=0.1"]["grad_norm_ratio_layer1_over_last"] > 100
    if 0.001 in cfg.clips:
        checks["clip=0.001: norms shrink towards layer 1 by > 100x"] = \
            depth["clip=0.001"]["grad_norm_ratio_layer1_over_last"] < 0.01
    checks["gp: per-layer norms within one order of magnitude"] = depth["gp"]["layer_grad_norm_log10_span"] < 1
    return checks
