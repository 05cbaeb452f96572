"""Benchmark ``pygan.optim.ClippedRMSprop.step()`` against torch's RMSprop followed by weight clipping.

Rows per critic (WGAN settings: lr=5e-5, alpha=0.99, eps=1e-8, c=0.01):
    RMSprop(foreach=False) + loop clamp_       torch's for-loop RMSprop, then ``p.clamp_`` per tensor
    RMSprop(foreach=True) + loop clamp_        torch's multi-tensor RMSprop, then the same loop
    RMSprop(foreach=True) + foreach clamp pair ``_foreach_clamp_min_`` + ``_foreach_clamp_max_``
    pygan ClippedRMSprop                       the fused step + clamp, one pass per element
The fastest of the torch rows is the baseline. ``.grad`` is filled once with random values before
timing: the optimizer step is timed, not backward. Every row is first checked to give the same
parameters and ``square_avg`` state as the first row after one step from identical inputs.

Usage: ``python bench/optim.py [--device cpu|cuda|all] [--out DIR] [--quick] [--threads N]``
(or ``python -m pygan bench --only optim``). ``--quick`` skips the 100M-parameter list on CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # `python bench/optim.py`: run as a module of the bench package (PEP 366)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from . import _harness as H  # noqa: E402

import torch

LR, ALPHA, EPS, CLIP = 5e-5, 0.99, 1e-8, 0.01  # the WGAN paper's critic settings


def _loop_clamp(params: list[torch.Tensor]) -> None:
    with torch.no_grad():  # the parameters are leaves that require grad
        for p in params:
            p.clamp_(-CLIP, CLIP)


def _foreach_clamp(params: list[torch.Tensor]) -> None:
    with torch.no_grad():
        torch._foreach_clamp_min_(params, -CLIP)
        torch._foreach_clamp_max_(params, CLIP)


def candidates(params: list[torch.Tensor], grads: list[torch.Tensor]) -> list[H.Candidate]:
    """The rows for one critic (the first is the correctness reference).

    Args:
        params: the critic's parameters (only read: every row steps its own copies).
        grads: one gradient per parameter (copied into each row's ``.grad``).

    Returns:
        Candidates whose state is ``(params, optimizer)``.
    """
    from pygan.optim import ClippedRMSprop

    def setup(make_opt):
        def build():
            ps = [p.detach().clone().requires_grad_() for p in params]
            for p, g in zip(ps, grads):
                p.grad = g.clone()
            return ps, make_opt(ps)
        return build

    def torch_rmsprop(foreach: bool):
        return setup(lambda ps: torch.optim.RMSprop(ps, lr=LR, alpha=ALPHA, eps=EPS, foreach=foreach))

    def step_then(clamp):
        def run(state):
            state[1].step()
            clamp(state[0])
        return run

    def result(state) -> list[torch.Tensor]:
        # Parameters and the state torch.optim.RMSprop keeps (ClippedRMSprop promises the same names).
        ps, opt = state
        return [*ps, *(opt.state[p]["square_avg"] for p in ps)]

    return [
        H.Candidate("RMSprop(foreach=False) + loop clamp_", "baseline", torch_rmsprop(False),
                    step_then(_loop_clamp), result),
        H.Candidate("RMSprop(foreach=True) + loop clamp_", "baseline", torch_rmsprop(True),
                    step_then(_loop_clamp), result),
        H.Candidate("RMSprop(foreach=True) + foreach pair", "baseline", torch_rmsprop(True),
                    step_then(_foreach_clamp), result),
        H.Candidate("pygan ClippedRMSprop", "pygan",
                    setup(lambda ps: ClippedRMSprop(ps, lr=LR, alpha=ALPHA, eps=EPS, clip=CLIP)),
                    lambda state: state[1].step(), result),
    ]


def run(device: str, out_dir: Path, quick: bool) -> dict:
    """Run every critic on ``device``; print the table and targets; write ``optim_<device>.json``.

    Args:
        device: ``"cpu"`` or ``"cuda"``.
        out_dir: where the JSON goes.
        quick: short timing; on CPU also skips the 100M-parameter list.

    Returns:
        The JSON payload (cases, targets, skipped cases).
    """
    H.require_extension(device)
    load = H.load_check()
    skip_100m = quick and device == "cpu"
    skipped = ["100M list (--quick on CPU)"] if skip_100m else []
    results = []
    for name, build in H.critics(device, include_100m=not skip_100m):
        params = build()
        gen = torch.Generator(device=device).manual_seed(1)
        grads = [torch.randn(p.shape, device=device, generator=gen) for p in params]
        n = sum(p.numel() for p in params)
        print(f"optim [{device}] {name}: {len(params)} tensors, {n:,} parameters", file=sys.stderr)
        # Minimal traffic of a fused step: read param, grad, square_avg; write param, square_avg.
        case = H.run_case(name, candidates(params, grads), device, quick,
                          rtol=1.3e-6, atol=1e-5,  # assert_close's float32 defaults
                          nbytes=5 * n * params[0].element_size())
        case.update(tensors=len(params), numel=n, dtype=str(params[0].dtype))
        results.append(case)
        del params, grads
    cases = {c["case"]: c for c in results}
    # There is one optimizer target (>= 3x the fastest torch RMSprop + clamp), for CPU and GPU;
    # it is reported for every critic measured.
    tg = [H.target(f"ClippedRMSprop.step speedup vs fastest baseline, {c}",
                   H.ratio(cases, c, "best", "pygan"), ">=", 3.0) for c in cases]
    tg += [H.target(f"ClippedRMSprop.step speedup vs fastest baseline, {s}", None, ">=", 3.0)
           for s in skipped]
    H.print_table(f"pygan ClippedRMSprop.step vs torch RMSprop + clamp, {H.device_label(device)}, "
                  f"{torch.get_num_threads()} threads (vs best = fastest baseline time / this time)",
                  results)
    if skipped:
        print("skipped: " + ", ".join(skipped))
    H.print_targets(tg)
    payload = {"hyperparameters": {"lr": LR, "alpha": ALPHA, "eps": EPS, "clip": CLIP},
               "quick": quick, "cpu_busy_before": load, "cases": results, "skipped": skipped, "targets": tg}
    H.write_json(out_dir, "optim", device, payload)
    return payload


def main(argv: list[str] | None = None) -> int:
    """``python bench/optim.py``: the same options as ``python -m pygan bench`` minus ``--only``."""
    return H.script_main(run, argv, "bench/optim.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
