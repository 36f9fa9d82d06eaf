"""A send spread over 1, 2 and 3 cluster daemons on PostgreSQL (publisher.cluster).

The same store each time (readers on the local list, batches of Mailgun's 1,000; quick: 2,000
readers in batches of 50), copied into a fresh PostgreSQL database (``db copy``); the digest is
held while the daemons start, then released: the next slot queues its batches, which the
daemons take. The figure is the throughput (readers a second, from the first request's arrival
at the 50 ms endpoint to the last one's answer) of three daemons beside one; the note gives all
three. Needs PostgreSQL: ``PUBLISHER_TEST_POSTGRES_URL`` (as the tests).

    python -m bench cluster
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from contextlib import closing
from pathlib import Path

import tomli_w
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.common import Figure, Report
from bench.send import DELAY, FULL, KEY, QUICK, SECRET, Captured, Endpoint, _article, _configure

DAEMONS = (1, 2, 3)
BATCH, QUICK_BATCH = 1000, 50


def run(quick: bool) -> Report:
    server = os.environ.get("PUBLISHER_TEST_POSTGRES_URL")
    if not server:
        raise RuntimeError("the cluster benchmark needs PostgreSQL: set PUBLISHER_TEST_POSTGRES_URL")
    readers, batch = (QUICK, QUICK_BATCH) if quick else (FULL, BATCH)
    endpoint = Endpoint(DELAY)
    try:
        with tempfile.TemporaryDirectory() as folder:
            template = Path(folder) / "template"
            _project(template, readers, endpoint.url, batch)
            rates = {n: _send(template, server, endpoint, n, readers // batch) for n in DAEMONS}
    finally:
        endpoint.close()
    where = f"{readers:,} readers, 50 ms endpoint"
    figure = Figure(
        name=f"cluster send of {where}: {DAEMONS[-1]} daemons against 1",
        value=rates[DAEMONS[-1]],
        floor=rates[1],
        unit="readers/s",
        higher_is_better=True,
        target=1.5,
        floor_name="the same send on one daemon",
        note=", ".join(f"{n} daemon{'s' if n > 1 else ''}: {rate:,.0f}/s" for n, rate in rates.items()),
    )
    return Report(figures=[figure])


def _project(root: Path, readers: int, url: str, batch: int) -> None:
    """A SQLite project with five articles (ingested now) and ``readers`` subscribers."""
    from publisher import clock, subscribers
    from publisher import config as config_module
    from publisher.ingest import ingest
    from publisher.store import Store

    articles = root / "articles"
    articles.mkdir(parents=True)
    for n in range(5):
        (articles / f"story-{n}.txt").write_text(_article(n), encoding="utf-8")
    _configure(root, url, 1, batch)
    config = config_module.load(root / "publisher.toml")
    with closing(Store.open(config.store_url)) as store:
        ingest(store, [articles], articles_dir=articles, tz=config.site.timezone, now=clock.now())
        for start in range(0, readers, 10_000):
            chunk = [(f"reader{n:06d}@example.net", None) for n in range(start, min(readers, start + 10_000))]
            subscribers.add(store, chunk, clock.now(), resubscribe=False)


def _send(template: Path, server: str, endpoint: Endpoint, daemons: int, requests: int) -> float:
    """Readers a second of one send by ``daemons`` daemons, on a fresh copy of the template."""
    from publisher import clock, hold
    from publisher.store import Store
    from publisher.store.copy import copy_store

    name = f"bench_cluster_{secrets.token_hex(4)}"
    admin = create_engine(make_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        root = template.parent / f"run-{daemons}"
        root.mkdir()
        (root / "articles").symlink_to(template / "articles")
        settings = tomllib.loads((template / "publisher.toml").read_text())
        settings["store"] = {"url": url}
        settings["digest"]["schedule"] = "* * * * * */2"
        settings["daemon"] = {"refresh_minutes": 60}
        (root / "publisher.toml").write_text(tomli_w.dumps(settings))
        copy_store(f"sqlite:///{template / 'publisher.db'}", url)
        with closing(Store.open(url)) as store:
            hold.hold(store, clock.now())  # no digest until every daemon is up
        endpoint.take()
        processes = _start(root, daemons)
        try:
            with closing(Store.open(url)) as store:
                hold.release(store)
            taken = _all_requests(endpoint, requests)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(120)
        span = taken[-1].arrived - taken[0].arrived + DELAY
        readers = sum(_recipients(c.body) for c in taken)
        return readers / span
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _start(root: Path, count: int) -> list[subprocess.Popen[str]]:
    command = [sys.executable, "-m", "publisher", "--config", str(root / "publisher.toml"), "daemon"]
    env = os.environ | {"PUBLISHER_UNSUBSCRIBE_SECRET": SECRET, "PUBLISHER_MAILER_KEY": KEY}
    processes = [
        subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        for _ in range(count)
    ]
    for process in processes:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("daemon: started"):
            raise RuntimeError(f"a daemon did not start: {line!r}")
    return processes


def _all_requests(endpoint: Endpoint, requests: int, limit: float = 600.0) -> list[Captured]:
    taken: list[Captured] = []
    deadline = time.monotonic() + limit
    while len(taken) < requests:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(taken)} of {requests} requests arrived within {limit:g} s")
        time.sleep(0.2)  # a benchmark's poll, not a test's synchronization
        taken += endpoint.take()
    return sorted(taken, key=lambda c: c.arrived)


def _recipients(body: bytes) -> int:
    return body.count(b'name="to"')  # Mailgun's multipart form: a field per recipient
