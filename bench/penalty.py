"""Benchmark the gradient penalties: the fused epilogue, the whole WGAN-GP critic step, and the cheaper
alternatives (finite differences, lazy regularisation).

Three parts, all in ``penalty_<device>.json`` (each case has a ``part`` field).

**Epilogue** (cases ``grads 256x12288`` = [256, 3·64·64] and ``grads 256x2``): forward + backward of
the penalty on a given float32 gradient ``g`` (``g.grad = None; f(g).backward()``); no critic.
    canonical lines                ``((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()``: the snippet's
                                   norm/pow/mean lines (baseline)
    pygan.reference.grad_penalty   pygan's pure-torch twin (accumulates in float64; baseline)
    pygan.ops.grad_penalty         the fused op: one kernel forward, one backward (pygan)
The rows also carry ``speedup_vs_reference`` and ``speedup_vs_canonical``; the targets are against the
reference twin. ``GB/s`` = 3 x elements x 4 bytes / median (read g forward; read g, write g.grad backward).

**Critic step with the penalty** (cases ``step MLP 3x512``, batch 256 of 2-D points, and
``step DCGAN-64``, batch 64 of 3x64x64): ``zero_grad(); d_loss = D(fake).mean() - D(real).mean() +
penalty; d_loss.backward(); Adam(lr=1e-4, betas=(0.5, 0.9)).step()``, λ = 10.
    canonical WGAN-GP snippet      alpha = torch.rand(B, 1, ..., 1); x̂ = alpha·real + (1-alpha)·fake;
                                   autograd.grad(create_graph=True); the norm/pow/mean lines (baseline)
    pygan.gradient_penalty         ``pygan.gradient_penalty(D, real, fake, weight=10.0, generator=gen)`` (pygan)
    no penalty (ref)               the same step without any penalty: what the double backward costs
                                   (a reference row, not checked against the others: it does less work)
No targets: the numbers are reported as measured (on CPU the double backward roughly doubles the step).

**Finite differences and lazy regularisation** (cases ``fd/lazy MLP 3x512``, ``fd/lazy DCGAN-64``,
same critics, batches and step as above):
    GP every step (double backward)  the canonical snippet on every step (baseline)
    fd_penalty every step            ``pygan.fd_penalty(D, real, fake, weight=10.0, generator=gen)``: one
                                     ordinary backward, no double backward (pygan)
    GP lazy every 4 (x4)             ``pygan.LazyRegularizer(pygan.gradient_penalty, 4)``: the penalty
                                     x4 on one step in 4 (pygan)
    GP lazy every 16 (x16)           the same with every=16 (pygan)
The lazy rows time a whole cycle of ``every`` consecutive steps and report the mean per step (cycle
time / every; ``steps_per_call`` in the JSON), so the expensive step is always counted once per cycle.

The critics: the toy MLP (Linear(2, 512)-ReLU, two Linear(512, 512)-ReLU, Linear(512, 1)), and the
WGAN paper's DCGAN-64 critic **without BatchNorm**: batch normalisation couples the samples of a
batch, so WGAN-GP replaces it (Gulrajani et al. 2017, §4); here each BatchNorm2d of
``_harness.dcgan64`` is a ``GroupNorm(1, C)``, i.e. layer normalisation over (C, H, W) with a
per-channel scale and shift, as in the WGAN-GP authors' code. Same parameter count (2,765,568).

Correctness before timing: every row starts from a deep copy of the same critic (seed 0), the same
data, and its own ``torch.Generator`` seeded identically, from which the canonical snippet and pygan
draw the same per-sample alphas (both draw B uniforms); after one step each row's loss and parameter
gradients are compared with the first baseline's (rtol 1e-4, atol 1e-6). The alphas are drawn from
the generator rather than passed in because the check runs the very code that is timed, and an
explicit ``alpha`` costs pygan a range check (a host sync on a GPU) that a training loop does not pay.
fd_penalty and LazyRegularizer compute something else than the baseline, so before timing they are
checked on their own: fd_penalty's value and parameter gradients against a plain-torch transcription
of its formula (same alphas), and LazyRegularizer's values over one cycle against ``every`` x
``pygan.gradient_penalty``, then 0.0.

Usage: ``python bench/penalty.py [--device cpu|cuda|all] [--out DIR] [--quick] [--threads N]``
(or ``python -m pygan bench --only penalty``). ``--quick`` runs DCGAN-64 at batch 4 instead of 64 in
parts 2 and 3 (the case names stay the same; ``batch`` in the JSON says which).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Callable

if not __package__:  # `python bench/penalty.py`: run as a module of the bench package (PEP 366)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from . import _harness as H  # noqa: E402

import torch

WEIGHT, CENTER = 10.0, 1.0  # WGAN-GP's λ and target norm
LR, BETAS = 1e-4, (0.5, 0.9)  # the WGAN-GP paper's critic Adam
RTOL, ATOL = 1e-4, 1e-6  # step checks: float32 double backwards summed in different orders
EPILOGUE_SHAPES = (("grads 256x12288", (256, 3 * 64 * 64)), ("grads 256x2", (256, 2)))
LAZY_EVERY = (4, 16)
DCGAN_QUICK_BATCH = 4
ALPHA_SEED = 1


# ---- (a) the epilogue ------------------------------------------------------------------------------

def _canonical_lines(g: torch.Tensor) -> torch.Tensor:
    # Verbatim the snippet's norm/pow/mean lines, without the weight (pygan.ops.grad_penalty has none).
    return ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def epilogue_candidates(grads: torch.Tensor) -> list[H.Candidate]:
    """The epilogue rows for one gradient shape (the first is the correctness reference).

    Args:
        grads: the per-sample gradients [B, D] (only read: every row differentiates its own copy).

    Returns:
        Candidates whose state is ``{"g": leaf copy of grads, "p": the last penalty}``.
    """
    import pygan.ops
    import pygan.reference

    def setup() -> dict:
        return {"g": grads.detach().clone().requires_grad_(True), "p": None}

    def fwd_bwd(f: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[dict], None]:
        def run(st: dict) -> None:
            g = st["g"]
            g.grad = None
            p = f(g)
            p.backward()
            st["p"] = p.detach()
        return run

    def result(st: dict) -> list[torch.Tensor]:
        return [st["p"], st["g"].grad]

    return [
        H.Candidate("canonical lines", "baseline", setup, fwd_bwd(_canonical_lines), result),
        H.Candidate("pygan.reference.grad_penalty", "baseline", setup,
                    fwd_bwd(lambda g: pygan.reference.grad_penalty(g, CENTER, False, "mean")), result),
        H.Candidate("pygan.ops.grad_penalty", "pygan", setup,
                    fwd_bwd(lambda g: pygan.ops.grad_penalty(g, CENTER)), result),
    ]


def _epilogue_grads(shape: tuple[int, int], device: str) -> torch.Tensor:
    # Gradient-like values: per-sample norms spread over [0.5, 1.5], around WGAN-GP's target of 1.
    gen = torch.Generator(device=device).manual_seed(0)
    g = torch.randn(shape, device=device, generator=gen)
    scale = 0.5 + torch.rand(shape[0], 1, device=device, generator=gen)
    return g / g.norm(dim=1, keepdim=True) * scale


# ---- (b) and (c): critic steps ---------------------------------------------------------------------

def _dcgan64_no_bn() -> torch.nn.Module:
    """_harness.dcgan64 with each BatchNorm2d replaced by GroupNorm(1, C): layer norm over (C, H, W)."""
    def block(c_in: int, c_out: int, norm: bool) -> list[torch.nn.Module]:
        conv = torch.nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)
        return [conv, *([torch.nn.GroupNorm(1, c_out)] if norm else []), torch.nn.LeakyReLU(0.2)]

    return torch.nn.Sequential(*block(3, 64, False), *block(64, 128, True), *block(128, 256, True),
                               *block(256, 512, True), torch.nn.Conv2d(512, 1, 4, 1, 0, bias=False))


def step_critics(device: str, quick: bool) -> list[tuple[str, int, Callable[[], tuple]]]:
    """(name, batch, builder) per critic; the builder returns (critic, real, fake) on ``device``."""
    def make(module: Callable[[], torch.nn.Module], sample: tuple[int, ...], batch: int,
             image: bool) -> Callable[[], tuple]:
        def build() -> tuple:
            torch.manual_seed(0)
            critic = module().to(device)
            gen = torch.Generator(device=device).manual_seed(2)
            real = torch.randn(batch, *sample, device=device, generator=gen)
            fake = torch.randn(batch, *sample, device=device, generator=gen)
            if image:  # images in [-1, 1], the generator's tanh range
                real, fake = real.tanh(), fake.tanh()
            else:  # 2-D points: a fake cloud offset from the real one
                fake = fake + 1.0
            return critic, real, fake
        return build

    dcgan_batch = DCGAN_QUICK_BATCH if quick else 64
    return [("MLP 3x512", 256, make(lambda: H.mlp(3, 512), (2,), 256, False)),
            ("DCGAN-64", dcgan_batch, make(_dcgan64_no_bn, (3, 64, 64), dcgan_batch, True))]


def _canonical_gp(critic: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor,
                  gen: torch.Generator) -> torch.Tensor:
    """The canonical WGAN-GP snippet (pygan/penalties.py's module docstring), alpha from ``gen``."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, generator=gen)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grads = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)[0]
    return WEIGHT * ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def _step(st: dict, real: torch.Tensor, fake: torch.Tensor, penalty) -> None:
    """One critic step; ``penalty(st)`` returns the term to add (a tensor, or 0.0 for none)."""
    critic, opt = st["critic"], st["opt"]
    opt.zero_grad()
    d_loss = critic(fake).mean() - critic(real).mean() + penalty(st)
    d_loss.backward()
    opt.step()
    st["loss"] = d_loss.detach()


def _state_factory(critic: torch.nn.Module, device: str, extra: Callable[[], dict] | None = None):
    def setup() -> dict:
        c = copy.deepcopy(critic)
        st = {"critic": c, "opt": torch.optim.Adam(c.parameters(), lr=LR, betas=BETAS),
              "gen": torch.Generator(device=device).manual_seed(ALPHA_SEED), "loss": None}
        st.update(extra() if extra is not None else {})
        return st
    return setup


def _step_result(st: dict) -> list[torch.Tensor]:
    return [st["loss"], *(p.grad for p in st["critic"].parameters())]


def step_candidates(critic: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor,
                    device: str) -> list[H.Candidate]:
    """Part (b): the canonical snippet, pygan.gradient_penalty, and the step without a penalty."""
    import pygan

    setup = _state_factory(critic, device)

    def run(penalty):
        return lambda st: _step(st, real, fake, penalty)

    return [
        H.Candidate("canonical WGAN-GP snippet", "baseline", setup,
                    run(lambda st: _canonical_gp(st["critic"], real, fake, st["gen"])), _step_result),
        H.Candidate("pygan.gradient_penalty", "pygan", setup,
                    run(lambda st: pygan.gradient_penalty(st["critic"], real, fake, weight=WEIGHT,
                                                          generator=st["gen"])), _step_result),
        H.Candidate("no penalty (ref)", "reference", setup, run(lambda st: 0.0), _step_result,
                    check=False),
    ]


def alt_candidates(critic: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor,
                   device: str) -> list[H.Candidate]:
    """Part (c): the double-backward GP every step, fd_penalty every step, lazy GP every 4 and 16.

    The fd and lazy rows compute other losses than the baseline, so the harness does not compare
    them with it (``check=False``); :func:`check_alternatives` checks them before timing.
    """
    import pygan

    def run(penalty):
        return lambda st: _step(st, real, fake, penalty)

    def lazy_cycle(every: int):
        def cycle(st: dict) -> None:  # `every` steps: the penalty (x every) on the first, none after
            for _ in range(every):
                _step(st, real, fake,
                      lambda s: s["lazy"](s["critic"], real, fake, weight=WEIGHT, generator=s["gen"]))
        return cycle

    def lazy_setup(every: int):
        return _state_factory(critic, device,
                              lambda: {"lazy": pygan.LazyRegularizer(pygan.gradient_penalty, every)})

    rows = [
        H.Candidate("GP every step (double backward)", "baseline", _state_factory(critic, device),
                    run(lambda st: _canonical_gp(st["critic"], real, fake, st["gen"])), _step_result),
        H.Candidate("fd_penalty every step", "pygan", _state_factory(critic, device),
                    run(lambda st: pygan.fd_penalty(st["critic"], real, fake, weight=WEIGHT, generator=st["gen"])),
                    _step_result, check=False),
    ]
    rows += [H.Candidate(f"GP lazy every {k} (x{k})", "pygan", lazy_setup(k), lazy_cycle(k), _step_result,
                         check=False) for k in LAZY_EVERY]
    return rows


def _fd_plain(critic: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor,
              alpha: torch.Tensor) -> torch.Tensor:
    """fd_penalty's formula in plain torch (its docstring): x̂_i paired with x̂_{i-1}, no zero distances."""
    a = alpha.reshape(-1, *([1] * (real.dim() - 1)))
    x = a * real + (1 - a) * fake
    s = critic(x).reshape(-1)
    dist = (x - x.roll(1, 0)).flatten(1).norm(dim=1)
    slope = (s - s.roll(1, 0)).abs() / dist
    return WEIGHT * ((slope - 1) ** 2).mean()


def check_alternatives(case: str, critic: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> None:
    """Check fd_penalty and LazyRegularizer before they are timed (AssertionError naming the case).

    fd_penalty: value and parameter gradients against :func:`_fd_plain` with the same alphas.
    LazyRegularizer(gradient_penalty, k): over k calls, k x gradient_penalty on the first, then 0.0.
    """
    import pygan

    alpha = torch.rand(real.shape[0], device=real.device,
                       generator=torch.Generator(device=real.device).manual_seed(ALPHA_SEED))
    expected, got = [], []
    for penalty in (lambda c: _fd_plain(c, real, fake, alpha),
                    lambda c: pygan.fd_penalty(c, real, fake, weight=WEIGHT, alpha=alpha)):
        c = copy.deepcopy(critic)
        value = penalty(c)
        value.backward()
        (expected if not expected else got).extend([value.detach(), *(p.grad for p in c.parameters())])
    H.check_close(f"{case} / fd_penalty vs its formula in plain torch", expected, got, RTOL, ATOL)

    gp = pygan.gradient_penalty(critic, real, fake, weight=WEIGHT, alpha=alpha).detach()
    for every in LAZY_EVERY:
        lazy = pygan.LazyRegularizer(pygan.gradient_penalty, every)
        values = [lazy(critic, real, fake, weight=WEIGHT, alpha=alpha) for _ in range(every)]
        name = f"{case} / LazyRegularizer(gradient_penalty, {every})"
        H.check_close(name, [gp * every], [values[0].detach()], RTOL, ATOL)
        if any(not (isinstance(v, float) and v == 0.0) for v in values[1:]):
            raise AssertionError(f"{name}: calls 2..{every} of a cycle returned {values[1:]}, expected 0.0")


def _per_step(case: dict) -> None:
    """Turn the lazy rows' per-cycle times into per-step times (cycle / every) and redo the ratios."""
    fastest = H.row(case, "best")["median_us"]
    for r in case["rows"]:
        every = next((k for k in LAZY_EVERY if r["name"] == f"GP lazy every {k} (x{k})"), 1)
        r["steps_per_call"] = every
        if every > 1:
            for key in ("median_us", "q1_us", "q3_us", "iqr_us"):
                r[key] /= every
            r["speedup_vs_fastest_baseline"] = fastest / r["median_us"]


# ---- the run ---------------------------------------------------------------------------------------

def targets(cases: dict[str, dict], device: str) -> list[dict]:
    """The speed targets on this run (reported, never asserted)."""
    r = H.ratio
    big, small = (3.0, 5.0) if device.startswith("cuda") else (2.5, 5.0)
    tg = [H.target(f"grad_penalty fwd+bwd speedup vs pygan.reference.grad_penalty, {name}",
                   r(cases, name, "pygan.reference.grad_penalty", "pygan"), ">=", threshold)
          for (name, _), threshold in zip(EPILOGUE_SHAPES, (big, small))]
    if device == "cpu":  # the fd target is stated for CPU
        for critic in ("MLP 3x512", "DCGAN-64"):
            tg.append(H.target(f"fd_penalty critic step speedup vs double-backward GP step, {critic}",
                               r(cases, f"fd/lazy {critic}", "best", "fd_penalty every step"), ">=", 1.5))
    return tg


def run(device: str, out_dir: Path, quick: bool) -> dict:
    """Run the three parts on ``device``; print the tables and targets; write ``penalty_<device>.json``.

    Args:
        device: ``"cpu"`` or ``"cuda"``.
        out_dir: where the JSON goes.
        quick: short timing, and DCGAN-64 at batch 4 instead of 64.

    Returns:
        The JSON payload (cases, targets).
    """
    import pygan  # noqa: F401  (fail here, not mid-run, if the package is broken)

    H.require_extension(device)
    load = H.load_check()
    parts: dict[str, list[dict]] = {"epilogue": [], "step": [], "fd/lazy": []}

    for name, shape in EPILOGUE_SHAPES:
        grads = _epilogue_grads(shape, device)
        print(f"penalty [{device}] epilogue {name}: grads {list(shape)} float32", file=sys.stderr)
        case = H.run_case(name, epilogue_candidates(grads), device, quick, rtol=RTOL, atol=1e-8,
                          nbytes=3 * grads.numel() * grads.element_size())
        for r in case["rows"]:
            for label, other in (("reference", "pygan.reference.grad_penalty"), ("canonical", "canonical lines")):
                r[f"speedup_vs_{label}"] = H.row(case, other)["median_us"] / r["median_us"]
        case.update(part="epilogue", shape=list(shape), dtype=str(grads.dtype))
        parts["epilogue"].append(case)
        del grads

    for critic_name, batch, build in step_critics(device, quick):
        critic, real, fake = build()
        n = sum(p.numel() for p in critic.parameters())
        info = {"critic": critic_name, "batch": batch, "numel": n, "input": list(real.shape[1:])}
        print(f"penalty [{device}] critic step {critic_name}: batch {batch}, {n:,} parameters",
              file=sys.stderr)
        case = H.run_case(f"step {critic_name}", step_candidates(critic, real, fake, device), device, quick,
                          rtol=RTOL, atol=ATOL)
        case.update(part="step", **info)
        parts["step"].append(case)

        alt_name = f"fd/lazy {critic_name}"
        print(f"penalty [{device}] fd/lazy {critic_name}: batch {batch}", file=sys.stderr)
        check_alternatives(alt_name, critic, real, fake)
        case = H.run_case(alt_name, alt_candidates(critic, real, fake, device), device, quick,
                          rtol=RTOL, atol=ATOL)
        _per_step(case)
        print(f"  (the lazy rows' times above are per {'/'.join(map(str, LAZY_EVERY))}-step cycle; "
              "the table shows them per step)", file=sys.stderr)
        case.update(part="fd/lazy", **info)
        parts["fd/lazy"].append(case)
        del critic, real, fake

    results = [c for cs in parts.values() for c in cs]
    tg = targets({c["case"]: c for c in results}, device)
    label, threads = H.device_label(device), torch.get_num_threads()

    def epilogue_note(case: dict, r: dict) -> str:
        return f"{r['speedup_vs_reference']:.2f}x ref, {r['speedup_vs_canonical']:.2f}x canonical"

    def step_note(case: dict, r: dict) -> str:
        bare = H.row(case, "no penalty (ref)")["median_us"]
        return f"{r['median_us'] / bare:.2f}x no-penalty step"

    def alt_note(case: dict, r: dict) -> str:
        k = r["steps_per_call"]
        return f"per step, {k}-step cycle / {k}" if k > 1 else ""

    H.print_table(f"penalty epilogue forward + backward, {label}, {threads} threads, float32 "
                  "(vs best = fastest baseline time / this time)", parts["epilogue"], epilogue_note)
    H.print_table(f"WGAN-GP critic step (Adam), {label}, {threads} threads, weight {WEIGHT} "
                  "(vs best = canonical snippet time / this time)", parts["step"], step_note)
    H.print_table(f"finite-difference and lazy penalties, critic step (Adam), {label}, {threads} threads "
                  "(vs best = double-backward GP step time / this time)", parts["fd/lazy"], alt_note)
    H.print_targets(tg)
    payload = {"hyperparameters": {"weight": WEIGHT, "center": CENTER, "lr": LR, "betas": list(BETAS),
                                   "lazy_every": list(LAZY_EVERY)},
               "case_header": "case", "quick": quick, "cpu_busy_before": load, "cases": results,
               "targets": tg}
    H.write_json(out_dir, "penalty", device, payload)
    return payload


def main(argv: list[str] | None = None) -> int:
    """``python bench/penalty.py``: the same options as ``python -m pygan bench`` minus ``--only``."""
    return H.script_main(run, argv, "bench/penalty.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
