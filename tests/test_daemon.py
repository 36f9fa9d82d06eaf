"""``publisher daemon``: the scheduler in a thread on a real SQLite store, and the real process.

Every wait is on an Event (set from the on_job/ready callbacks) or a pipe, with a timeout;
nothing sleeps to let time pass. A job that would fire "later" is made due by moving its
saved next run time into the past, as downtime over a scheduled slot would.
"""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from zoneinfo import ZoneInfo

import feedparser
import pytest
from apscheduler.events import JobExecutionEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import create_engine, func, inspect, select, text

from publisher import config as config_module
from publisher.config import Config
from publisher.errors import ConfigError, PublisherError
from publisher.scheduler import DIGEST_JOB, REFRESH_JOB, run_daemon
from publisher.schema import digests
from tests.conftest import SAMPLE_TITLE, Project, child_process, readline_within

TIMEOUT = 30.0


class Daemon:
    """``run_daemon`` in a thread; records every job event and lets a test wait for one."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stop = threading.Event()
        self.started = threading.Event()
        self.ready_line = ""
        self.events: list[JobExecutionEvent] = []
        self.error: BaseException | None = None
        self._fired = {DIGEST_JOB: threading.Event(), REFRESH_JOB: threading.Event()}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="test-daemon", daemon=True)

    def _run(self) -> None:
        try:
            run_daemon(self.config, self.stop, on_job=self._on_job, ready=self._on_ready)
        except BaseException as exc:
            self.error = exc
        finally:  # never leave a waiter hanging on a daemon that died
            self.started.set()
            for fired in self._fired.values():
                fired.set()

    def _on_ready(self, line: str) -> None:
        self.ready_line = line
        self.started.set()

    def _on_job(self, event: JobExecutionEvent) -> None:
        with self._lock:
            self.events.append(event)
        self._fired[event.job_id].set()

    def runs(self, job_id: str) -> list[JobExecutionEvent]:
        with self._lock:
            return [event for event in self.events if event.job_id == job_id]

    def wait_for(self, job_id: str) -> JobExecutionEvent:
        """The first run of ``job_id``, which must have succeeded."""
        assert self._fired[job_id].wait(TIMEOUT), f"the {job_id} job did not run within {TIMEOUT} s"
        assert self.error is None, f"run_daemon failed: {self.error!r}"
        event = self.runs(job_id)[0]
        assert event.exception is None, f"{job_id} job raised {event.exception!r}\n{event.traceback}"
        return event

    def __enter__(self) -> Daemon:
        self._thread.start()
        assert self.started.wait(TIMEOUT), "the daemon did not report ready"
        assert self.error is None, f"run_daemon failed: {self.error!r}"
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop.set()
        self._thread.join(TIMEOUT)
        if exc is not None:
            return  # let the test's own failure show
        assert not self._thread.is_alive(), "run_daemon did not return after stop was set"
        assert self.error is None, f"run_daemon failed: {self.error!r}"
        # A job that failed after the test's last wait still fails the test.
        for event in self.events:
            assert event.exception is None, f"{event.job_id} job raised {event.exception!r}"


def saved_jobs(config: Config) -> dict[str, datetime | None]:
    """The ``apscheduler_jobs`` rows in the store, read with plain SQL: id -> next run time."""
    engine = create_engine(config.store_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, next_run_time FROM apscheduler_jobs")).all()
    finally:
        engine.dispose()
    return {
        row.id: None if row.next_run_time is None else datetime.fromtimestamp(row.next_run_time, UTC) for row in rows
    }


def move_saved_run(config: Config, when: datetime) -> None:
    """Set the saved digest job's next run time with APScheduler's own job store on the same database.

    Only the job store is started: a scheduler would process jobs (and could run this one).
    """
    jobstore = SQLAlchemyJobStore(url=config.store_url)
    jobstore.start(BackgroundScheduler(timezone=UTC), "default")
    try:
        job = jobstore.lookup_job(DIGEST_JOB)
        assert job is not None, "the digest job was not saved"
        state = job.__getstate__()
        state["next_run_time"] = when
        job.__setstate__(state)
        jobstore.update_job(job)
    finally:
        jobstore.shutdown()
    assert saved_jobs(config)[DIGEST_JOB] == when


def next_seven_utc(after: datetime) -> datetime:
    slot = after.replace(hour=7, minute=0, second=0, microsecond=0)
    return slot if slot > after else slot + timedelta(days=1)


def digest_count(config: Config) -> int:
    engine = create_engine(config.store_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(digests)).scalar_one())
    finally:
        engine.dispose()


# -- the daemon in a thread ----------------------------------------------------------------------


def test_a_missed_digest_runs_once_after_a_restart_and_never_again(project: Project) -> None:
    config = project.config()
    started_at = datetime.now(UTC)
    with Daemon(config) as first:
        first.wait_for(REFRESH_JOB)
    assert first.runs(DIGEST_JOB) == []
    assert project.outbox_files() == []
    # Only the digest job is persisted (the refresh job lives in memory), due at the next 07:00 UTC.
    assert saved_jobs(config) == {DIGEST_JOB: next_seven_utc(started_at)}

    # The daemon was down over three 07:00 slots.
    down_since = (datetime.now(UTC) - timedelta(days=3)).replace(hour=7, minute=0, second=0, microsecond=0)
    move_saved_run(config, down_since)

    restarted_at = datetime.now(UTC)
    with Daemon(config) as second:
        ran = second.wait_for(DIGEST_JOB)
        second.wait_for(REFRESH_JOB)
    [only_run] = second.runs(DIGEST_JOB)  # the missed slots coalesce into one run
    assert ran is only_run
    assert ran.retval == "sent"
    assert ran.scheduled_run_time <= restarted_at
    [eml] = project.outbox_files()
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == "Example News: 1 new"
    html = message.get_body(("html",))
    assert html is not None and SAMPLE_TITLE in html.get_content()
    assert digest_count(config) == 1
    # Persisted after the run: the next slot, in the future.
    after_run = saved_jobs(config)
    assert list(after_run) == [DIGEST_JOB]
    assert after_run[DIGEST_JOB] == next_seven_utc(restarted_at)

    with Daemon(config) as third:
        third.wait_for(REFRESH_JOB)
    # Stopping waits for every job already handed to the executor, so a digest due at start
    # (it would be handed over with the refresh) would be in the events by now.
    assert third.runs(DIGEST_JOB) == []
    assert project.outbox_files() == [eml]
    assert digest_count(config) == 1
    assert saved_jobs(config) == after_run


def test_the_refresh_job_runs_at_start_and_puts_new_files_in_the_feed(project: Project) -> None:
    project.add_article(
        "late-news.md", "---\ntitle: Late news from the newsroom\n---\nWritten just before the start.\n"
    )
    with Daemon(project.config()) as daemon:
        refresh = daemon.wait_for(REFRESH_JOB)
    assert refresh.retval == "refreshed"
    feed = feedparser.parse(project.feed.read_bytes())
    assert not feed.bozo, feed.bozo_exception
    assert {entry.title for entry in feed.entries} == {"Late news from the newsroom", SAMPLE_TITLE}
    assert daemon.runs(DIGEST_JOB) == []
    assert project.outbox_files() == []  # a refresh never mails


def test_the_refresh_job_retries_a_digest_that_failed_but_starts_no_new_one(project: Project, endpoint) -> None:  # type: ignore[no-untyped-def]
    project.configure(mailer={"provider": "webhook", "url": endpoint.url, "retries": 0})
    endpoint.reply(503, {"message": "try later"})
    assert project.cli("run").exit_code == 1  # the digest is now due but unsent

    with Daemon(project.config()) as daemon:
        daemon.wait_for(REFRESH_JOB)

    assert len(endpoint.requests) == 2  # the failed send, then the refresh's retry
    assert endpoint.requests[0].json()["id"] == endpoint.requests[1].json()["id"]
    assert digest_count(project.config()) == 1
    assert daemon.runs(DIGEST_JOB) == []


def test_a_changed_schedule_replaces_the_saved_trigger(project: Project) -> None:
    with Daemon(project.config()) as first:
        first.wait_for(REFRESH_JOB)
    daily = saved_jobs(project.config())[DIGEST_JOB]
    assert daily is not None and (daily.hour, daily.minute) == (7, 0)

    # crontab weekday 1 is Monday (APScheduler 3.x on its own would read it as Tuesday).
    config = project.configure(digest={"schedule": "30 18 * * 1", "timezone": "Europe/Berlin"})
    before = datetime.now(UTC)
    with Daemon(config) as second:
        second.wait_for(REFRESH_JOB)
    assert "'30 18 * * 1' (Europe/Berlin)" in second.ready_line
    assert second.runs(DIGEST_JOB) == []
    weekly = saved_jobs(config)[DIGEST_JOB]
    assert weekly is not None
    local = weekly.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.strftime("%A"), local.hour, local.minute) == ("Monday", 18, 30)
    assert before < weekly <= before + timedelta(days=7)
    assert f"next {local.isoformat()}" in second.ready_line


def test_a_moved_config_keeps_the_missed_slot_and_the_digest_reads_the_new_file(project: Project) -> None:
    # Absolute paths, so the same store and folders serve the config from its new place.
    config = project.configure(
        store={"url": f"sqlite:///{project.root / 'publisher.db'}"},
        articles={"dir": str(project.articles)},
        feed={"dir": str(project.feed.parent)},
        mailer={"outbox_dir": str(project.outbox)},
    )
    with Daemon(config) as first:
        first.wait_for(REFRESH_JOB)
    move_saved_run(config, datetime.now(UTC) - timedelta(days=1))
    moved = project.root / "etc" / "publisher.toml"
    moved.parent.mkdir()
    shutil.move(project.config_path, moved)

    with Daemon(config_module.load(moved)) as second:
        ran = second.wait_for(DIGEST_JOB)
    assert ran.retval == "sent"
    assert len(project.outbox_files()) == 1


def test_a_daemon_that_cannot_start_returns_the_config_error(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    config = project.configure(mailer={"provider": "mailgun", "domain": "mg.example.org"})
    monkeypatch.delenv("PUBLISHER_MAILER_KEY", raising=False)

    with pytest.raises(ConfigError, match=r"\[mailer\] api_key_env: environment variable PUBLISHER_MAILER_KEY "):
        run_daemon(config, threading.Event(), ready=lambda line: pytest.fail(f"daemon started: {line}"))


# -- the real process ------------------------------------------------------------------------------


def _daemon_command(project: Project) -> list[str]:
    return [sys.executable, "-m", "publisher", "--config", str(project.config_path), "daemon"]


@pytest.fixture
def daemon_process(project: Project, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    stderr_path = tmp_path / "daemon-stderr.log"
    with child_process(_daemon_command(project), cwd=project.root, stderr=stderr_path) as process:
        yield process, stderr_path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_daemon_process_stops_cleanly_on_a_signal(
    daemon_process: tuple[subprocess.Popen[str], Path], signum: signal.Signals
) -> None:
    process, stderr_path = daemon_process
    assert process.stdout is not None
    first = readline_within(process.stdout, TIMEOUT, "the daemon")
    assert first.startswith("daemon: started; digest on '0 7 * * *' (UTC)"), first + stderr_path.read_text()

    process.send_signal(signum)
    rest, _ = process.communicate(timeout=TIMEOUT)

    stderr = stderr_path.read_text()
    assert process.returncode == 0, stderr
    assert rest.splitlines() == ["daemon: stopped"], stderr
    assert "Traceback" not in stderr


def test_a_missing_mailgun_key_stops_the_daemon_before_it_starts(project: Project) -> None:
    project.configure(mailer={"provider": "mailgun", "domain": "mg.example.org"})
    env = {name: value for name, value in os.environ.items() if name != "PUBLISHER_MAILER_KEY"}

    done = subprocess.run(
        _daemon_command(project), capture_output=True, text=True, env=env, cwd=project.root, timeout=TIMEOUT
    )

    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("publisher: error: publisher.toml: [mailer] api_key_env: ")
    assert "PUBLISHER_MAILER_KEY is not set" in line
    db = project.root / "publisher.db"
    if db.exists():  # whether or not the store was opened, no scheduler ever used it
        engine = create_engine(project.config().store_url)
        try:
            assert "apscheduler_jobs" not in inspect(engine).get_table_names()
        finally:
            engine.dispose()


def test_the_in_process_daemon_command_puts_the_signal_handlers_back(project: Project) -> None:
    project.configure(mailer={"provider": "mailgun", "domain": "mg.example.org"})
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    wakeup_fd_before = _wakeup_fd()

    result = project.cli("daemon", env={"PUBLISHER_MAILER_KEY": None})  # type: ignore[dict-item]

    assert result.exit_code == 2
    assert "[mailer] api_key_env" in result.stderr
    assert "daemon: started" not in result.stdout
    assert {signum: signal.getsignal(signum) for signum in before} == before
    assert _wakeup_fd() == wakeup_fd_before


def _wakeup_fd() -> int:
    current = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(current)
    return current


# -- one daemon per store --------------------------------------------------------------------------


def test_a_second_daemon_on_the_same_store_refuses_to_start(project: Project) -> None:
    with Daemon(project.config()), pytest.raises(PublisherError, match="another daemon already runs on this store"):
        run_daemon(project.config(), threading.Event())


def _start_daemon(project: Project) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _daemon_command(project), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=project.root
    )


# On PostgreSQL a second daemon joins the first in a cluster instead: tests/test_cluster.py.
@pytest.mark.parametrize("store", ["sqlite"])
def test_the_daemon_lock_outlives_a_second_daemon_and_dies_with_sigkill(
    project: Project, store: str, request: pytest.FixtureRequest
) -> None:
    if store == "postgresql":
        project.configure(store={"url": request.getfixturevalue("pg_url")})
    first = _start_daemon(project)
    try:
        assert first.stdout is not None
        assert readline_within(first.stdout, TIMEOUT, "the first daemon").startswith("daemon: started")

        second = subprocess.run(_daemon_command(project), capture_output=True, text=True, timeout=TIMEOUT)
        assert second.returncode == 1
        [line] = second.stderr.splitlines()
        assert "another daemon already runs on this store" in line

        first.kill()  # no cleanup runs: the operating system must drop the lock
        first.wait(TIMEOUT)
        third = _start_daemon(project)
        try:
            assert third.stdout is not None
            assert readline_within(third.stdout, TIMEOUT, "the third daemon").startswith("daemon: started")
        finally:
            third.terminate()
            assert third.wait(TIMEOUT) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(TIMEOUT)
