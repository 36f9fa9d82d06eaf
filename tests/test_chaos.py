"""Chaos: ``publisher run``, several at once, again and again, while faults strike at random.

Each iteration moves the program's clock a day on, adds articles (now and then a hostile or
oversized one), and starts RUNS processes against one store (SQLite and PostgreSQL) and a
webhook endpoint on loopback (tests/faults.py), with a random set of faults: one of the
processes SIGKILLed at a random moment, the endpoint answering 5xx, resetting the connection
or taking a request and dropping it, the feeds folder full (ENOSPC) or read-only (EROFS,
injected at the os calls by tests/chaos/sitecustomize.py). After every iteration:

- no traceback on any stderr, every exit 0 or 1, and every stderr line is one line;
- every feed document is valid (tests/feedcheck.py) and nothing hostile reached it;
- no temp file of a dead writer outlives the next run (their age is moved back a minute, as if
  that much time had passed: orphans are taken only once untouched for ORPHAN_SECONDS);
- the store is intact (SQLite's integrity and foreign key checks), every article is in at most
  one digest, every "sent" digest had all its batches accepted, and no reader was mailed one
  article twice (what the endpoint took, mapped back to digests by the batch key).

At the end the faults stop and runs go on until nothing is left to send: then every article is
in exactly one sent digest and every reader got it exactly once. The seed is printed;
PUBLISHER_CHAOS_SEED replays it. ``CI`` set: fewer iterations, every kind of fault.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from publisher import clock, files
from publisher.schema import batches, digest_articles, digests
from tests.conftest import NOW, Project
from tests.faults import FaultServer, accept_then_drop, reset, status
from tests.feedcheck import check_feed_folder

ITERATIONS = 6 if os.environ.get("CI") else 14
RUNS = 3
READERS = ["ana@example.org", "bo@example.net", "chen@example.com"]
FAULTS = ("kill", "endpoint", "enospc", "erofs", "hostile")
INJECTOR = Path(__file__).parent / "chaos"
TIMEOUT = 120.0


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, project: Project) -> Project:
    if request.param == "postgresql":
        project.configure(store={"url": request.getfixturevalue("pg_url")})
    (project.articles / "000_b518ed41a9e9a454.txt").unlink()  # dated long ago: out of the backlog
    return project


def _hostile(project: Project, n: int, rng: random.Random) -> str:
    """A file that must never reach a reader; returns a marker that must not appear in any feed."""
    kind = rng.choice(["oversized", "binary", "front matter", "symlink", "script"])
    if kind == "oversized":
        project.add_article(f"bad{n}.txt", f"Huge {n}\n\n" + "marker-oversized " * 20_000)
        return "marker-oversized"
    if kind == "binary":
        project.add_article(f"bad{n}.txt", os.urandom(4000).replace(b"\n", b"") + b"\x00marker-binary")
        return "marker-binary"
    if kind == "front matter":
        project.add_article(f"bad{n}.md", "---\ntitle: [unclosed\n---\nmarker-frontmatter\n")
        return "marker-frontmatter"
    if kind == "symlink":
        outside = project.root / "secret.txt"
        outside.write_text("Secret\n\nmarker-symlink-secret\n", encoding="utf-8")
        (project.articles / f"bad{n}.txt").symlink_to(outside)
        return "marker-symlink-secret"
    project.add_article(f"xss{n}.html", "<title>Script</title><p>Text.</p><script>marker_script()</script>")
    return "marker_script"


def _articles(project: Project, iteration: int, when: str, rng: random.Random) -> None:
    for k in range(rng.randint(1, 4)):
        body = " ".join(rng.choice(["storm", "harbour", "vote", "tide", "road"]) for _ in range(30))
        text = f"---\ntitle: Report {iteration}-{k}\ndate: {when}\ntags: [t{k % 3}]\n---\n{body}.\n"
        project.add_article(f"i{iteration:03d}/a{k}.md", text)


def _start(project: Project, when: str, fault: str) -> subprocess.Popen[str]:
    env = dict(os.environ, **{clock.ENV: when})
    env["PYTHONPATH"] = os.pathsep.join([str(INJECTOR), env.get("PYTHONPATH", "")])
    if fault:
        env["PUBLISHER_CHAOS_FAULT"] = fault
    command = [sys.executable, "-m", "publisher", "--config", str(project.config_path), "run"]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=project.root
    )


def _runs(project: Project, when: str, *, fault: str = "", kill: float | None = None) -> list[tuple[int, str]]:
    """RUNS processes at once; with ``kill``, the first is SIGKILLed that many seconds in."""
    processes = [_start(project, when, fault) for _ in range(RUNS)]
    if kill is not None:
        try:
            processes[0].wait(kill)
        except subprocess.TimeoutExpired:
            processes[0].send_signal(signal.SIGKILL)
    ended = []
    for process in processes:
        _, stderr = process.communicate(timeout=TIMEOUT)
        ended.append((process.returncode, stderr))
    return ended


def _assert_clean(ended: list[tuple[int, str]], killed: bool) -> None:
    for index, (code, stderr) in enumerate(ended):
        assert "Traceback" not in stderr, stderr
        if killed and index == 0 and code == -signal.SIGKILL:
            continue
        assert code in (0, 1), f"exit {code}: {stderr}"
        for line in stderr.splitlines():
            assert line.strip() and len(line) < 400, f"not one line per finding: {stderr!r}"


def _age_temp_files(folder: Path) -> list[Path]:
    """Every temp file in the feeds, its times moved back past ORPHAN_SECONDS."""
    left = [path for path in folder.rglob(".*.tmp") if path.is_file()]
    past = time.time() - files.ORPHAN_SECONDS - 5
    for path in left:
        os.utime(path, (past, past))
    return left


def _check_store(project: Project, server: FaultServer) -> tuple[int, int]:
    """The store's invariants; returns (articles in sent digests, digests not yet sent)."""
    url = project.config().store_url
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    store = project.open_store()
    try:
        with store.transaction() as conn:
            in_digest = dict(conn.execute(select(digest_articles.c.article_id, digest_articles.c.digest_id)).all())
            states = dict(conn.execute(select(digests.c.id, digests.c.state)).all())
            batch_rows = conn.execute(select(batches.c.key, batches.c.digest_id, batches.c.state)).all()
    finally:
        store.close()
    by_key = {key: digest for key, digest, _ in batch_rows}
    for digest, state in states.items():
        if state == "sent":
            assert {s for _, d, s in batch_rows if d == digest} == {"accepted"}, digest
    # What the endpoint took, per reader and article: never twice.
    per_digest = Counter(in_digest.values())
    taken: Counter[tuple[str, int]] = Counter()
    for accepted in {a.batch: a for a in server.accepted}.values():  # the server dedupes keys itself
        digest = by_key[accepted.batch]
        for reader in accepted.recipients:
            for article, holder in in_digest.items():
                if holder == digest:
                    taken[(reader, article)] += 1
    assert not [pair for pair, times in taken.items() if times > 1]
    assert sum(per_digest.values()) == len(in_digest)
    sent = sum(1 for digest in in_digest.values() if states[digest] == "sent")
    return sent, sum(1 for state in states.values() if state != "sent")


def _check_feeds(project: Project, markers: list[str]) -> None:
    feeds = project.root / "feeds"
    if not (feeds / "atom.xml").exists():
        return  # every run so far met a feeds folder that could not be written
    written = check_feed_folder(feeds)
    for name, data in written.items():
        for marker in markers:
            assert marker.encode() not in data, f"{marker} reached {name}"


def test_runs_under_random_faults_lose_nothing_and_double_nothing(backend: Project, tmp_path: Path) -> None:
    seed = int(os.environ.get("PUBLISHER_CHAOS_SEED") or random.randrange(2**32))
    print(f"\nchaos test: PUBLISHER_CHAOS_SEED={seed}")
    rng = random.Random(seed)
    project, markers, seen = backend, [], Counter[str]()
    landed = orphans = 0
    feeds = project.root / "feeds"
    with FaultServer() as server:
        project.configure(
            articles={"max_bytes": 100_000},
            digest={"to": READERS, "backlog": "30d"},
            mailer={"provider": "webhook", "url": f"{server.url}/hook", "retries": 0, "timeout": 5},
        )
        when = NOW
        for iteration in range(ITERATIONS):
            when += timedelta(days=1)
            # Each kind at least once (in the first iterations), others at random.
            forced = FAULTS[iteration % len(FAULTS)]
            faults = {fault for fault in FAULTS if rng.random() < 0.4} | {forced}
            faults -= {"enospc", "erofs"} - {forced} if {"enospc", "erofs"} <= faults else set()
            seen.update(faults)
            _articles(project, iteration, when.isoformat(), rng)
            if "hostile" in faults:
                markers.append(_hostile(project, iteration, rng))
            if "endpoint" in faults:
                first = server.count + 1
                bad = [status(500), status(503), reset(), accept_then_drop()]
                server.script({first + k: rng.choice(bad) for k in range(rng.randint(1, 4))})
            else:
                server.script({})
            disk = next((f"{fault}:{feeds}" for fault in ("enospc", "erofs") if fault in faults), "")
            kill = rng.uniform(0.05, 1.2) if "kill" in faults else None
            _age_temp_files(feeds)
            ended = _runs(project, when.isoformat(), fault=disk, kill=kill)
            _assert_clean(ended, killed=kill is not None)
            landed += ended[0][0] == -signal.SIGKILL
            if disk:
                assert any("feeds" in stderr for _, stderr in ended), ended
            _check_feeds(project, markers)
            left = [path for path in _age_temp_files(feeds) if not disk]
            _check_store(project, server)
            orphans += len(left)
            if left:  # a dead writer's: the next run, "a minute later", takes it away
                _assert_clean(_runs(project, when.isoformat()), killed=False)
                assert not list(feeds.rglob(".*.tmp")), left

        # The faults stop: runs go on until everything went out, each reader once per article.
        server.script({})
        for _ in range(3):
            when += timedelta(hours=1)
            _age_temp_files(feeds)
            _assert_clean(_runs(project, when.isoformat()), killed=False)
        sent, unsent = _check_store(project, server)
    # The hostile HTML page is an article too, its script taken out (the marker checks that).
    articles = len(list(project.articles.rglob("i*/a*.md"))) + len(list(project.articles.glob("xss*.html")))
    assert (sent, unsent) == (articles, 0)
    readers = Counter(
        reader for accepted in {a.batch: a for a in server.accepted}.values() for reader in accepted.recipients
    )
    assert set(readers) == set(READERS)
    assert not list(feeds.rglob(".*.tmp"))
    _check_feeds(project, markers)
    assert set(seen) == set(FAULTS)
    print(f"chaos test: {ITERATIONS} iterations, faults {dict(seen)}, {landed} kills landed, ", end="")
    print(f"{orphans} temp files of killed writers taken away, {server.count} requests")
