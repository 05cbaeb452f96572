"""Command line: ``python -m pygan info``, ``python -m pygan train``, ``python -m pygan experiment``,
``python -m pygan w1``, ``python -m pygan check`` and ``python -m pygan bench``."""

from __future__ import annotations

import argparse
import sys


def _info(args: argparse.Namespace) -> int:
    import platform

    import torch

    import pygan
    from pygan import _build

    info = _build.info()  # builds the extension if needed (and warns if it cannot)
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    rows = [
        ("pygan", pygan.__version__),
        ("python", platform.python_version()),
        ("torch", f"{torch.__version__} (CUDA {torch.version.cuda or 'none'})"),
        ("GPU", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none visible"),
        ("threads", str(torch.get_num_threads())),
        ("extension loaded", "yes" if info.loaded else f"no, using pygan.reference ({info.error})"),
        ("CPU kernels", "yes" if info.loaded and has("pygan::clip_", "CPU") else "no"),
        ("CUDA kernels", "yes" if info.loaded and has("pygan::clip_", "CUDA") else "no"),
        *_cuda_rows(info.loaded and has("pygan::clip_", "CUDA")),
        ("CPU vector ISA", info.cpu_capability),
        ("CUDA archs", info.cuda_arch or "-"),
        ("build directory", str(info.build_dir)),
        ("cache check", info.verified or "-"),
        ("library", str(info.library)),
        ("compiler", str(info.compiler)),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0 if info.loaded else 1


def _cuda_rows(compiled: bool) -> list[tuple[str, str]]:
    # Which code runs each op on CUDA tensors, and why (pygan/_cuda_policy.py).
    import torch

    if not compiled:
        return [("CUDA tensors", "pure-PyTorch twins (" + ("this build has no CUDA kernels)" if torch.version.cuda
                                                          else "this torch has no CUDA)"))]
    from pygan import _cuda_policy

    return [(f"  {op} on CUDA", _cuda_policy.describe(op)) for op in _cuda_policy.OPS]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pygan`` (and the ``pygan`` console script)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # its own parser handles the rest, --help included
        return _bench(argv[1:])
    if argv[:1] == ["train"]:
        from pygan.train.cli import main as train_main

        return train_main(argv[1:])
    if argv[:1] == ["w1"]:
        from pygan.ot.cli import main as w1_main

        return w1_main(argv[1:])
    if argv[:1] == ["check"]:
        from pygan.check import main as check_main

        return check_main(argv[1:])
    if argv[:1] == ["experiment"]:
        from pygan.experiments.cli import main as experiment_main

        return experiment_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m pygan", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="torch version, whether the extension is built, kernels, build directory, compiler")
    sub.add_parser("train", help="train a GAN on toy or your own data, exact W1 logged (python -m pygan train --help)",
                   add_help=False)
    sub.add_parser("experiment", help="reproduce a paper's experiment with pictures: clipping-vs-gp, w-vs-js "
                   "(python -m pygan experiment --help)", add_help=False)
    sub.add_parser("w1", help="the exact Wasserstein distance between two sample files (python -m pygan w1 --help)",
                   add_help=False)
    sub.add_parser("check", help="check the compiled kernels against their pure-PyTorch twins on this machine "
                   "(python -m pygan check --help)", add_help=False)
    bench = sub.add_parser("bench", help="run the benchmarks (python -m pygan bench --help)", add_help=False)
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "info":
        return _info(args)
    return _bench(args.rest)


def _bench(argv: list[str]) -> int:
    try:
        from pygan.bench import main as bench_main  # installed: bench/ ships as pygan.bench
    except ImportError:  # a checkout used without installing: bench/ beside the pygan package
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from bench import main as bench_main

    return bench_main(argv) or 0


if __name__ == "__main__":
    sys.exit(main())
