"""Benchmark the thin trainer's step, ``pygan.train.Trainer.train_step()``, against the canonical
plain-PyTorch training loop it replaces: generator steps per second, each step being ``n_critic``
critic updates and one generator update.

The setting is the WGAN-GP authors' toy experiment (``gan_toy.py``), which is also what
``python -m pygan train --loss wgan-gp --data 8gaussians`` runs: generator and critic MLPs with 3
hidden layers of 512 (ReLU), latent dimension 2, 8 Gaussians, batch 256, n_critic 5. Both sides use
the same modules (``pygan.train.models.mlp_generator`` / ``mlp_critic``, seed 0), the same optimisers
and the same data source (``pygan.train.data.toy_sample`` from a ``torch.Generator`` of their own), so
the data costs the same on both sides.

**wgan-gp** (case ``wgan-gp MLP 3x512``): Adam(lr 1e-4, betas (0.5, 0.9)) on both networks, λ = 0.1.
    canonical WGAN-GP loop         per critic update: ``real = toy_sample(...)``;
                                   ``with torch.no_grad(): fake = G(torch.randn(B, 2))``;
                                   ``D(real).mean()``, ``D(fake).mean()``; ``alpha = torch.rand(B, 1)``;
                                   ``interp = (alpha * real + (1 - alpha) * fake).requires_grad_(True)``;
                                   ``grads = autograd.grad(D(interp), interp, grad_outputs=ones,
                                   create_graph=True)[0]``; ``((grads.norm(2, dim=1) - 1) ** 2).mean() * λ``;
                                   ``zero_grad(); (d_fake - d_real + gp).backward(); step()``. Generator:
                                   ``for p in D.parameters(): p.requires_grad = False``;
                                   ``(-D(G(torch.randn(B, 2))).mean()).backward(); step()`` (baseline)
    pygan Trainer.train_step       ``Trainer(G, D, g_opt, d_opt, ToySampler(...), loss="wgan-gp",
                                   n_critic=5, penalty_weight=0.1, out=None, eval_data=None,
                                   plots=False, progress=False).train_step()`` (pygan) with the
                                   optimisers ``python -m pygan train`` builds
                                   (``pygan.train.assemble.make_optimizers``: fused Adam): the fused
                                   ``pygan.ops.interpolate`` and ``grad_penalty``, same math
    pygan Trainer, wgan-fd         the same trainer with ``loss="wgan-fd"``: the finite-difference
                                   penalty (one ordinary backward, no double backward) at the same
                                   λ. Another objective: for information, against the GP loop (pygan)

**wgan** (case ``wgan MLP 3x512``, weight clipping, the WGAN paper's settings): RMSprop(lr 5e-5),
c = 0.01, both sides starting from the same clipped weights.
    canonical WGAN loop            per critic update: ``(D(fake).mean() - D(real).mean()).backward()``,
                                   ``RMSprop.step()``, then ``for p in D.parameters():
                                   p.data.clamp_(-c, c)``; the generator update as above (baseline).
                                   The clamp follows each update (Algorithm 1's order; the authors'
                                   code clamps before each critic update instead)
    pygan Trainer.train_step       ``loss="wgan"`` with ``pygan.optim.ClippedRMSprop(D, lr, clip=c)``
                                   (update and clamp fused) and ``torch.optim.RMSprop(foreach=True)``
                                   for G (pygan), as ``make_optimizers`` builds them

Both sides read their losses back to the host once per generator step (``train_step`` returns them as
floats and checks that they are finite; a loop that logs does the same): one ``.tolist()`` each.

Correctness before timing: the canonical loop draws z and alpha from a ``torch.Generator`` seeded as
the trainer's, in the trainer's order (per critic update: the real batch from the data generator,
z = randn(B, 2), alpha = rand(B); then z for the generator update), and its data generator is seeded
as the trainer's sampler. So from the same initial weights both do exactly the same math: after
``CHECK_STEPS`` = 2 generator steps each pygan row's losses (every step) and the parameters of both
networks are compared with the canonical loop's (CPU: rtol 1e-4, atol 1e-6; the only differences are
the fused ops' rounding). The wgan-fd row is checked for finite losses and for moving the critic's
weights by an amount of the same order as the GP loop (its update norm ratio is in the JSON).

Timing: every row gets fresh state (copies of the same initial weights); ``WARMUP`` generator steps,
then samples of ``STEPS_PER_SAMPLE`` consecutive generator steps, the rows sampled in turn
(round-robin, so background load hits them alike), synchronising the GPU at both ends of a sample on
CUDA. Reported per generator step: median, quartiles, IQR, steps/s; ``vs best`` = the canonical loop's
median / this row's (> 1: pygan is faster).

Optional (off by default): ``--compile`` (``python bench/train.py --compile``, or
``PYGAN_BENCH_COMPILE=1 python -m pygan bench --only train``) adds rows where G and D are wrapped in
``torch.compile`` on both sides. Rows that torch.compile cannot run (the gradient penalty's double
backward: AOTAutograd does not differentiate its compiled backward again) are reported as skipped
with the error, not failed. Compilation makes the first steps slow: it happens in the check.

Usage: ``python bench/train.py [--device cpu|cuda|all] [--out DIR] [--quick] [--threads N] [--compile]``
(or ``python -m pygan bench --only train``). ``--quick``: fewer, shorter samples (a smoke run).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
from pathlib import Path
from typing import Callable

if not __package__:  # `python bench/train.py`: run as a module of the bench package (PEP 366)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from . import _harness as H, tables  # noqa: E402

import torch

DATASET = "8gaussians"
BATCH, LATENT, DIM, HIDDEN, LAYERS, N_CRITIC = 256, 2, 2, 512, 3, 5
GP_WEIGHT, GP_LR, GP_BETAS = 0.1, 1e-4, (0.5, 0.9)  # the WGAN-GP authors' toy code
WGAN_LR, CLIP = 5e-5, 0.01  # the WGAN paper
MODEL_SEED, DATA_SEED, DRAW_SEED = 0, 1, 2
CHECK_STEPS = 2
TOLERANCE = {"cpu": (1e-4, 1e-6), "cuda": (1e-3, 1e-5)}  # (rtol, atol) of the check, per device type
TIMING = {False: {"warmup": 5, "steps_per_sample": 5, "samples": 15},  # per row: 80 generator steps
          True: {"warmup": 1, "steps_per_sample": 1, "samples": 3}}

CANONICAL_GP = "canonical WGAN-GP loop"
PYGAN_GP = "pygan Trainer.train_step"
PYGAN_FD = "pygan Trainer, wgan-fd (no double backward)"
CANONICAL_CLIP = "canonical WGAN loop (RMSprop + clamp_)"
PYGAN_CLIP = "pygan Trainer.train_step (ClippedRMSprop)"
COMPILED = " + torch.compile"


# ---- the two sides ---------------------------------------------------------------------------------

class CanonicalLoop:
    """The plain-PyTorch loop of gan_toy.py (module docstring), for ``loss`` "wgan-gp" or "wgan".

    ``step()`` does one generator step and returns [loss_d, loss_g, penalty] as floats (penalty 0 for
    wgan). z and alpha come from ``self.gen``, the real batches from ``self.data_gen``.
    """

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, loss: str, device: str,
                 compile: bool = False):
        from pygan.train.data import toy_sample

        self.toy_sample = toy_sample
        self.G, self.D, self.loss, self.device = G, D, loss, device
        if loss == "wgan-gp":
            self.d_opt = torch.optim.Adam(D.parameters(), lr=GP_LR, betas=GP_BETAS)
            self.g_opt = torch.optim.Adam(G.parameters(), lr=GP_LR, betas=GP_BETAS)
        else:
            self.d_opt = torch.optim.RMSprop(D.parameters(), lr=WGAN_LR)
            self.g_opt = torch.optim.RMSprop(G.parameters(), lr=WGAN_LR)
        self.netG = torch.compile(G) if compile else G  # the optimisers hold the same parameters
        self.netD = torch.compile(D) if compile else D
        self.gen = torch.Generator(device=device).manual_seed(DRAW_SEED)
        self.data_gen = torch.Generator(device=device).manual_seed(DATA_SEED)

    def step(self) -> list[float]:
        G, D, B, dev = self.netG, self.netD, BATCH, self.device
        for p in self.D.parameters():
            p.requires_grad = True
        for _ in range(N_CRITIC):
            real = self.toy_sample(DATASET, B, generator=self.data_gen)
            with torch.no_grad():
                fake = G(torch.randn(B, LATENT, generator=self.gen, device=dev))
            d_real = D(real).mean()
            d_fake = D(fake).mean()
            if self.loss == "wgan-gp":
                alpha = torch.rand(B, 1, generator=self.gen, device=dev)
                interp = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
                d_interp = D(interp)
                grads = torch.autograd.grad(d_interp, interp, grad_outputs=torch.ones_like(d_interp),
                                            create_graph=True)[0]
                gp = ((grads.norm(2, dim=1) - 1) ** 2).mean() * GP_WEIGHT
                d_cost = d_fake - d_real + gp
            else:
                gp = torch.zeros((), device=dev)
                d_cost = d_fake - d_real
            self.d_opt.zero_grad()
            d_cost.backward()
            self.d_opt.step()
            if self.loss == "wgan":
                for p in self.D.parameters():
                    p.data.clamp_(-CLIP, CLIP)
        for p in self.D.parameters():
            p.requires_grad = False
        g_cost = -D(G(torch.randn(B, LATENT, generator=self.gen, device=dev))).mean()
        self.g_opt.zero_grad()
        g_cost.backward()
        self.g_opt.step()
        return torch.stack([d_cost.detach(), g_cost.detach(), gp.detach()]).tolist()


class PyganLoop:
    """``pygan.train.Trainer`` on the same models, optimisers and batch; ``step()`` = ``train_step()``."""

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, loss: str, device: str,
                 compile: bool = False):
        from pygan.train import Trainer
        from pygan.train.data import ToySampler

        from pygan.train.assemble import make_optimizers

        # The optimisers `python -m pygan train` uses: ClippedRMSprop + RMSprop(foreach) for wgan,
        # fused Adam for the others (the canonical loop keeps torch's defaults, as user code does).
        lr = WGAN_LR if loss == "wgan" else GP_LR
        g_opt, d_opt = make_optimizers(loss, G, D, lr, lr, CLIP)
        self.G, self.D = G, D
        sampler = ToySampler(DATASET, BATCH, DATA_SEED, device)
        self.trainer = Trainer(torch.compile(G) if compile else G, torch.compile(D) if compile else D,
                               g_opt, d_opt, sampler, loss=loss, latent_shape=LATENT, n_critic=N_CRITIC,
                               penalty_weight=GP_WEIGHT, eval_data=None, out=None, seed=DRAW_SEED,
                               plots=False, progress=False)
        # The canonical loop's streams, whatever seeds pygan derives internally: the check stays exact.
        self.trainer.generator.manual_seed(DRAW_SEED)
        sampler.generator.manual_seed(DATA_SEED)

    def step(self) -> list[float]:
        s = self.trainer.train_step()
        return [s["loss_d"], s["loss_g"], s["penalty"]]


def initial_models(device: str, clipped: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The seeded G and D every row copies (D's weights clipped to [-c, c] for the wgan case)."""
    from pygan.train.models import mlp_critic, mlp_generator

    torch.manual_seed(MODEL_SEED)
    G = mlp_generator(LATENT, DIM, HIDDEN, LAYERS).to(device)
    D = mlp_critic(DIM, HIDDEN, LAYERS).to(device)
    if clipped:
        with torch.no_grad():
            for p in D.parameters():
                p.clamp_(-CLIP, CLIP)
    return G, D


class Row:
    """One row: how to build its loop, its role, and how it is checked ("exact" against the baseline,
    "finite" for another objective); ``optional`` rows (torch.compile) are skipped when they fail."""

    def __init__(self, name: str, role: str, make: Callable[[], CanonicalLoop | PyganLoop], check: str,
                 optional: bool = False):
        self.name, self.role, self.make, self.check, self.optional = name, role, make, check, optional


def rows_for(loss: str, device: str, compile: bool) -> list[Row]:
    G0, D0 = initial_models(device, clipped=loss == "wgan")

    def make(cls, loss_name: str, compiled: bool) -> Callable:
        return lambda: cls(copy.deepcopy(G0), copy.deepcopy(D0), loss_name, device, compiled)

    if loss == "wgan-gp":
        rows = [Row(CANONICAL_GP, "baseline", make(CanonicalLoop, "wgan-gp", False), "reference"),
                Row(PYGAN_GP, "pygan", make(PyganLoop, "wgan-gp", False), "exact"),
                Row(PYGAN_FD, "pygan", make(PyganLoop, "wgan-fd", False), "finite")]
        if compile:
            rows += [Row(CANONICAL_GP + COMPILED, "baseline", make(CanonicalLoop, "wgan-gp", True), "exact", True),
                     Row(PYGAN_GP + COMPILED, "pygan", make(PyganLoop, "wgan-gp", True), "exact", True),
                     Row(PYGAN_FD + COMPILED, "pygan", make(PyganLoop, "wgan-fd", True), "finite", True)]
    else:
        rows = [Row(CANONICAL_CLIP, "baseline", make(CanonicalLoop, "wgan", False), "reference"),
                Row(PYGAN_CLIP, "pygan", make(PyganLoop, "wgan", False), "exact")]
        if compile:
            rows += [Row(CANONICAL_CLIP + COMPILED, "baseline", make(CanonicalLoop, "wgan", True), "exact", True),
                     Row(PYGAN_CLIP + COMPILED, "pygan", make(PyganLoop, "wgan", True), "exact", True)]
    return rows


# ---- correctness, then timing ----------------------------------------------------------------------

def _params(loop) -> list[torch.Tensor]:
    return [p.detach().clone() for p in (*loop.G.parameters(), *loop.D.parameters())]


def _update_norm(before: list[torch.Tensor], after: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float((a - b).double().pow(2).sum()) for a, b in zip(after, before)))


def check(case: str, rows: list[Row], device: str) -> tuple[list[Row], dict[str, dict]]:
    """Run every row ``CHECK_STEPS`` steps from the same weights and draws; compare with the baseline.

    Returns:
        The rows that passed (optional rows that raised are dropped) and, per row name, what the check
        found: ``{"check": text, "max_abs_param_diff", "max_rel_loss_diff", "update_norm_vs_baseline"}``,
        or ``{"skipped": reason}``. A failed mandatory row raises AssertionError naming the case and row.
    """
    rtol, atol = TOLERANCE["cuda" if device.startswith("cuda") else "cpu"]
    ref_losses, ref_params, ref_update = None, None, None
    kept, info = [], {}
    for row in rows:
        try:
            loop = row.make()
            before = _params(loop)
            losses = [loop.step() for _ in range(CHECK_STEPS)]
            H.synchronize(device)
            after = _params(loop)
        except Exception as exc:  # noqa: BLE001 - optional rows report why they cannot run
            if not row.optional:
                raise
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]
            info[row.name] = {"role": row.role, "skipped": reason}
            print(f"  {case:<20} {row.name:<62} skipped: {reason}", file=sys.stderr, flush=True)
            continue
        update = _update_norm(before, after)
        if not all(math.isfinite(v) for step in losses for v in step):
            raise AssertionError(f"{case} / {row.name}: non-finite losses {losses}")
        if row.check == "reference":
            ref_losses, ref_params, ref_update = losses, after, update
            entry = {"check": "the reference of this case"}
        elif row.check == "exact":
            H.check_close(f"{case} / {row.name}: losses [loss_d, loss_g, penalty] per step vs {rows[0].name}",
                          [torch.tensor(ref_losses, dtype=torch.float64)],
                          [torch.tensor(losses, dtype=torch.float64)], rtol, atol)
            H.check_close(f"{case} / {row.name}: parameters after {CHECK_STEPS} steps vs {rows[0].name}",
                          ref_params, after, rtol, atol)
            rel = max(abs(a - b) / max(abs(b), 1e-12) for s, r in zip(losses, ref_losses) for a, b in zip(s, r))
            diff = max(float((a - b).abs().max()) for a, b in zip(after, ref_params))
            entry = {"check": f"same math as {rows[0].name}: max |param diff| {diff:.1e} after "
                              f"{CHECK_STEPS} steps", "max_abs_param_diff": diff, "max_rel_loss_diff": rel}
        else:  # another objective: finite, and it trains (an update of the same order of magnitude)
            ratio = update / ref_update
            if not 0.1 < ratio < 10:
                raise AssertionError(f"{case} / {row.name}: its {CHECK_STEPS} steps moved the weights "
                                     f"{ratio:.3g}x as far as {rows[0].name}'s (expected the same order)")
            entry = {"check": f"other loss: finite losses, update norm {ratio:.2f}x {rows[0].name}'s"}
        entry["update_norm_vs_baseline"] = update / ref_update
        info[row.name] = entry
        kept.append(row)
        del loop
    return kept, info


def time_rows(loops: list, device: str, quick: bool) -> list[H.Timing]:
    """Warm up each loop, then round-robin samples of ``steps_per_sample`` generator steps each.

    Returns one Timing per loop, in microseconds per generator step.
    """
    plan = TIMING[quick]
    for loop in loops:
        for _ in range(plan["warmup"]):
            loop.step()
    k = plan["steps_per_sample"]
    per_step = H.round_robin([loop.step for loop in loops], device, [k] * len(loops),
                             [plan["samples"]] * len(loops))
    return [H.summarize(times, k) for times in per_step]


def measure(case: str, loss: str, device: str, quick: bool, compile: bool) -> dict:
    """Check, then time, one case's rows; the harness's case layout with per-step times."""
    print(f"train [{device}] {case}: batch {BATCH}, n_critic {N_CRITIC}", file=sys.stderr, flush=True)
    rows, info = check(case, rows_for(loss, device, compile), device)
    loops = [row.make() for row in rows]
    timings = time_rows(loops, device, quick)
    del loops
    out = []
    for row, t in zip(rows, timings):
        out.append(H.timing_row(row.name, row.role, t, steps_per_s=1e6 / t.median_us, **info[row.name]))
        print(f"  {case:<20} {row.name:<62} {t.median_us / 1e3:>10.2f} ms/step", file=sys.stderr, flush=True)
    for name, entry in info.items():
        if "skipped" in entry:
            out.append({"name": name, "median_us": None, **entry})
    return H.finish_case({"case": case, "loss": loss, "fastest_baseline": None, "bytes_per_call": None,
                          "unit": "generator step", "rows": out})


def print_table(title: str, cases: list[dict]) -> None:
    """Per generator step: median and IQR in ms, steps/s, vs the fastest baseline, the check's note."""
    H.print_rows(title, cases, [
        H.Column("case", 20, lambda c, r: c["case"], "<"),
        H.Column("candidate", 62, lambda c, r: r["name"], "<"),
        H.Column("ms/step", 9, lambda c, r: tables.ms(r.get("median_us"))),
        H.Column("IQR ms", 8, lambda c, r: tables.ms(r.get("iqr_us"))),
        H.Column("steps/s", 8, lambda c, r: "" if r.get("steps_per_s") is None else f"{r['steps_per_s']:.1f}"),
        H.Column("vs best", 8, lambda c, r: tables.ratio(r.get("speedup_vs_fastest_baseline"))),
    ], lambda c, r: "; ".join(tables.train_row_notes(c, r)))


def run(device: str, out_dir: Path, quick: bool, compile: bool | None = None) -> dict:
    """Check and time both cases on ``device``; print the table; write ``train_<device>.json``.

    Args:
        device: ``"cpu"`` or ``"cuda"``.
        out_dir: where the JSON goes.
        quick: fewer, shorter samples.
        compile: add the torch.compile rows (None: ``PYGAN_BENCH_COMPILE=1`` in the environment).

    Returns:
        The JSON payload.
    """
    import pygan.train  # noqa: F401  (fail here, not mid-run, if the package is broken)

    if compile is None:
        compile = os.environ.get("PYGAN_BENCH_COMPILE", "") == "1"
    H.require_extension(device)
    load = H.load_check()
    cases = [measure("wgan-gp MLP 3x512", "wgan-gp", device, quick, compile),
             measure("wgan MLP 3x512", "wgan", device, quick, compile)]
    label, threads = H.device_label(device), torch.get_num_threads()
    print_table(f"training step (n_critic {N_CRITIC} critic updates + 1 generator update), {label}, "
                f"{threads} threads, batch {BATCH} (vs best = canonical loop time / this time)", cases)
    payload = {"hyperparameters": {"dataset": DATASET, "batch": BATCH, "latent": LATENT, "hidden": HIDDEN,
                                   "layers": LAYERS, "n_critic": N_CRITIC, "penalty_weight": GP_WEIGHT,
                                   "gp_lr": GP_LR, "gp_betas": list(GP_BETAS), "wgan_lr": WGAN_LR,
                                   "clip": CLIP, "check_steps": CHECK_STEPS},
               "timing": TIMING[quick], "compile": compile, "case_header": "case", "quick": quick,
               "cpu_busy_before": load, "threads": threads, "cases": cases, "targets": []}
    H.write_json(out_dir, "train", device, payload)
    return payload


def main(argv: list[str] | None = None) -> int:
    """``python bench/train.py``: ``python -m pygan bench``'s options minus ``--only``, plus ``--compile``."""
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--compile", action="store_true",
                       help="also time G and D wrapped in torch.compile (both sides)")
    ours, rest = extra.parse_known_args(argv)
    if "-h" in rest or "--help" in rest:
        print("bench/train.py also takes --compile: add rows with G and D wrapped in torch.compile "
              "(both sides; rows it cannot run are reported skipped)\n")
    return H.script_main(lambda d, o, q: run(d, o, q, compile=ours.compile), rest, "bench/train.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
