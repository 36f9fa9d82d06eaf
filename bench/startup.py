"""What a command costs before it does anything: `publisher --help`, and `publisher run` with nothing new.

Both are CPU seconds of the child process (user + system), the best of several runs, since the
machine is shared. `publisher --help` is compared with `python -c pass`, the interpreter's own
start-up. `publisher run` over a folder of N articles that are all stored already (the second
run) must stay under 1.5 s CPU in all: that figure's floor is those 1.5 s and its target 1.0x.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import Figure, Report, best_of

REPO = Path(__file__).resolve().parent.parent
NOW = "2026-11-24T06:30:00Z"  # the program's clock, so that runs are the same whenever they happen
RUN_BUDGET = 1.5  # s CPU for `publisher run` with nothing new, whatever the folder holds


def make_project(root: Path, articles: int) -> Path:
    """A project folder: the repository's publisher.toml and ``articles`` small .txt articles; its config path."""
    config = root / "publisher.toml"
    config.write_text((REPO / "publisher.toml").read_text(encoding="utf-8"), encoding="utf-8")
    folder = root / "articles"
    folder.mkdir()
    paragraph = "A plain paragraph of a typical article, long enough to look like one. " * 4
    for n in range(articles):
        text = f"Article number {n}\n\n{paragraph}\n\nSecond paragraph of article {n}. {paragraph}\n"
        (folder / f"{n:05}.txt").write_text(text, encoding="utf-8")
    return config


def publisher(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "publisher", "--config", str(config), *args]


def env() -> dict[str, str]:
    return os.environ | {"PUBLISHER_NOW": NOW}


def run_command(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, env=env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench: {' '.join(command[2:])} exited {done.returncode}: {done.stderr[-2000:]}")


def run(quick: bool) -> Report:
    repeats = 3 if quick else 7
    articles = 300 if quick else 10_000
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
        root = Path(folder)
        config = make_project(root, articles)
        python = best_of(repeats, lambda: run_command([sys.executable, "-c", "pass"], root))
        help_cpu = best_of(repeats, lambda: run_command(publisher(config, "--help"), root))
        run_command(publisher(config, "run"), root)  # stores everything and writes the feeds
        nothing_new = best_of(min(repeats, 3), lambda: run_command(publisher(config, "run"), root))
    return Report(
        figures=[
            Figure(
                name="publisher --help",
                value=help_cpu,
                floor=python,
                unit="s CPU",
                target=5.0,
                floor_name="python -c pass",
                note=f"best of {repeats}, CPU of the child process",
            ),
            Figure(
                name=f"publisher run, nothing new, {articles:,}-article folder",
                value=nothing_new,
                floor=RUN_BUDGET,
                unit="s CPU",
                target=1.0,
                floor_name=f"the {RUN_BUDGET} s CPU budget (not a measurement)",
                note=f"the floor is the budget of {RUN_BUDGET} s CPU in all, so the ratio is the share of it used",
            ),
        ]
    )
