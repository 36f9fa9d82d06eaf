"""An idle ``publisher daemon``: the share of a core it takes between jobs.

The daemon is started on a project with the sample article; once its first refresh has run it
is left alone for a window, and its CPU time over that window (from /proc) is the figure. The
floor is the window itself, one whole core: the target is under 1% of it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Figure, Report

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def run(quick: bool) -> Report:
    window = 3.0 if quick else 30.0
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        shutil.copy(REPO / "publisher.toml", root / "publisher.toml")
        shutil.copytree(REPO / "articles", root / "articles")
        command = [sys.executable, "-m", "publisher", "--config", str(root / "publisher.toml"), "daemon"]
        log = root / "daemon.log"
        with log.open("w") as stderr:
            daemon = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            assert daemon.stdout is not None
            ready = daemon.stdout.readline()
            if not ready.startswith("daemon: started"):
                raise RuntimeError(f"the daemon did not start: {ready}{log.read_text()}")
            _wait_for(lambda: "feeds:" in log.read_text(), 60, "the daemon's first refresh", log)
            before = _cpu_seconds(daemon.pid)
            time.sleep(window)
            used = _cpu_seconds(daemon.pid) - before
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
    figure = Figure(
        name="idle daemon, CPU share of one core",
        value=used,
        floor=window,
        unit="s CPU",
        target=0.01,
        floor_name=f"one core for the {window:g} s window",
    )
    return Report(figures=[figure])


def _cpu_seconds(pid: int) -> float:
    """User + system time of a process, from /proc/PID/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _wait_for(done: Callable[[], bool], seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {seconds:g} s: {log.read_text()}")
        time.sleep(0.1)
