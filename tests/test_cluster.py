"""Several ``publisher daemon`` processes on one PostgreSQL store (publisher.cluster).

Real daemons (``python -m publisher daemon`` subprocesses) on a database of their own, a real
webhook endpoint on 127.0.0.1 (tests/faults.py) whose record says what went out. Every wait
is on a line from a daemon or on the endpoint's record, with a timeout. These tests fail
(not skip) under CI when PostgreSQL is missing (conftest.postgres_url).
"""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from publisher.store.schema import metadata
from tests.conftest import NOW, Project, markdown_article, readline_within, run_publisher
from tests.faults import Accepted, FaultServer, Seen

TIMEOUT = 60.0
SLOT_SECONDS = 2
SLOTS = 6  # digests sent one after another, a new article before each


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


@pytest.fixture
def cluster(project: Project, pg_url: str, server: FaultServer) -> Project:
    """The project on its own PostgreSQL database, sending to the fault server, no article yet."""
    for old in project.articles.iterdir():
        old.unlink()
    project.configure(
        store={"url": pg_url},
        mailer={"provider": "webhook", "url": server.url, "retries": 0},
        daemon={"refresh_minutes": 60, "stall_seconds": 3},
    )
    return project


@contextmanager
def daemons(project: Project, tmp_path: Path, count: int, env: dict[str, str] | None = None) -> Iterator[list[Path]]:
    """``count`` daemon processes, started at once and each past its first slot check; stopped
    with SIGTERM at the end (each must exit 0 and say so). Yields their stderr logs."""
    logs = [tmp_path / f"daemon-{os.getpid()}-{n}-{os.urandom(3).hex()}.log" for n in range(count)]
    command = [sys.executable, "-m", "publisher", "--config", str(project.config_path), "daemon"]
    with ExitStack() as stack:
        processes = []
        for log in logs:
            handle = stack.enter_context(log.open("w"))
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=handle,
                text=True,
                cwd=project.root,
                env=os.environ | (env or {}),
            )
            stack.callback(_kill, process)
            processes.append(process)
        for process, log in zip(processes, logs, strict=True):
            assert process.stdout is not None
            line = readline_within(process.stdout, TIMEOUT, "a daemon")
            assert line.startswith("daemon: started"), line + log.read_text()
            assert "in the cluster on postgresql" in line
        yield logs
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process, log in zip(processes, logs, strict=True):
            rest, _ = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0, log.read_text()
            assert rest.splitlines() == ["daemon: stopped"], log.read_text()
            assert "Traceback" not in log.read_text()


def _kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(TIMEOUT)


def add_article(project: Project, name: str, content: str) -> None:
    """Written beside the folder and renamed in: a daemon never reads half a file."""
    staged = project.root / f".{name}"
    staged.write_text(content, encoding="utf-8")
    os.replace(staged, project.articles / name)


def digests_taken(accepted: list[Accepted], requests: list[Seen]) -> dict[str, list[str]]:
    """Digest id -> the titles it carried, for every request the endpoint took."""
    taken = {a.batch for a in accepted}
    found: dict[str, list[str]] = {}
    for seen in requests:
        if seen.body and seen.batch in taken:
            payload = json.loads(seen.body)
            found[payload["id"]] = [article["title"] for article in payload["articles"]]
    return found


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_three_daemons_send_every_digest_once(
    cluster: Project, pg_url: str, server: FaultServer, tmp_path: Path
) -> None:
    cluster.configure(digest={"schedule": f"* * * * * */{SLOT_SECONDS}"})
    with daemons(cluster, tmp_path, 3):
        for n in range(SLOTS):
            title = f"Story number {n}"
            add_article(cluster, f"story-{n}.md", f"---\ntitle: {title}\n---\nThe text of {title}.\n")
            arrived = server.wait_for(
                lambda requests, accepted, title=title: any(
                    title in titles for titles in digests_taken(accepted, requests).values()
                ),
                TIMEOUT,
            )
            assert arrived, f"{title!r} was not mailed within {TIMEOUT} s"
        status = cluster.cli("status", "--json")
        shown = json.loads(status.stdout)["cluster"]
        assert [w["alive"] for w in shown["workers"]] == [True, True, True]
        assert shown["jobs"]["stalled"] == 0

    # Every batch was requested once: no digest went out twice, not even to an endpoint that dedupes.
    keys = Counter(seen.headers["idempotency-key"] for seen in server.requests)
    assert keys and max(keys.values()) == 1, keys
    sent = digests_taken(server.accepted, server.requests)
    assert len(sent) == SLOTS
    titles = Counter(title for carried in sent.values() for title in carried)
    assert titles == Counter(f"Story number {n}" for n in range(SLOTS))
    assert rows(pg_url, "SELECT DISTINCT state FROM digests") == [("sent",)]
    # Each slot became one job in the whole cluster, whichever daemons offered it.
    slots = rows(
        pg_url, "SELECT args->>'timestamp', count(*) FROM procrastinate_jobs WHERE task_name = 'digest' GROUP BY 1"
    )
    assert len(slots) >= SLOTS
    assert {count for _, count in slots} == {1}
    assert rows(pg_url, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed'") == [(0,)]


def test_a_slot_missed_by_every_daemon_runs_once_when_one_starts(
    cluster: Project, pg_url: str, server: FaultServer, tmp_path: Path
) -> None:
    day_one = {"PUBLISHER_NOW": NOW.isoformat()}  # 06:30, before the 07:00 slot
    with daemons(cluster, tmp_path, 1, env=day_one):
        pass  # the cluster begins; no slot is due yet
    add_article(cluster, "late.md", markdown_article("Written while every daemon was down", "2026-11-24"))

    day_two = {"PUBLISHER_NOW": (NOW + timedelta(days=1)).isoformat()}  # the 07:00 slot passed unseen
    with daemons(cluster, tmp_path, 2, env=day_two):
        assert server.wait_for(lambda requests, accepted: len(accepted) >= 1, TIMEOUT), "the missed slot did not run"
    with daemons(cluster, tmp_path, 1, env=day_two):
        pass  # past its first slot check: it found nothing missed

    assert len(server.accepted) == 1
    assert len(server.requests) == 1
    assert list(digests_taken(server.accepted, server.requests).values()) == [["Written while every daemon was down"]]
    assert rows(pg_url, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'digest'") == [(1,)]


def test_db_copy_keeps_every_row_and_the_feeds_rebuild_byte_identical(
    project: Project, pg_url: str, tmp_path: Path
) -> None:
    project.configure(digest={"recipients": "subscribers"})
    env = {"PUBLISHER_NOW": NOW.isoformat(), "PUBLISHER_UNSUBSCRIBE_SECRET": "a-long-enough-secret-for-the-tests-0123"}
    added = run_publisher("subscribers", "add", "a@example.org", "b@example.org", cwd=project.root, env=env)
    assert added.returncode == 0, added.stderr
    for day, tags in enumerate((["harbour"], ["storm", "harbour"], ["council"]), start=1):
        when = (NOW + timedelta(days=day)).isoformat()
        project.add_article(f"day-{day}.md", markdown_article(f"News of day {day}", when[:10], tags))
        done = run_publisher("run", cwd=project.root, env=env | {"PUBLISHER_NOW": when})
        assert done.returncode == 0, done.stderr
    sqlite_url = project.config().store_url

    copied = run_publisher("db", "copy", "--to", pg_url, cwd=project.root, env=env)
    assert copied.returncode == 0, copied.stderr
    assert copied.stdout.splitlines()[-1].startswith("db copy: ")

    for table in metadata.sorted_tables:
        order = ", ".join(column.name for column in table.primary_key.columns) or "1"
        assert _table(sqlite_url, table.name, order) == _table(pg_url, table.name, order), table.name
    again = run_publisher("db", "copy", "--to", pg_url, cwd=project.root, env=env)
    assert again.returncode == 1
    assert again.stderr.splitlines() == [
        f"publisher: error: db copy: {pg_url} holds a store already; copy into an empty database"
    ]

    later = env | {"PUBLISHER_NOW": (NOW + timedelta(days=5)).isoformat()}
    for name, url in (("from-sqlite", sqlite_url), ("from-postgresql", pg_url)):
        project.configure(store={"url": url}, feed={"dir": name})
        built = run_publisher("feed", cwd=project.root, env=later)
        assert built.returncode == 0, built.stderr
    comparison = filecmp.dircmp(project.root / "from-sqlite", project.root / "from-postgresql")
    assert _same_tree(comparison)
    assert (project.root / "from-postgresql" / "atom.xml").stat().st_size > 0


def _table(url: str, name: str, order: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            table = metadata.tables[name]
            return [tuple(row) for row in conn.execute(select(table).order_by(text(order)))]
    finally:
        engine.dispose()


def _same_tree(comparison: filecmp.dircmp[str]) -> bool:
    """Same names everywhere, and every file byte for byte the same."""
    if comparison.left_only or comparison.right_only or comparison.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(comparison.left, comparison.right, comparison.common_files, shallow=False)
    return not mismatch and not errors and all(_same_tree(sub) for sub in comparison.subdirs.values())
