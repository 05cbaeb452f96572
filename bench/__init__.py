"""pygan's benchmarks (installed as ``pygan.bench``; ``bench/`` in a checkout).

``python -m pygan bench [--only clip,optim,penalty,emd,train] [--device cpu|cuda|all] [--out DIR | --publish] [--quick] [--threads N]``
calls :func:`main`; so do ``python -m bench`` in a checkout and ``pygan.bench.main([...])`` from Python.
Each script also runs alone: ``python bench/clip.py``, ``python bench/optim.py``, ``python bench/penalty.py``,
``python bench/emd.py`` (exact optimal transport; POT and scipy are optional extras, ``pip install "pygan-torch[bench]"``),
``python bench/train.py`` (the trainer's step against the canonical WGAN-GP / WGAN loops).
See docs/benchmarks.md for what each row means.
"""

from __future__ import annotations

import importlib

BENCHMARKS = ("clip", "optim", "penalty", "emd", "train")


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks on the selected devices.

    Args:
        argv: command-line arguments without the program name (None: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 when every benchmark ran (missed targets are reported, not failures);
        a wrong result or a missing extension raises instead.
    """
    from . import _harness

    args = _harness.parse_args(argv, "python -m pygan bench", with_only=True)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"--only: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    for device in _harness.devices(args.device):
        if note := use_cuda_kernels(device):
            print(note)
        for name in names:
            # Imported lazily: `import pygan.bench` stays cheap, and a script's import error names it.
            importlib.import_module(f"{__name__}.{name}").run(device, args.out, args.quick)
    return 0


def use_cuda_kernels(device, environ=None) -> str | None:
    """Make a CUDA run time the compiled CUDA kernels, not the twins.

    pygan's CUDA kernels are opt-in until a GPU run has verified them (``PYGAN_CUDA_KERNELS``,
    pygan/_cuda_policy.py), so without the switch a CUDA benchmark would time the pure-PyTorch twins
    under the kernels' names. When the variable is unset, a CUDA run sets it to ``1`` for this process.

    Args:
        device: the device a benchmark is about to run on (a string or torch.device).
        environ: the environment to read and change (default: ``os.environ``).

    Returns:
        A line saying what was set, or None when nothing changed (a CPU device, or the variable set).
    """
    import os

    environ = os.environ if environ is None else environ
    if not str(device).startswith("cuda") or environ.get("PYGAN_CUDA_KERNELS", "") != "":
        return None
    environ["PYGAN_CUDA_KERNELS"] = "1"
    return ("bench: timing the compiled CUDA kernels (PYGAN_CUDA_KERNELS=1 for this run; "
            "PYGAN_CUDA_KERNELS=0 times the pure-PyTorch twins instead)")
