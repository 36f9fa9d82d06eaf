"""The program works from a wheel, outside the checkout: templates ship as package data."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO, Project


def test_wheel_carries_the_templates_and_runs_outside_the_checkout(project: Project, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
    )
    [wheel] = wheels.glob("publisher-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "publisher/templates/digest.html.j2" in names
    assert "publisher/templates/digest.txt.j2" in names

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
