"""``python -m pygan experiment NAME --out DIR [options]``: reproduce a paper's experiment, with pictures.

Exit codes: 0 done, 2 bad input (an unknown experiment, a bad option, an --out holding a previous
result without --force).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from pygan.experiments import EXPERIMENTS
from pygan.experiments._common import ExperimentError


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


# Help of the options every experiment has; an experiment's own fields carry theirs in field metadata.
_COMMON_HELP = {
    "out": "output directory",
    "seed": "seed of every random draw",
    "device": "cpu, cuda, cuda:N or auto",
    "force": "overwrite a previous result in --out (removes only the files this experiment writes)",
    "plots": "write report.json only",
    "quiet": "no progress lines on stderr",
}


class _DeprecatedFlag(argparse.Action):
    """An old spelling of a flag: stores into the new one's field after a one-line warning on stderr."""

    def __init__(self, option_strings, dest, new_flag: str, **kwargs):
        self.new_flag = new_flag
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is deprecated and will be removed in the next release; use {self.new_flag}",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_config_flags(p: argparse.ArgumentParser, config: type) -> None:
    """One flag per field of the dataclass ``config``, as ``python -m pygan train`` derives its own.

    The flag is the field's name with ``-`` for ``_``; a bool defaulting to True becomes ``--no-NAME``
    (store_false), one defaulting to False ``--NAME`` (store_true); a tuple becomes comma-separated
    numbers. Help comes from ``field.metadata["help"]`` (or the common options' texts), the shown default
    from ``metadata["default_text"]`` when given. Fields with ``metadata["cli"] is False`` get no flag.
    ``metadata["deprecated_flags"]`` lists a renamed field's old flags: still accepted for one release
    (hidden from --help), with a one-line warning on stderr.

    Raises:
        TypeError: a field without help (every flag must say what it does).
    """
    for f in dataclasses.fields(config):
        if f.metadata.get("cli", True) is False:
            continue
        help_text = f.metadata.get("help", _COMMON_HELP.get(f.name))
        if help_text is None:
            raise TypeError(f"{config.__name__}.{f.name}: expected a metadata 'help' text for its flag")
        name = f.name.replace("_", "-")
        if isinstance(f.default, bool):
            if f.default:
                p.add_argument(f"--no-{name}", dest=f.name, action="store_false", help=help_text)
            else:
                p.add_argument(f"--{name}", dest=f.name, action="store_true", help=help_text)
            continue
        shown = f.metadata.get("default_text", "%(default)s")
        if isinstance(f.default, tuple):
            p.add_argument(f"--{name}", dest=f.name, type=_floats, default=f.default,
                           help=f"{help_text} (default: {shown})")
        else:
            p.add_argument(f"--{name}", dest=f.name, type=type(f.default), default=f.default,
                           help=f"{help_text} (default: {shown})")
        for old in f.metadata.get("deprecated_flags", ()):
            p.add_argument(old, dest=f.name, action=_DeprecatedFlag, new_flag=f"--{name}",
                           type=_floats if isinstance(f.default, tuple) else type(f.default),
                           default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m pygan experiment`` parser: one subcommand per experiment, flags from its config."""
    parser = argparse.ArgumentParser(prog="python -m pygan experiment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="name", metavar="NAME", required=True,
                                help=f"one of: {', '.join(EXPERIMENTS)}")

    from pygan.experiments.clipping_vs_gp import ClippingConfig

    p = sub.add_parser("clipping-vs-gp", help="WGAN-GP Figure 1: weight clipping against the gradient penalty",
                       description="WGAN-GP §3 / Figure 1: critics trained against a fixed generator (real data "
                                   "+ N(0, I)) with weight clipping and with the gradient penalty: weight "
                                   "histograms, per-layer gradient norms of a 12-layer critic on the Swiss roll, "
                                   "value surfaces on three toy datasets. See docs/experiments.md.")
    add_config_flags(p, ClippingConfig)

    from pygan.experiments.w_vs_js import WvsJSConfig

    p = sub.add_parser("w-vs-js", help="parallel segments: exact W1 = |θ| against JS and KL estimated from samples",
                       description="P_0 uniform on {0}x[0,1], P_θ on {θ}x[0,1]: the exact W1 (pygan.ot.emd2_points) "
                                   "against JS and KL estimated from samples, for each θ. See docs/experiments.md.")
    add_config_flags(p, WvsJSConfig)
    return parser


def config_from_args(config: type, args: argparse.Namespace):
    """The ``config`` dataclass built from the parsed flags (tuples as tuples; unflagged fields default)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config) if hasattr(args, f.name)}
    return config(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


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

            cfg = config_from_args(ClippingConfig, args)
            report = run(cfg)
            if not args.quiet:
                for check, ok in report["checks"].items():
                    print(f"{'ok  ' if ok else 'MISS'} {check}")
        else:
            from pygan.experiments.w_vs_js import WvsJSConfig, run

            cfg = config_from_args(WvsJSConfig, args)
            run(cfg)
    except ExperimentError as exc:
        parser.error(str(exc))
    print(f"wrote {cfg.out}/report.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
