"""``python -m bench``: every benchmark, one table of ratios, results.json and scaling.png.

    python -m bench                 # the full run (tens of minutes on 2 cores)
    python -m bench --quick         # under a minute: small sizes, so the benchmark never rots
    python -m bench feeds send      # only these benchmarks

Each figure is publisher's cost beside a floor measured in the same run, so the ratio is what
to compare between machines. The exit status is 0 whatever the figures say; it is 1 only when a
benchmark could not measure (the benchmark itself is broken).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Figure, Report, Series

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("ingest", "feeds", "send", "serve", "startup", "daemon", "extraction", "cluster")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"some of: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the benchmark runs (CI)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for results.json and scaling.png")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    # Benchmarks send to loopback endpoints they start; never let a stray secret or proxy in.
    os.environ.setdefault("PUBLISHER_UNSUBSCRIBE_SECRET", "bench-secret-0123456789abcdef")
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"

    reports: dict[str, Report] = {}
    broken: list[str] = []
    for name in args.names or BENCHMARKS:
        print(f"bench: {name}{' (quick)' if args.quick else ''} ...", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            reports[name] = module.run(quick=args.quick)
        except Exception:
            broken.append(name)
            print(f"bench: {name} could not measure:\n{traceback.format_exc()}", file=sys.stderr)

    figures = [figure for report in reports.values() for figure in report.figures]
    series = [line for report in reports.values() for line in report.series]
    print(table(figures))
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(args.out / "results.json", reports, quick=args.quick)
    plotted = plot(args.out / "scaling.png", series)
    print(f"\nwrote {args.out / 'results.json'}" + (f" and {plotted}" if plotted else ""))
    if broken:
        print(f"bench: broken: {', '.join(broken)}", file=sys.stderr)
        return 1
    return 0


def table(figures: list[Figure]) -> str:
    rows = [("measurement", "publisher", "floor", "ratio", "target", "met")]
    for f in figures:
        target = "" if f.target is None else f"{'>=' if f.higher_is_better else '<='} {f.target:g}x"
        met = {None: "", True: "yes", False: "NO"}[f.met]
        rows.append((f.name, f"{f.value:.4g} {f.unit}", f"{f.floor:.4g} {f.unit}", f"{f.ratio:.2f}x", target, met))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    notes = [f"- {f.name}: floor = {f.floor_name}" + (f"; {f.note}" if f.note else "") for f in figures]
    return "\n".join([*lines, "", *notes])


def write_results(path: Path, reports: dict[str, Report], *, quick: bool) -> None:
    data = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "benchmarks": {
            name: {
                "figures": [figure.as_dict() for figure in report.figures],
                "series": [{"name": line.name, "points": line.points} for line in report.series],
            }
            for name, report in reports.items()
        },
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def plot(path: Path, series: list[Series]) -> Path | None:
    """Cost against store size on log-log axes; None when there is nothing to plot or no matplotlib."""
    if not any(line.points for line in series):
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib is not installed; no plot (pip install -e '.[bench]')", file=sys.stderr)
        return None
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for line in series:
        if line.points:
            sizes, seconds = zip(*sorted(line.points), strict=True)
            drawn = axes.plot(sizes, seconds, marker="o", label=line.name)
            # For scale: what a cost growing with the store would have been, from the first point.
            linear = [seconds[0] * size / sizes[0] for size in sizes]
            colour = drawn[0].get_color()
            axes.plot(sizes, linear, linestyle="--", color=colour, alpha=0.5, label="(if it grew with the store)")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("articles in the store")
    axes.set_ylabel("seconds")
    axes.set_title("publisher: cost against store size")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


if __name__ == "__main__":
    sys.exit(main())
