"""The daemon's stderr: its own lines (a job started, what it did, when it runs next), APScheduler's
records only with ``-v``, and the same in JSON. A real daemon process sends a missed digest at start-up
to a recording webhook on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import Project, child_process, readline_within
from tests.endpoint import Answer, Endpoint, Request
from tests.test_daemon import TIMEOUT, move_saved_run

APSCHEDULER_WORDS = ("apscheduler", "Added job", "Running job", "executed successfully", "Scheduler started")


def daemon_stderr(project: Project, endpoint: Endpoint, tmp_path: Path, *options: str) -> str:
    """Start the daemon once (to save its digest job), move the job's slot an hour back, start it
    again, and stop it once the missed digest reached the webhook; the second run's stderr."""
    project.configure(mailer={"provider": "webhook", "url": endpoint.url, "retries": 0, "timeout": 5})
    arrived = threading.Event()

    def accept(request: Request) -> Answer:
        arrived.set()
        return 200, {"id": "msg-1"}, {}

    endpoint.handler = accept
    command = [sys.executable, "-m", "publisher", *options, "daemon", "--config", str(project.config_path)]
    with child_process(command, cwd=project.root, stderr=tmp_path / "first.log") as first:
        assert first.stdout is not None
        assert readline_within(first.stdout, TIMEOUT, "the daemon").startswith("daemon: started")
        first.send_signal(signal.SIGTERM)
        assert first.wait(TIMEOUT) == 0
    move_saved_run(project.config(), datetime.now(UTC) - timedelta(hours=1))

    log = tmp_path / "second.log"
    with child_process(command, cwd=project.root, stderr=log) as second:
        assert second.stdout is not None
        assert readline_within(second.stdout, TIMEOUT, "the daemon").startswith("daemon: started")
        assert arrived.wait(TIMEOUT), log.read_text()
        second.send_signal(signal.SIGTERM)  # the digest job finishes first
        assert second.wait(TIMEOUT) == 0, log.read_text()
    return log.read_text()


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PUBLISHER_LOG_FORMAT", "PUBLISHER_CONFIG", "PUBLISHER_MAILER_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert "PUBLISHER_NOW" not in os.environ  # APScheduler fires on the real clock


def test_the_daemon_says_what_it_does_in_its_own_words(project: Project, endpoint: Endpoint, tmp_path: Path) -> None:
    stderr = daemon_stderr(project, endpoint, tmp_path)

    lines = stderr.splitlines()
    assert all(line.startswith("publisher: ") for line in lines), stderr
    assert not any(word in stderr for word in APSCHEDULER_WORDS), stderr
    assert "publisher: digest job: started" in lines
    sent = [line for line in lines if line.startswith("publisher: digest ") and ": 1 article, " in line]
    assert len(sent) == 1, stderr
    [done] = [line for line in lines if line.startswith("publisher: digest job: done; next run ")]
    next_run = datetime.fromisoformat(done.rsplit(" ", 1)[1])
    assert next_run > datetime.now(UTC)  # the next slot, not the one just missed
    assert lines.index("publisher: digest job: started") < lines.index(sent[0]) < lines.index(done)


def test_apschedulers_records_with_v(project: Project, endpoint: Endpoint, tmp_path: Path) -> None:
    stderr = daemon_stderr(project, endpoint, tmp_path, "-v")
    assert "Running job" in stderr
    assert "publisher: digest job: started" in stderr


def test_the_same_lines_in_json(project: Project, endpoint: Endpoint, tmp_path: Path) -> None:
    stderr = daemon_stderr(project, endpoint, tmp_path, "--log-format", "json")

    records = [json.loads(line) for line in stderr.splitlines()]
    assert {record["logger"].split(".")[0] for record in records} == {"publisher"}, stderr
    digest_lines = [(r["message"], r.get("job")) for r in records if r.get("job") == "digest"]
    assert digest_lines[0] == ("digest job: started", "digest")
    assert digest_lines[-1][0].startswith("digest job: done; next run ")
