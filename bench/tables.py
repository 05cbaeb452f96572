"""Render benchmark JSON (bench/results/*.json) as the markdown tables in docs/benchmarks.md.

Usage: ``python -m bench.tables [FILE.json ...]`` (default: every JSON file in bench/results/).
The docs tables are pasted from this output, so they always say what a committed run measured.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _number(x: float) -> str:
    return f"{x:,.1f}"


def _provenance(path: Path, data: dict) -> str:
    machine = data["machine"]
    return (f"`{path.name}`: {machine['date']}, `{machine['command']}`, {machine.get('cpu_model', '?')}, "
            f"{machine.get('torch_num_threads', '?')} threads, torch {machine['torch_version']}, "
            f"device {data['device']}, CPU busy before the run: {data.get('cpu_busy_before', 0) or 0:.0%}")


def _targets(data: dict) -> list[str]:
    lines = ["", "| target | measured | met |", "|---|---:|---|"]
    for t in data.get("targets", []):
        value = "not measured" if t["value"] is None else f"{t['value']:.2f}"
        met = "not measured" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} {t['op']} {t['threshold']} | {value} | {met} |")
    for note in data.get("skipped", []) or []:
        lines.append(f"\nSkipped: {note}")
    return lines


def _row_label(case: dict, row: dict) -> str:
    """A row's candidate cell: the fastest baseline marked, pygan rows in bold."""
    name = row["name"]
    if name == case.get("fastest_baseline"):
        return name + " **(fastest baseline)**"
    return f"**{name}**" if row["role"] == "pygan" else name


def ms(us: float | None) -> str:
    """Microseconds as milliseconds for a table cell ("" when not measured)."""
    return "" if us is None else f"{us / 1e3:,.3f}"


def ratio(x: float | None) -> str:
    """A speedup for a table cell ("" when not measured)."""
    return "" if x is None else f"{x:.2f}x"


def emd_row_notes(row: dict) -> list[str]:
    """An emd row's remarks (the docs table and bench/emd.py's screen table): why it was skipped,
    a timing from a single call, peak memory."""
    notes = []
    if row.get("skipped"):
        notes.append(row["skipped"])
    if str(row.get("timing", "")).startswith("single call"):
        notes.append(row["timing"])
    if row.get("peak_rss_growth_bytes") is not None:
        notes.append(f"peak RSS growth {row['peak_rss_growth_bytes'] / 1e9:.2f} GB")
    return notes


def render_emd(path: Path, data: dict) -> str:
    """``emd_<device>.json``: times in milliseconds, samples, ratios vs the fastest baseline and vs POT,
    and a note per row (skipped rows and why, single-call timings, peak memory)."""
    extras, settings = data.get("extras", {}), data.get("settings", {})
    lines = [
        _provenance(path, data) + f", POT {extras.get('pot') or 'not installed'} (numItermax="
        f"{settings.get('pot_numItermax', '?'):.0e}, 1 thread), scipy {extras.get('scipy') or 'not installed'}"
        + (", **--quick (not for publishing)**" if data.get("quick") else ""),
        "",
        "| case | candidate | median ms | IQR ms | samples | vs fastest baseline | vs POT | note |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for case in data["cases"]:
        for row in case["rows"]:
            name = _row_label(case, row)
            samples = row.get("samples") or 0
            iqr = ms(row.get("iqr_us") if samples > 1 else None)  # no spread from a single call
            lines.append(f"| {case['case']} | {name} | {ms(row.get('median_us'))} | {iqr} "
                         f"| {samples or ''} | {ratio(row.get('speedup_vs_fastest_baseline'))} "
                         f"| {ratio(row.get('speedup_vs_pot'))} | {'; '.join(emd_row_notes(row))} |")
    return "\n".join(lines + _targets(data)) + "\n"


def train_row_notes(case: dict, row: dict) -> list[str]:
    """A train row's remarks (the docs table and bench/train.py's screen table): why it was skipped,
    the fastest baseline, and what its correctness check found."""
    if row.get("skipped"):
        return [f"skipped: {row['skipped']}"]
    notes = ["fastest baseline"] if row["name"] == case.get("fastest_baseline") else []
    if row.get("max_abs_param_diff") is not None:
        notes.append(f"same math as the baseline (max abs param diff {row['max_abs_param_diff']:.0e})")
    elif row.get("check", "").startswith("other loss"):
        notes.append(f"other loss (update norm {row['update_norm_vs_baseline']:.2f}x the baseline's)")
    return notes


def render_train(path: Path, data: dict) -> str:
    """``train_<device>.json``: milliseconds and steps per second per generator step (n_critic critic
    updates + 1 generator update), samples x steps, the ratio vs the canonical loop, a note per row."""
    hp, timing = data.get("hyperparameters", {}), data.get("timing", {})
    lines = [
        _provenance(path, data) + f", batch {hp.get('batch', '?')}, n_critic {hp.get('n_critic', '?')}, "
        f"{timing.get('samples', '?')} samples of {timing.get('steps_per_sample', '?')} steps per row"
        + (", torch.compile rows" if data.get("compile") else "")
        + (", **--quick (not for publishing)**" if data.get("quick") else ""),
        "",
        "| case | candidate | ms / step | IQR ms | steps / s | vs canonical loop | note |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for case in data["cases"]:
        for row in case["rows"]:
            name = _row_label(case, row)
            sps = "" if row.get("steps_per_s") is None else f"{row['steps_per_s']:,.1f}"
            notes = [n for n in train_row_notes(case, row) if n != "fastest baseline"]
            lines.append(f"| {case['case']} | {name} | {ms(row.get('median_us'))} | {ms(row.get('iqr_us'))} "
                         f"| {sps} | {ratio(row.get('speedup_vs_fastest_baseline'))} | {'; '.join(notes)} |")
    return "\n".join(lines + (_targets(data) if data.get("targets") else [])) + "\n"


def render(path: Path) -> str:
    """One results file as markdown: a provenance line, the timing table and the targets.

    Args:
        path: a JSON file written by the harness.

    Returns:
        Markdown text.
    """
    data = json.loads(path.read_text())
    if data.get("benchmark") == "emd":
        return render_emd(path, data)
    if data.get("benchmark") == "train":
        return render_train(path, data)
    if "benchmark" not in data and "table_markdown" in data:  # bench/train_quality.py: its own table
        return f"`{path.name}`: `{data['command']}`\n\n{data['table_markdown']}"
    lines = [
        _provenance(path, data),
        "",
        f"| {data.get('case_header', 'critic')} | candidate | median µs | IQR µs | vs fastest baseline | GB/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for case in data["cases"]:
        for row in case["rows"]:
            name = _row_label(case, row)
            gbps = "" if row.get("gb_per_s") is None else _number(row["gb_per_s"])  # only where bytes are known
            lines.append(f"| {case['case']} | {name} | {_number(row['median_us'])} | {_number(row['iqr_us'])} "
                         f"| {row['speedup_vs_fastest_baseline']:.2f}x | {gbps} |")
    return "\n".join(lines + _targets(data)) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the tables of the given (or all committed) result files.

    Args:
        argv: the result files (default: ``sys.argv[1:]``; none means every JSON file in
            bench/results/). ``-h`` / ``--help`` prints the usage.

    Returns:
        0 once every table is printed; 2, with one line on stderr, for a file that is missing or
        is not a benchmark result (nothing is printed for the files after it).
    """
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0
    paths = [Path(a) for a in argv] or sorted((Path(__file__).resolve().parent / "results").glob("*.json"))
    for path in paths:
        try:
            text = render(path)
        except OSError as exc:
            print(f"bench.tables: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        except (ValueError, KeyError, TypeError) as exc:  # not JSON, or not a benchmark result
            print(f"bench.tables: {path} is not a benchmark result file ({type(exc).__name__}: {exc})",
                  file=sys.stderr)
            return 2
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
