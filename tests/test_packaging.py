"""The program works from a wheel, outside the checkout: templates and `init`'s files ship as package data."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import feedparser
import pytest

from publisher import clock
from tests.conftest import REPO, Project
from tests.test_cli_init import next_commands


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
    )
    [built] = wheels.glob("publisher-*.whl")
    yield built


def test_wheel_carries_the_templates_and_runs_outside_the_checkout(
    wheel: Path, project: Project, tmp_path: Path
) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "publisher/templates/digest.html.j2" in names
    assert "publisher/templates/digest.txt.j2" in names
    assert "publisher/skeleton/publisher.toml" in names
    assert "publisher/skeleton/hello.md" in names

    installed = tmp_path / "installed"
    zipfile.ZipFile(wheel).extractall(installed)
    env = {**os.environ, "PYTHONPATH": str(installed)}
    where = subprocess.run(
        [sys.executable, "-c", "import publisher; print(publisher.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert where.stdout.startswith(str(installed))  # the wheel's copy, not the checkout's

    run = subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(project.config_path), "run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )

    assert run.returncode == 0, run.stderr
    assert len(project.outbox_files()) == 1
    assert project.feed.exists()


def test_init_then_run_from_the_wheel_in_a_fresh_venv(wheel: Path, tmp_path: Path, at_now: datetime) -> None:
    """A newcomer's first minutes: pip install the wheel, `publisher init`, then what it prints."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    # Without PYTHONPATH: a checkout on it would make pip take publisher for installed already.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"} | {clock.ENV: at_now.isoformat()}
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], capture_output=True, text=True, env=env
    )
    assert installed.returncode == 0, installed.stderr
    command = str(venv / "bin" / "publisher")
    empty = tmp_path / "elsewhere"
    empty.mkdir()

    def publisher(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([command, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)

    missing = publisher("run", cwd=empty)
    assert missing.returncode == 2
    assert "`publisher init` writes one" in missing.stderr

    made = publisher("init", "news", cwd=empty)
    assert made.returncode == 0, made.stderr
    steps = next_commands(made.stdout)
    assert steps == ["cd news", "publisher config check", "publisher run"]
    site = empty / "news"
    for step in steps[1:]:
        done = publisher(*step.split()[1:], cwd=site)
        assert done.returncode == 0, (step, done.stdout, done.stderr)

    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import publisher; print(publisher.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=empty,
        check=True,
    )
    assert where.stdout.startswith(str(venv))  # the wheel's copy, not the checkout's
    feed = feedparser.parse((site / "feeds" / "atom.xml").read_bytes())
    assert [entry.title for entry in feed.entries] == ["Hello, world"]
    assert len(list((site / "outbox").glob("*.eml"))) == 1
