"""A digest slot is never run twice, even when the daemon is killed in the middle of it (issue 5).

A real ``publisher daemon`` process sends the missed digest slot to 300 local readers in
batches of 100 through the webhook, to the fault server of tests/faults.py. The server holds
batch 2 (taken, not answered) and the test SIGKILLs the daemon there. A second daemon must
finish that digest (its refresh resumes it; the webhook dedupes the resent batch 2 by its
Idempotency-Key) and must not run the slot again: one digest, every reader mailed once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from publisher.journal import ACCEPTED
from publisher.scheduler import DIGEST_JOB, REFRESH_JOB, next_digest_time
from tests.conftest import Project, child_process, readline_within
from tests.delivery_helpers import read_journal
from tests.faults import Action, FaultServer, pause
from tests.test_daemon import Daemon, digest_count, move_saved_run, saved_jobs

KEY = "restart-key-Qm4Tz8Lw2Rb6"
SECRET = "restart-secret-Jy7Fc3Nv9Hs1"
READERS = 300
BATCH = 100
TIMEOUT = 15.0


def daemon_command(project: Project) -> list[str]:
    return [sys.executable, "-m", "publisher", "--config", str(project.config_path), "--log-format", "json", "daemon"]


def started(daemon: subprocess.Popen[str], log: Path) -> None:
    assert daemon.stdout is not None
    line = readline_within(daemon.stdout, TIMEOUT, "the daemon")
    assert line.startswith("daemon: started"), line + log.read_text()


def held(trap: Action, daemon: subprocess.Popen[str], log: Path) -> None:
    """Wait until the server holds the daemon's request at ``trap``; fail at once if the daemon ends."""
    deadline = time.monotonic() + TIMEOUT
    while not trap.reached.wait(0.05):
        assert daemon.poll() is None, f"the daemon ended (exit {daemon.returncode}): {log.read_text()}"
        assert time.monotonic() < deadline, f"batch 2 never reached the server: {log.read_text()}"


def sent(project: Project, daemon: subprocess.Popen[str], log: Path) -> None:
    """Poll the store (nothing else signals the end of a send) until the digest is sent."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        store = project.open_store()
        try:
            digest = store.last_digest()
        finally:
            store.close()
        if digest is not None and digest.state == "sent":
            return
        assert time.monotonic() < deadline, f"the digest is {digest and digest.state}: {log.read_text()}"
        try:  # waits between looks, and fails at once if the daemon died
            daemon.wait(0.05)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"the daemon ended (exit {daemon.returncode}): {log.read_text()}")


# APScheduler's saved slot is the SQLite daemon's; on PostgreSQL the daemons form a cluster, whose
# killed daemons and missed slots tests/test_cluster.py covers.
@pytest.mark.parametrize("store", ["sqlite"])
def test_a_daemon_killed_in_the_middle_of_a_digest_slot_finishes_it_and_never_runs_it_again(
    project: Project, store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if store == "postgresql":
        project.configure(store={"url": request.getfixturevalue("pg_url")})
    monkeypatch.setenv("PUBLISHER_MAILER_KEY", KEY)
    monkeypatch.setenv("PUBLISHER_UNSUBSCRIBE_SECRET", SECRET)
    with FaultServer() as server:
        mailer = {"provider": "webhook", "url": f"{server.url}/hook", "retries": 0, "batch_size": BATCH}
        # A yearly slot: no real one comes due while the test runs, whatever the time of day.
        digest = {"recipients": "subscribers", "schedule": "0 7 1 1 *"}
        config = project.configure(digest=digest, mailer=mailer)
        readers = [f"reader{n:03d}@example{n % 3}.org" for n in range(READERS)]
        csv = project.root / "readers.csv"
        csv.write_text("email\n" + "".join(f"{a}\n" for a in readers), encoding="utf-8")
        assert project.cli("subscribers", "import", str(csv)).exit_code == 0

        # A first run saves the digest job; the daemon was then down over the last slot.
        before = datetime.now(UTC)
        with Daemon(config) as saving:
            saving.wait_for(REFRESH_JOB)
        assert saving.runs(DIGEST_JOB) == []
        next_slot = next_digest_time(config, before)
        assert next_slot is not None
        move_saved_run(config, next_slot.replace(year=next_slot.year - 1))

        stuck = pause("accepted")
        server.script({2: stuck})
        first_log = tmp_path / "first.log"
        with child_process(daemon_command(project), cwd=project.root, stderr=first_log) as first:
            started(first, first_log)
            held(stuck, first, first_log)
            first.send_signal(signal.SIGKILL)
            assert first.wait(TIMEOUT) == -signal.SIGKILL
        stuck.release.set()
        assert digest_count(config) == 1
        assert [b.state for b in read_journal(project)[1]] == [ACCEPTED, "sending", "pending"]
        # News that arrives meanwhile would make a second run of the slot create a second digest.
        project.add_article("late.md", "---\ntitle: Late news\n---\nArrived while the daemon was down.\n")

        second_log = tmp_path / "second.log"
        with child_process(daemon_command(project), cwd=project.root, stderr=second_log) as second:
            started(second, second_log)
            sent(project, second, second_log)
            second.send_signal(signal.SIGTERM)
            out, _ = second.communicate(timeout=TIMEOUT)
        assert second.returncode == 0, second_log.read_text()
        assert out.splitlines() == ["daemon: stopped"], second_log.read_text()

    assert digest_count(config) == 1  # the slot did not run a second time
    # The second daemon ran only its refresh job, which finished the digest; the late news waits.
    records = [json.loads(line) for line in second_log.read_text().splitlines()]
    assert {r["job"] for r in records if "job" in r} == {REFRESH_JOB}, second_log.read_text()
    [outcome] = [r for r in records if "digest_id" in r and "batch_key" not in r]
    assert outcome["message"].endswith(": 1 article, 3 batches accepted, 300 recipients"), outcome
    for log in (first_log, second_log):
        assert KEY not in log.read_text() and SECRET not in log.read_text()
    assert saved_jobs(config) == {DIGEST_JOB: next_slot}  # the next slot, in the future
    assert saved_jobs(config)[DIGEST_JOB] > datetime.now(UTC)
    # Batch 2 went twice (held, then resent under the same key), and the server took it once.
    assert [seen.batch[-4:] for seen in server.requests] == ["0001", "0002", "0002", "0003"]
    assert Counter(server.recipients()) == Counter(readers)  # every reader exactly once
    assert [b.state for b in read_journal(project)[1]] == [ACCEPTED] * (READERS // BATCH)
