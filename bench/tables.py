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


def render(path: Path) -> str:
    """One results file as markdown: a provenance line, the timing table and the targets.

    Args:
        path: a JSON file written by the harness.

    Returns:
        Markdown text.
    """
    data = json.loads(path.read_text())
    machine = data["machine"]
    lines = [
        f"`{path.name}`: {machine['date']}, `{machine['command']}`, {machine.get('cpu_model', '?')}, "
        f"{machine.get('torch_num_threads', '?')} threads, torch {machine['torch_version']}, "
        f"device {data['device']}, CPU busy before the run: {data.get('cpu_busy_before', 0) or 0:.0%}",
        "",
        f"| {data.get('case_header', 'critic')} | candidate | median µs | IQR µs | vs fastest baseline | GB/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for case in data["cases"]:
        for row in case["rows"]:
            name = row["name"]
            if name == case["fastest_baseline"]:
                name += " **(fastest baseline)**"
            elif row["role"] == "pygan":
                name = f"**{name}**"
            gbps = "" if row.get("gb_per_s") is None else _number(row["gb_per_s"])  # only where bytes are known
            lines.append(f"| {case['case']} | {name} | {_number(row['median_us'])} | {_number(row['iqr_us'])} "
                         f"| {row['speedup_vs_fastest_baseline']:.2f}x | {gbps} |")
    lines += ["", "| target | measured | met |", "|---|---:|---|"]
    for t in data.get("targets", []):
        value = "not measured" if t["value"] is None else f"{t['value']:.2f}"
        met = "not measured" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} {t['op']} {t['threshold']} | {value} | {met} |")
    for note in data.get("skipped", []) or []:
        lines.append(f"\nSkipped: {note}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the tables of the given (or all committed) result files."""
    argv = sys.argv[1:] if argv is None else argv
    paths = [Path(a) for a in argv] or sorted((Path(__file__).resolve().parent / "results").glob("*.json"))
    for path in paths:
        print(render(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
