"""Overlapping runs on one store are normal operation (cron overlap, cron beside the daemon).

Real ``publisher`` processes started together against one store, SQLite and PostgreSQL. Every
run ends well (exit 0, no traceback); every article is stored once with a slug of its own, is
in exactly one digest, and the feeds read back and equal a rebuild from scratch.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from publisher import clock
from publisher import store as store_module
from publisher.schema import AdvisoryLock, articles, digest_articles, digests, sources
from tests.conftest import NOW, Project
from tests.endpoint import Endpoint
from tests.feedcheck import is_issue_archive, read_back

RUNS = 4  # processes at once: more than the 2 cores, so they interleave
TITLES = ["Storm warning", "Harbour reopens", "Storm warning", "Council vote"]  # the same title in many files


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, project: Project) -> Project:
    if request.param == "postgresql":
        project.configure(store={"url": request.getfixturevalue("pg_url")})
    (project.articles / "000_b518ed41a9e9a454.txt").unlink()  # dated long ago: out of the digest's backlog
    return project


def _add(project: Project, first: int, count: int) -> None:
    """Articles ``first``..: titles (so derived slugs) repeat, and some set the same slug."""
    for n in range(first, first + count):
        slug = "slug: shared\n" if n % 5 == 0 else ""
        day = 20 + n % 4
        text = f"---\ntitle: {TITLES[n % len(TITLES)]}\ndate: 2026-11-{day}T10:{n % 60:02d}:00Z\n{slug}---\nText {n}.\n"
        project.add_article(f"batch{first}/a{n:03d}.md", text)


def _start(project: Project, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, **{clock.ENV: NOW.isoformat()})
    command = [sys.executable, "-m", "publisher", "--config", str(project.config_path), *args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=project.root
    )


def _all_at_once(project: Project, commands: list[list[str]]) -> list[tuple[int, str, str]]:
    processes = [_start(project, *command) for command in commands]
    return [(process.wait(120), *process.communicate()) for process in processes]


def _assert_clean(runs: list[tuple[int, str, str]]) -> None:
    for code, stdout, stderr in runs:
        assert "Traceback" not in stderr, stderr
        assert code == 0, f"exit {code}: {stdout}{stderr}"


def _stored_once(project: Project, files: int) -> None:
    store = project.open_store()
    try:
        with store.transaction() as conn:
            keys = conn.execute(select(articles.c.key)).scalars().all()
            slugs = conn.execute(select(articles.c.slug)).scalars().all()
            versions = conn.execute(
                select(sources.c.article_id, sources.c.content_hash, func.count()).group_by(
                    sources.c.article_id, sources.c.content_hash
                )
            ).all()
    finally:
        store.close()
    assert len(keys) == files and len(set(keys)) == files
    assert len(set(slugs)) == files, [slug for slug, n in Counter(slugs).items() if n > 1]
    assert all(count == 1 for *_, count in versions)  # no version of a file stored twice


def _feed_files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not is_issue_archive(path.relative_to(folder).as_posix())  # not the feed writer's
    }


def test_overlapping_runs_store_each_article_once_and_mail_it_once(backend: Project, endpoint: Endpoint) -> None:
    project, files = backend, 0
    project.configure(feed={"hubs": [f"{endpoint.url}/hub"]})  # each run records the pings still to send
    for first, count in ((0, 60), (60, 50), (110, 40)):  # the first round creates the store, at once
        _add(project, first, count)
        files += count
        _assert_clean(_all_at_once(project, [["run"]] * RUNS))
        _stored_once(project, files)

    # Each article in exactly one digest, and each digest mailed once (the outbox's .eml files).
    _assert_clean(_all_at_once(project, [["run"]]))
    store = project.open_store()
    try:
        with store.transaction() as conn:
            in_digests = Counter(conn.execute(select(digest_articles.c.article_id)).scalars())
            stored = conn.execute(select(articles.c.id)).scalars().all()
            digest_states = dict(conn.execute(select(digests.c.id, digests.c.state)).all())
    finally:
        store.close()
    assert sorted(in_digests) == sorted(stored) and set(in_digests.values()) == {1}
    assert set(digest_states.values()) == {"sent"}
    mails = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in project.outbox_files()]
    assert len(mails) == len(digest_states)

    # The feeds read back, and are what a rebuild from nothing writes.
    feeds = project.root / "feeds"
    for name in ("atom.xml", "rss.xml"):
        assert len(read_back((feeds / name).read_bytes()).entries) == 50
    assert len(json.loads((feeds / "feed.json").read_bytes())["items"]) == 50
    project.configure(feed={"dir": "fresh"})
    _assert_clean(_all_at_once(project, [["feed"]]))
    assert _feed_files(feeds) == _feed_files(project.root / "fresh")


def test_files_with_one_title_ingested_at_once_each_get_a_slug(backend: Project) -> None:
    """Different files wanting the same slug at the same moment: one process each."""
    project = backend
    project.open_store().close()  # the store exists
    for round_ in range(2):
        content = "---\ntitle: Same title\n---\nText {}.\n"  # every round's slugs collide with the last's too
        paths = [project.add_article(f"clash{round_}/f{n}.md", content.format(n)) for n in range(6)]
        _assert_clean(_all_at_once(project, [["ingest", str(path)] for path in paths]))
        _stored_once(project, 6 * (round_ + 1))


def test_saves_queued_behind_another_writer_each_get_a_slug(project: Project, pg_url: str) -> None:
    """Six processes wanting one slug, all let go at the same moment: each must choose from what
    the others stored, not from what it read before it waited."""
    project.configure(store={"url": pg_url})
    project.open_store().close()
    paths = [project.add_article(f"f{n}.md", f"---\ntitle: Same title\n---\nText {n}.\n") for n in range(6)]
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    lock = {"key": int(AdvisoryLock.ARTICLE_CHANGES)}
    try:
        with engine.connect() as holder:
            holder.execute(text("SELECT pg_advisory_lock(:key)"), lock)  # another writer, mid-transaction
            processes = [_start(project, "ingest", str(path)) for path in paths]
            waiting = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :key AND NOT granted")
            deadline = time.monotonic() + 60
            while holder.execute(waiting, lock).scalar_one() < len(processes):  # every one queued behind it
                assert time.monotonic() < deadline, "the ingest processes never reached the store"
                time.sleep(0.02)
            holder.execute(text("SELECT pg_advisory_unlock(:key)"), lock)
    finally:
        engine.dispose()
    _assert_clean([(process.wait(120), *process.communicate()) for process in processes])
    _stored_once(project, len(paths))


def test_a_run_that_cannot_get_the_store_says_so_in_one_line(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "BUSY_SECONDS", 1)
    project.open_store().close()
    project.add_article("new.md", "---\ntitle: Waiting\n---\nText.\n")
    holder = sqlite3.connect(project.root / "publisher.db")
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
        result = project.cli("ingest", str(project.articles))
    finally:
        holder.close()
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert "another run holds the store" in line and "publisher.db" in line, line
    assert project.cli("ingest", str(project.articles)).exit_code == 0  # the next one carries on


def test_settings_written_by_runs_at_once_do_not_collide(backend: Project) -> None:
    """A setting every run rewrites (the WebSub pings still to send) was a delete and an insert:
    two runs at once collided on its name."""
    store = backend.open_store()
    failures: list[Exception] = []

    def rewrite(writer: int) -> None:
        try:
            for n in range(100):
                store.put_setting("overlap", f"{writer}-{n}")
        except Exception as exc:
            failures.append(exc)

    threads = [threading.Thread(target=rewrite, args=(writer,)) for writer in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures, failures[0]
        assert store.setting("overlap") in {f"{writer}-99" for writer in range(4)}
    finally:
        store.close()
