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
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select, text

from publisher.store.schema import metadata
from tests.conftest import NOW, Project, markdown_article, readline_within
from tests.faults import Accepted, FaultServer, Seen, pause, slow

TIMEOUT = 60.0
# A slot every second: the shortest the schedule can say. A slot's job that runs late only
# makes the next slot's offer wait (the queueing lock), so a loaded machine slows the test
# down, never breaks it (measured: NOTES-cluster2.md).
SLOT_SECONDS = 1
SLOTS = 50  # digests sent one after another, a new article before each
READERS, BATCH = 10_000, 100
BATCHES = READERS // BATCH
SEVERAL_ARTICLES = 9  # news, analysis, both; three times
KILLED_AT = 40  # the daemon sending the 40th request (of 100) is killed: mid-send
SECRET = "cluster-test-unsubscribe-secret-0123456789"
MAILER_KEY = "key-cluster-test-0123456789abcdef0123456789"
ENV = {"PUBLISHER_UNSUBSCRIBE_SECRET": SECRET, "PUBLISHER_MAILER_KEY": MAILER_KEY}


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
        daemon={"refresh_minutes": 60, "stall_seconds": 5},  # a busy shared machine may delay a beat
    )
    return project


@dataclass
class Member:
    process: subprocess.Popen[str]
    worker_id: int
    log: list[str] = field(default_factory=list)  # its stderr, line by line
    reader: threading.Thread | None = None  # reads the log until the process's stderr closes
    started: str = ""  # its "daemon: started" line


class Cluster:
    """The daemons started by :func:`daemons`, with their stderr read as it comes."""

    def __init__(self) -> None:
        self.members: list[Member] = []
        self._changed = threading.Condition()

    def read(self, member: Member) -> None:
        assert member.process.stderr is not None
        for line in member.process.stderr:
            with self._changed:
                member.log.append(line)
                self._changed.notify_all()

    def wait_line(self, predicate: Callable[[str], bool], timeout: float) -> bool:
        """Wait until a daemon logs a line for which ``predicate`` holds."""
        with self._changed:
            return self._changed.wait_for(lambda: any(predicate(x) for m in self.members for x in m.log), timeout)

    def logs(self) -> str:
        with self._changed:
            return "".join(line for m in self.members for line in m.log)


@contextmanager
def daemons(project: Project, count: int, env: dict[str, str] | None = None) -> Iterator[Cluster]:
    """``count`` daemon processes, started at once and each past its first slot check; stopped
    with SIGTERM at the end (each one still running must exit 0 and say so)."""
    command = [sys.executable, "-m", "publisher", "--config", str(project.config_path), "daemon"]
    cluster = Cluster()
    with ExitStack() as stack:
        processes = []
        for _ in range(count):
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=project.root,
                env=os.environ | (env or {}),
            )
            stack.callback(_kill, process)
            processes.append(process)
        for process in processes:
            assert process.stdout is not None
            line = readline_within(process.stdout, TIMEOUT, "a daemon")
            assert line.startswith("daemon: started"), line
            assert "in the cluster on postgresql" in line
            member = Member(process, int(line.rsplit(" ", 1)[1]), started=line)
            cluster.members.append(member)
            member.reader = threading.Thread(target=cluster.read, args=(member,), daemon=True)
            member.reader.start()
        yield cluster
        running = [m for m in cluster.members if m.process.poll() is None]
        for member in running:
            member.process.send_signal(signal.SIGTERM)
        for member in running:
            assert member.process.wait(TIMEOUT) == 0, cluster.logs()
            assert member.process.stdout is not None
            assert member.process.stdout.read().splitlines() == ["daemon: stopped"], cluster.logs()
        for member in cluster.members:  # every line read, the killed daemons' too
            assert member.reader is not None
            member.reader.join(TIMEOUT)
        assert "Traceback" not in cluster.logs()


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


def test_three_daemons_send_every_digest_once(cluster: Project, pg_url: str, server: FaultServer) -> None:
    cluster.configure(digest={"schedule": f"* * * * * */{SLOT_SECONDS}"})
    with daemons(cluster, 3):
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
    assert sorted(sent) == [digest_id for (digest_id,) in rows(pg_url, "SELECT id FROM digests ORDER BY id")]
    titles = Counter(title for carried in sent.values() for title in carried)
    assert titles == Counter(f"Story number {n}" for n in range(SLOTS))  # each in one digest, once
    assert rows(pg_url, "SELECT DISTINCT state FROM digests") == [("sent",)]
    # Each slot became one job in the whole cluster, whichever daemons offered it.
    slots = rows(
        pg_url, "SELECT args->>'timestamp', count(*) FROM procrastinate_jobs WHERE task_name = 'digest' GROUP BY 1"
    )
    assert len(slots) >= SLOTS
    assert {count for _, count in slots} == {1}
    assert rows(pg_url, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed'") == [(0,)]


def test_each_digest_runs_its_own_slots_once_in_the_cluster(cluster: Project, pg_url: str, server: FaultServer) -> None:
    base = {key: value for key, value in cluster.settings["digest"].items() if key != "schedule"}
    cluster.settings["digest"] = [
        base | {"name": "news", "schedule": "* * * * * */1", "tags": ["news"]},
        base | {"name": "analysis", "schedule": "* * * * * */2", "tags": ["analysis"]},
    ]
    cluster.configure()
    expected: dict[str, list[str]] = {"news": [], "analysis": []}

    def carried_by(name: str, accepted: list[Accepted], requests: list[Seen]) -> list[str]:
        taken = digests_taken(accepted, requests)
        return [title for digest_id, titles in taken.items() if digest_id.startswith(f"{name}-") for title in titles]

    with daemons(cluster, 2) as running:
        for member in running.members:
            assert "digest news on '* * * * * */1' (UTC), next " in member.started
            assert "digest analysis on '* * * * * */2' (UTC), next " in member.started
        for n in range(SEVERAL_ARTICLES):
            tags = [["news"], ["analysis"], ["news", "analysis"]][n % 3]
            title = f"Story {n} {'+'.join(tags)}"
            add_article(cluster, f"story-{n}.md", f"---\ntitle: {title}\ntags: {json.dumps(tags)}\n---\nText {n}.\n")
            for name in tags:
                expected[name].append(title)
            arrived = server.wait_for(
                lambda requests, accepted, title=title, tags=tags: all(
                    title in carried_by(name, accepted, requests) for name in tags
                ),
                TIMEOUT,
            )
            assert arrived, f"{title!r} was not mailed by {tags} within {TIMEOUT} s"
        for digest_id in digests_taken(server.accepted, server.requests):  # each settled (its settle job ran)
            said = re.compile(rf"digest {digest_id}: \d+ articles?, ")
            settled = running.wait_line(lambda line, said=said: said.search(line) is not None, TIMEOUT)
            assert settled, f"{digest_id} was not recorded as sent: {running.logs()}"

    keys = Counter(seen.headers["idempotency-key"] for seen in server.requests)
    assert keys and max(keys.values()) == 1, keys  # no batch requested twice
    for name, titles in expected.items():  # every matching article in its digest, once; none other
        assert Counter(carried_by(name, server.accepted, server.requests)) == Counter(titles), name
    sent = digests_taken(server.accepted, server.requests)
    assert sorted(sent) == [digest_id for (digest_id,) in rows(pg_url, "SELECT id FROM digests ORDER BY id")]
    assert rows(pg_url, "SELECT DISTINCT state FROM digests") == [("sent",)]
    # Each digest's slots, on its own schedule and key, each one job in the whole cluster.
    slots = rows(
        pg_url,
        "SELECT args->>'name', args->>'timestamp', count(*) FROM procrastinate_jobs "
        "WHERE task_name = 'digest' GROUP BY 1, 2",
    )
    assert {name for name, _, _ in slots} == {"news", "analysis"}
    assert {count for _, _, count in slots} == {1}
    assert all(int(str(stamp)) % 2 == 0 for name, stamp, _ in slots if name == "analysis")
    assert sorted(rows(pg_url, "SELECT periodic_id FROM procrastinate_periodic_defers WHERE task_name = 'digest'")) == [
        ("digest:analysis",),
        ("digest:news",),
    ]
    assert rows(pg_url, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed'") == [(0,)]


def test_a_slot_missed_by_every_daemon_runs_once_when_one_starts(
    cluster: Project, pg_url: str, server: FaultServer
) -> None:
    missed = NOW.replace(hour=7, minute=0)  # the default schedule, 0 7 * * * (UTC)
    day_one = {"PUBLISHER_NOW": NOW.isoformat()}  # 06:30, before the 07:00 slot
    with daemons(cluster, 1, env=day_one):
        pass  # the cluster begins; no slot is due yet
    assert rows(pg_url, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'digest'") == [(0,)]
    add_article(cluster, "late.md", markdown_article("Written while every daemon was down", "2026-11-24"))

    day_two = {"PUBLISHER_NOW": (NOW + timedelta(days=1)).isoformat()}  # 06:30 the next day: 07:00 passed unseen
    with daemons(cluster, 1, env=day_two):
        assert server.wait_for(lambda requests, accepted: len(accepted) >= 1, TIMEOUT), "the missed slot did not run"
    with daemons(cluster, 2, env=day_two):
        pass  # past their first slot check: they found nothing missed

    assert len(server.accepted) == 1
    assert len(server.requests) == 1
    assert list(digests_taken(server.accepted, server.requests).values()) == [["Written while every daemon was down"]]
    assert rows(pg_url, "SELECT args->>'timestamp', status FROM procrastinate_jobs WHERE task_name = 'digest'") == [
        (str(int(missed.timestamp())), "succeeded")
    ]
    assert rows(pg_url, "SELECT state FROM digests") == [("sent",)]


def test_each_digest_catches_up_its_own_missed_slot_once(cluster: Project, pg_url: str, server: FaultServer) -> None:
    base = {key: value for key, value in cluster.settings["digest"].items() if key != "schedule"}
    cluster.settings["digest"] = [
        base | {"name": "news", "schedule": "0 7 * * *", "tags": ["news"]},
        base | {"name": "analysis", "schedule": "0 8 * * *", "timezone": "Europe/London", "tags": ["analysis"]},
    ]
    cluster.configure()
    with daemons(cluster, 1, env={"PUBLISHER_NOW": NOW.isoformat()}):  # 06:30: neither slot is due
        pass
    add_article(cluster, "n.md", markdown_article("News while every daemon was down", "2026-11-24", ["news"]))
    add_article(cluster, "a.md", markdown_article("Analysis while every daemon was down", "2026-11-24", ["analysis"]))

    day_two = {"PUBLISHER_NOW": (NOW + timedelta(days=1, hours=2)).isoformat()}  # 08:30: both slots passed unseen
    with daemons(cluster, 1, env=day_two) as running:
        assert server.wait_for(lambda requests, accepted: len(accepted) >= 2, TIMEOUT), running.logs()
        for digest_id in digests_taken(server.accepted, server.requests):  # each settled (its settle job ran)
            said = re.compile(rf"digest {digest_id}: \d+ articles?, ")
            assert running.wait_line(lambda line, said=said: said.search(line) is not None, TIMEOUT), running.logs()
    with daemons(cluster, 2, env=day_two):
        pass  # past their first slot check: they found nothing missed

    assert len(server.requests) == 2
    taken = digests_taken(server.accepted, server.requests)
    assert sorted((digest_id.split("-")[0], titles) for digest_id, titles in taken.items()) == [
        ("analysis", ["Analysis while every daemon was down"]),
        ("news", ["News while every daemon was down"]),
    ]
    day = NOW + timedelta(days=1)
    assert sorted(
        rows(
            pg_url,
            "SELECT args->>'name', args->>'timestamp', status FROM procrastinate_jobs WHERE task_name = 'digest'",
        )
    ) == [
        ("analysis", str(int(day.replace(hour=8, minute=0).timestamp())), "succeeded"),  # 08:00 in London is UTC
        ("news", str(int(day.replace(hour=7, minute=0).timestamp())), "succeeded"),
    ]
    assert rows(pg_url, "SELECT DISTINCT state FROM digests") == [("sent",)]


def test_db_copy_keeps_every_row_and_the_feeds_rebuild_byte_identical(project: Project, pg_url: str) -> None:
    project.configure(digest={"recipients": "subscribers"})
    env = {"PUBLISHER_NOW": NOW.isoformat(), "PUBLISHER_UNSUBSCRIBE_SECRET": SECRET}
    added = project.cli("subscribers", "add", "a@example.org", "b@example.org", env=env)
    assert added.exit_code == 0, added.stderr
    for day, tags in enumerate((["harbour"], ["storm", "harbour"], ["council"]), start=1):
        when = (NOW + timedelta(days=day)).isoformat()
        project.add_article(f"day-{day}.md", markdown_article(f"News of day {day}", when[:10], tags))
        done = project.cli("run", env=env | {"PUBLISHER_NOW": when})
        assert done.exit_code == 0, done.stderr
    sqlite_url = project.config().store_url

    copied = project.cli("db", "copy", "--to", pg_url, env=env)
    assert copied.exit_code == 0, copied.stderr
    assert copied.stdout.splitlines()[-1].startswith("db copy: ")

    for table in metadata.sorted_tables:
        order = ", ".join(column.name for column in table.primary_key.columns) or "1"
        assert _table(sqlite_url, table.name, order) == _table(pg_url, table.name, order), table.name
    assert _table(pg_url, "batches", "id"), "the store had no journal to copy"
    again = project.cli("db", "copy", "--to", pg_url, env=env)
    assert again.exit_code == 1
    assert again.stderr.splitlines() == [
        f"publisher: error: db copy: {pg_url} holds a store already; copy into an empty database"
    ]

    later = env | {"PUBLISHER_NOW": (NOW + timedelta(days=5)).isoformat()}
    for name, url in (("from-sqlite", sqlite_url), ("from-postgresql", pg_url)):
        project.configure(store={"url": url}, feed={"dir": name})
        built = project.cli("feed", env=later)
        assert built.exit_code == 0, built.stderr
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


@pytest.mark.parametrize("provider", ["webhook", "mailgun"])
def test_a_ten_thousand_reader_send_spreads_over_the_daemons_and_survives_a_killed_one(
    cluster: Project, pg_url: str, server: FaultServer, provider: str
) -> None:
    """webhook dedupes on the batch key: the interrupted batch goes again and reaches its readers
    once. Mailgun does not: the killed daemon's in-flight batches are held in doubt, never resent,
    and nothing else is."""
    readers = import_readers(cluster, READERS)
    mailer = {"provider": provider, "batch_size": BATCH}
    if provider == "mailgun":
        mailer |= {"domain": "mg.example.org", "url": server.url}
    cluster.configure(digest={"schedule": "* * * * * */3", "recipients": "subscribers"}, mailer=mailer)
    held = pause("accepted")  # the endpoint takes this request and never answers: its sender is killed
    server.script({n: slow(0.1) for n in range(1, 2 * BATCHES)} | {KILLED_AT: held})

    with daemons(cluster, 3, env=ENV) as running:
        add_article(cluster, "big-news.md", "---\ntitle: Big news for every reader\n---\nRead it once.\n")
        assert held.reached.wait(TIMEOUT), "the batch to interrupt was never sent"
        [key] = [seen.batch for seen in server.requests if seen.number == KILLED_AT]
        [(worker_id,)] = rows(
            pg_url, f"SELECT worker_id FROM procrastinate_jobs WHERE status = 'doing' AND lock = '{key}'"
        )
        [victim] = [m for m in running.members if m.worker_id == worker_id]
        victim.process.kill()
        victim.process.wait(TIMEOUT)
        # Its jobs stay 'doing' under its id until the stall timeout puts them back in the queue.
        in_flight = {
            lock
            for (lock,) in rows(
                pg_url,
                f"SELECT lock FROM procrastinate_jobs WHERE task_name = 'batch' AND status = 'doing' "
                f"AND worker_id = {worker_id}",
            )
        }
        held.release.set()
        done = running.wait_line(lambda line: "batches accepted" in line, TIMEOUT)
        assert done, running.logs()
        assert key in in_flight, in_flight

    # Which daemon did which batch: each one's own log says so, a line per batch.
    logged = {m.worker_id: _batches_logged(m) for m in running.members}
    assert len([w for w, done_here in logged.items() if done_here]) >= 2, logged  # spread over the daemons
    assert all(total == BATCHES for done_here in logged.values() for _, total, _ in done_here)
    finished = Counter(number for done_here in logged.values() for number, _, _ in done_here)
    assert max(finished.values()) == 1, finished  # no batch finished twice, whichever daemon ran it
    requested = Counter(seen.batch for seen in server.requests)
    assert len(requested) == BATCHES
    states = dict(rows(pg_url, "SELECT key, state FROM batches"))
    assert len(states) == BATCHES
    if provider == "webhook":
        # Every batch's line, but for one the killed daemon finished in the journal and died
        # before logging (its retry finds it finished and says nothing).
        killed_with = {number for key, number in rows(pg_url, "SELECT key, number FROM batches") if key in in_flight}
        assert set(range(1, BATCHES + 1)) - set(finished) <= killed_with, (finished, killed_with)
        assert sorted(server.recipients()) == readers  # every reader once, the interrupted batch included
        # Sent again with the same key after the stall timeout, and deduplicated: the killed
        # daemon's in-flight batches, no other.
        again = {batch for batch, count in requested.items() if count > 1}
        assert key in again and again <= in_flight, (requested, in_flight)
        assert max(requested.values()) == 2
        assert set(states.values()) == {"accepted"}
        assert rows(pg_url, "SELECT state FROM digests") == [("sent",)]
    else:
        assert max(requested.values()) == 1  # nothing sent twice: a batch that may have gone is not resent
        in_doubt = {batch for batch, state in states.items() if state == "in_doubt"}
        assert key in in_doubt and in_doubt <= in_flight, (states, in_flight)  # the killed daemon's only
        assert {state for batch, state in states.items() if batch not in in_doubt} == {"accepted"}
        assert rows(pg_url, "SELECT state FROM digests") == [("incomplete",)]
        received = Counter(server.recipients())
        assert max(received.values()) == 1  # nobody got it twice
        doubtful = {
            email
            for (email,) in rows(
                pg_url,
                "SELECT r.email FROM batch_recipients r JOIN batches b ON b.id = r.batch_id WHERE b.state = 'in_doubt'",
            )
        }
        assert set(readers) - set(received) <= doubtful  # whoever missed it is in a batch held in doubt
        assert set(received) <= set(readers)


BATCH_LINE = re.compile(r"digest \S+: batch (\d+)/(\d+) (\w+):")


def _batches_logged(member: Member) -> list[tuple[int, int, str]]:
    """(number, of how many, state) of each batch the daemon finished, from its log."""
    return [(int(m[1]), int(m[2]), m[3]) for line in list(member.log) if (m := BATCH_LINE.search(line)) is not None]


def import_readers(project: Project, count: int) -> list[str]:
    """``count`` local subscribers in one ``publisher subscribers import`` of a CSV; sorted."""
    addresses = [f"reader{n:05d}@example.org" for n in range(count)]
    path = project.root / "readers.csv"
    path.write_text("email\n" + "".join(f"{a}\n" for a in addresses), encoding="utf-8")
    imported = project.cli("subscribers", "import", str(path), env=ENV)
    assert imported.exit_code == 0, imported.output
    assert f"{count} added" in imported.stdout, imported.stdout
    return addresses


def test_db_upgrade_sets_up_the_cluster_tables_once(project: Project, pg_url: str) -> None:
    project.configure(store={"url": pg_url})

    first = project.cli("db", "upgrade")
    second = project.cli("db", "upgrade")

    assert first.exit_code == second.exit_code == 0
    assert first.stdout.splitlines()[1].startswith("cluster jobs (procrastinate): procrastinate schema ")
    assert second.stdout.splitlines()[1] == "cluster jobs (procrastinate): up to date"
    assert rows(pg_url, "SELECT count(*) FROM procrastinate_jobs") == [(0,)]
    status = project.cli("status")
    assert "cluster: 0 daemons alive; jobs: 0 queued, 0 running, 0 stalled, 0 failed" in status.stdout.splitlines()


def test_a_slot_run_again_after_its_daemon_died_sends_no_second_digest(cluster: Project, pg_url: str) -> None:
    """The slot's job retried (its daemon died after creating the digest): the late news waits."""
    from publisher.cluster import app as app_module
    from publisher.cluster import tasks
    from publisher.states import DigestState
    from publisher.store import Store
    from publisher.store import cluster as sql

    config = cluster.config()
    store = Store.open(pg_url)
    app = app_module.build(pg_url, connections=2)
    try:
        sql.engine_schema(store)
        tasks.register(app, tasks.Context(config.path, store, app, config.stall_seconds))
        app.open()
        add_article(cluster, "first.md", "---\ntitle: First news\n---\nIn the slot's digest.\n")
        assert app.tasks[tasks.DIGEST](timestamp=1000) == "queued"
        [digest] = store.recent_digests(5)
        store.finish_digest(digest.id, DigestState.SENT, digest.created_at)  # its batches went out
        add_article(cluster, "late.md", "---\ntitle: Late news\n---\nFor the next slot.\n")

        assert app.tasks[tasks.DIGEST](timestamp=1000) == "refreshed"  # the same slot, retried: no digest
        assert [d.id for d in store.recent_digests(5)] == [digest.id]
        assert app.tasks[tasks.DIGEST](timestamp=1001) == "queued"  # the next slot takes the late news
        assert len(store.recent_digests(5)) == 2
    finally:
        app.close()
        store.close()
