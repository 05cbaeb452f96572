"""``python -m pygan experiment NAME --out DIR [options]``: reproduce a paper's experiment, with pictures.

Exit codes: 0 done, 2 bad input (an unknown experiment, a bad option, an --out holding a previous
result without --force).
"""

from __future__ import annotations

import argparse
import sys

from pygan.experiments import EXPERIMENTS
from pygan.experiments._common import ExperimentError


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def _common_args(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--out", default=default_out, help="output directory (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    p.add_argument("--force", action="store_true",
                   help="overwrite a previous result in --out (removes only the files this experiment writes)")
    p.add_argument("--no-plots", dest="plots", action="store_false", help="write report.json only")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pygan experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="name", metavar="NAME", required=True,
                                help=f"one of: {', '.join(EXPERIMENTS)}")

    from pygan.experiments.clipping_vs_gp import ClippingConfig

    d = ClippingConfig()
    p = sub.add_parser("clipping-vs-gp", help="WGAN-GP Figure 1: weight clipping against the gradient penalty",
                       description="WGAN-GP §3 / Figure 1: critics trained against a fixed generator (real data "
                                   "+ N(0, I)) with weight clipping and with the gradient penalty: weight "
                                   "histograms, per-layer gradient norms of a 12-layer critic on the Swiss roll, "
                                   "value surfaces on three toy datasets. See docs/experiments.md.")
    _common_args(p, "runs/clipping-vs-gp")
    p.add_argument("--steps", type=int, default=d.steps, help="critic updates per depth critic (default: %(default)s)")
    p.add_argument("--surface-steps", type=int, default=d.surface_steps,
                   help="critic updates per value-surface critic (default: %(default)s)")
    p.add_argument("--clips", type=_floats, default=list(d.clips),
                   help="clipping thresholds c, comma-separated (default: 0.1,0.01,0.001)")
    p.add_argument("--gp-weight", type=float, default=d.gp_weight,
                   help="the penalty's λ (default: %(default)s, the authors' toy code's; the paper's image "
                        "experiments use 10)")
    p.add_argument("--width", type=int, default=d.width, help="depth critic width (default: %(default)s)")
    p.add_argument("--layers", type=int, default=d.layers, help="depth critic hidden layers (default: %(default)s)")
    p.add_argument("--surface-width", type=int, default=d.surface_width,
                   help="value-surface critic width (default: %(default)s)")
    p.add_argument("--surface-layers", type=int, default=d.surface_layers,
                   help="value-surface critic hidden layers (default: %(default)s, the toy code's)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="(default: %(default)s)")
    p.add_argument("--measure-batches", type=int, default=d.measure_batches,
                   help="fresh batches the final numbers are averaged over (default: %(default)s)")
    p.add_argument("--grid", type=int, default=d.grid, help="value-surface resolution per axis (default: %(default)s)")
    p.add_argument("--no-surfaces", dest="surfaces", action="store_false", help="skip the value surfaces")

    from pygan.experiments.w_vs_js import WvsJSConfig

    d = WvsJSConfig()
    p = sub.add_parser("w-vs-js", help="parallel segments: exact W1 = |θ| against JS and KL estimated from samples",
                       description="P_0 uniform on {0}x[0,1], P_θ on {θ}x[0,1]: the exact W1 (pygan.ot.emd2_points) "
                                   "against JS and KL estimated from samples, for each θ. See docs/experiments.md.")
    _common_args(p, "runs/w-vs-js")
    p.add_argument("--thetas", type=_floats, default=None,
                   help="comma-separated θ values, e.g. --thetas=-0.5,0,0.5 (with '=' when the first is "
                        "negative) (default: -1 to 1 step 0.05, plus ±0.002, ±0.005, ±0.01, ±0.02)")
    p.add_argument("--samples", type=int, default=d.samples, help="points per segment (default: %(default)s)")
    p.add_argument("--bin-width", type=float, default=d.bin_width,
                   help="histogram estimator's bin side (default: %(default)s)")
    p.add_argument("--k", type=int, default=d.k, help="k of the k-NN estimators (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m pygan experiment``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if argv and not argv[0].startswith("-") and argv[0] not in EXPERIMENTS:
        parser.error(f"unknown experiment {argv[0]!r}; valid ones: {', '.join(EXPERIMENTS)}")
    args = parser.parse_args(argv)
    try:
        if args.name == "clipping-vs-gp":
            from pygan.experiments.clipping_vs_gp import ClippingConfig, run

            cfg = ClippingConfig(out=args.out, steps=args.steps,
                                 surface_steps=args.surface_steps,
                                 clips=tuple(args.clips), gp_weight=args.gp_weight, width=args.width,
                                 layers=args.layers, surface_width=args.surface_width,
                                 surface_layers=args.surface_layers, batch_size=args.batch_size,
                                 measure_batches=args.measure_batches, grid=args.grid, surfaces=args.surfaces,
                                 seed=args.seed, device=args.device, force=args.force, quiet=args.quiet,
                                 plots=args.plots)
            report = run(cfg)
            if not args.quiet:
                for check, ok in report["checks"].items():
                    print(f"{'ok  ' if ok else 'MISS'} {check}")
        else:
            from pygan.experiments.w_vs_js import DEFAULT_THETAS, WvsJSConfig, run

            cfg = WvsJSConfig(out=args.out, thetas=tuple(args.thetas) if args.thetas is not None else DEFAULT_THETAS,
                              samples=args.samples, bin_width=args.bin_width, k=args.k, seed=args.seed,
                              device=args.device, force=args.force, quiet=args.quiet, plots=args.plots)
            run(cfg)
    except ExperimentError as exc:
        parser.error(str(exc))
    print(f"wrote {cfg.out}/report.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
