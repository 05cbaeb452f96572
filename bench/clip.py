"""Benchmark ``pygan.ops.clip_`` (WGAN weight clipping) against torch's own ways of doing it.

Rows per critic:
    loop clamp_            ``for p in params: p.clamp_(-c, c)`` under ``torch.no_grad()``: one kernel per
                           tensor, without the ``.data`` overhead.
    loop p.data.clamp_     ``for p in params: p.data.clamp_(-c, c)``, verbatim what WGAN codebases write.
    foreach clamp pair     ``torch._foreach_clamp_min_`` then ``torch._foreach_clamp_max_``: two passes.
    pygan clip_            ``pygan.ops.clip_(params, -c, c)``, called as a user would (no no_grad needed).
    flat clamp_ (ref)      one ``clamp_`` over a single tensor with the same number of elements: the
                           memory-bound limit, a reference line and never a baseline.
    flat copy_ (ref)       (100M list only) ``dst.copy_(src)``: the device's copy bandwidth.

Usage: ``python bench/clip.py [--device cpu|cuda|all] [--out DIR] [--quick] [--threads N]``
(or ``python -m pygan bench --only clip``).
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # `python bench/clip.py`: run as a module of the bench package (PEP 366)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from . import _harness as H  # noqa: E402

import torch

CLIP = 0.01  # the WGAN paper's c


def _clones(params: list[torch.Tensor]) -> list[torch.Tensor]:
    # Fresh leaf copies that still require grad, like a critic's parameters at clipping time.
    return [p.detach().clone().requires_grad_(p.requires_grad) for p in params]


def _loop(params: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p in params:
            p.clamp_(-CLIP, CLIP)


def _data_loop(params: list[torch.Tensor]) -> None:
    # Verbatim what WGAN codebases write (the "loop" row); `.data` costs a little per tensor.
    for p in params:
        p.data.clamp_(-CLIP, CLIP)


def _foreach_pair(params: list[torch.Tensor]) -> None:
    with torch.no_grad():
        torch._foreach_clamp_min_(params, -CLIP)
        torch._foreach_clamp_max_(params, CLIP)


def candidates(params: list[torch.Tensor], with_copy: bool) -> list[H.Candidate]:
    """The rows for one critic (the first is the correctness reference).

    Args:
        params: the critic's parameters (only read; every candidate clamps its own copies).
        with_copy: add the ``flat copy_`` bandwidth reference.

    Returns:
        Candidates for ``H.run_case``.
    """
    import pygan.ops

    shapes = [p.shape for p in params]
    numels = [p.numel() for p in params]

    def flat_setup() -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in params])

    def flat_result(flat: torch.Tensor) -> list[torch.Tensor]:
        # Views of the flat tensor shaped like the parameters, so it is checked like the others.
        return [t.view(s) for t, s in zip(flat.split(numels), shapes)]

    rows = [
        H.Candidate("loop clamp_", "baseline", lambda: _clones(params), _loop, list),
        H.Candidate("loop p.data.clamp_", "baseline", lambda: _clones(params), _data_loop, list),
        H.Candidate("foreach clamp_min_+clamp_max_", "baseline", lambda: _clones(params),
                    _foreach_pair, list),
        H.Candidate("pygan clip_", "pygan", lambda: _clones(params),
                    lambda ps: pygan.ops.clip_(ps, -CLIP, CLIP), list),
        H.Candidate("flat clamp_ (ref)", "reference", flat_setup,
                    lambda flat: flat.clamp_(-CLIP, CLIP), flat_result),
    ]
    if with_copy:
        rows.append(H.Candidate("flat copy_ (ref)", "reference",
                                lambda: (flat_setup(), torch.empty(sum(numels), device=params[0].device)),
                                lambda st: st[1].copy_(st[0]), lambda st: [], check=False))
    return rows


def targets(cases: dict[str, dict], device: str) -> list[dict]:
    """The speed targets, evaluated on this run (reported, never asserted)."""
    r = H.ratio
    if device == "cpu":
        return [H.target("clip_ time / flat clamp_ time, MLP 12x512",
                         r(cases, "MLP 12x512", "pygan", "flat clamp_ (ref)"), "<=", 1.15),
                H.target("clip_ speedup vs fastest baseline, MLP 4x128",
                         r(cases, "MLP 4x128", "best", "pygan"), ">=", 2.5)]
    return [H.target("clip_ speedup vs loop clamp_, MLP 12x512",
                     r(cases, "MLP 12x512", "loop clamp_", "pygan"), ">=", 5.0),
            # Bandwidth ratio = copy time / clip_ time: both move 2 x 400 MB.
            H.target("clip_ bandwidth / copy_ bandwidth, 100M list",
                     r(cases, "100M list", "flat copy_ (ref)", "pygan"), ">=", 0.8)]


def run(device: str, out_dir: Path, quick: bool) -> dict:
    """Run every critic on ``device``; print the table and targets; write ``clip_<device>.json``.

    Args:
        device: ``"cpu"`` or ``"cuda"``.
        out_dir: where the JSON goes.
        quick: short timing.

    Returns:
        The JSON payload (cases, targets).
    """
    H.require_extension(device)
    load = H.load_check()
    results = []
    for name, build in H.critics(device):
        params = build()
        n = sum(p.numel() for p in params)
        print(f"clip [{device}] {name}: {len(params)} tensors, {n:,} elements", file=sys.stderr)
        case = H.run_case(name, candidates(params, with_copy=name == "100M list"), device, quick,
                          nbytes=2 * n * params[0].element_size())  # each element read + written once
        case.update(tensors=len(params), numel=n, dtype=str(params[0].dtype))
        results.append(case)
        del params
    tg = targets({c["case"]: c for c in results}, device)

    def note(case: dict, r: dict) -> str:
        flat = H.row(case, "flat clamp_ (ref)")
        return f"{r['median_us'] / flat['median_us']:.2f}x flat time" if r["role"] == "pygan" else ""

    H.print_table(f"pygan clip_ vs torch, {H.device_label(device)}, {torch.get_num_threads()} threads, "
                  f"c={CLIP} (vs best = fastest baseline time / this time)", results, note)
    H.print_targets(tg)
    payload = {"clip_value": CLIP, "quick": quick, "cpu_busy_before": load, "cases": results, "targets": tg}
    H.write_json(out_dir, "clip", device, payload)
    return payload


def main(argv: list[str] | None = None) -> int:
    """``python bench/clip.py``: the same options as ``python -m pygan bench`` minus ``--only``."""
    return H.script_main(run, argv, "bench/clip.py")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
