"""What a digest send to a long local list costs, beside a bare HTTP loop posting the same bodies.

A digest goes to N local subscribers (100,000; quick: 2,000) through Mailgun, in 100 requests
(quick: 40),
to an endpoint in a subprocess: a threaded HTTP server that reads each request, waits (0 ms, or
50 ms for a provider's round trip) and answers 200. Every publisher send is a whole
``dispatch.send_digest`` in a fresh process (:func:`in_child`): the digest rendered, every
reader planned into the journal, each batch claimed, sent and marked. The endpoint keeps the
bodies it was sent; the floor is a bare httpx loop (one client per thread) posting exactly those
bodies, with the same headers, to the same endpoint, in this process.

Figures:

- throughput at 50 ms with ``[mailer] concurrency = 4`` against the bare 4-thread loop;
- publisher's CPU per 1,000 recipients (instant endpoint) against the bare 1-thread loop's
  (absolute target: 20 ms, expressed as a ratio to the floor measured);
- time from the start of the send to the first request (absolute target: 3 s), beside the
  bare 4-thread loop's whole send;
- concurrency 4 against concurrency 1, both at 50 ms (target: 3x faster);
- peak RSS of the send's process (absolute target: 250 MB), beside a process that only opens
  the same store;
- the endpoint itself: the bare 4-thread loop against 100 requests / 4 x 50 ms, so that a
  slow server does not pass for a fast publisher.

    python -m bench.send             # 100,000 readers
    python -m bench.send quick       # 2,000
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
import tomllib
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from bench.common import Figure, Report, in_child, measured

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)
FULL, QUICK = 100_000, 2_000
REQUESTS, QUICK_REQUESTS = 100, 40  # batches: Mailgun's 1,000 readers a request for the full run
DELAY = 0.05  # the provider's round trip
THREADS = 4
SECRET = "bench-secret-0123456789abcdef"
KEY = "key-bench-0123456789"
DOMAIN = "mg.example.org"
CPU_BUDGET_MS = 20.0  # per 1,000 recipients
FIRST_REQUEST_BUDGET = 3.0  # seconds
RSS_BUDGET_MB = 250.0


# -- the endpoint, in its own process -----------------------------------------------------------


@dataclass(frozen=True)
class Captured:
    path: str
    headers: dict[str, str]  # the ones a replay must send: content-type, authorization
    body: bytes
    arrived: float  # time.time() when its headers were read


def _serve(delay: float, pipe: Any) -> None:
    """Run the endpoint until told to stop; answer ``take`` with the requests kept so far."""
    kept: list[Captured] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a provider's API

        def do_POST(self) -> None:
            arrived = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {name: self.headers.get(name, "") for name in ("Content-Type", "Authorization")}
            with lock:
                kept.append(Captured(self.path, headers, body, arrived))
            if delay:
                time.sleep(delay)
            answer = b'{"id": "<bench@mg.example.org>", "message": "Queued. Thank you."}'
            # One write: a header write then a body write would meet Nagle and delayed ACKs.
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(answer), answer)
            )

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer.request_queue_size = 64
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pipe.send(server.server_port)
    while (command := pipe.recv()) != "stop":
        assert command == "take"
        with lock:
            taken, kept[:] = list(kept), []
        pipe.send(taken)
    server.shutdown()


class Endpoint:
    def __init__(self, delay: float) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, theirs = context.Pipe()
        self.process = context.Process(target=_serve, args=(delay, theirs), daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{self.pipe.recv()}"

    def take(self) -> list[Captured]:
        """The requests received since the last take, in order of arrival."""
        self.pipe.send("take")
        taken: list[Captured] = self.pipe.recv()
        return sorted(taken, key=lambda c: c.arrived)

    def close(self) -> None:
        self.pipe.send("stop")
        self.process.join(10)


# -- the project --------------------------------------------------------------------------------


def _article(n: int) -> str:
    # Half the characters of the text need escaping in a urlencoded form (accents, &, <, quotes).
    line = "Le conseil a voté « la réfection » du pont & des quais: coût < 2 M€, délai > 6 mois. "
    return f"Article {n}: the harbour & the bridge\n\n" + "\n\n".join(line * 6 for _ in range(8)) + "\n"


def make_project(root: Path, readers: int) -> None:
    """A project with five articles and ``readers`` active local subscribers, ready to send."""
    from publisher import config as config_module
    from publisher import subscribers
    from publisher.ingest import ingest
    from publisher.store import Store

    articles = root / "articles"
    articles.mkdir(parents=True)
    for n in range(5):
        (articles / f"story-{n}.txt").write_text(_article(n), encoding="utf-8")
    _configure(root, "http://127.0.0.1:9", 1, 1000)
    config = config_module.load(root / "publisher.toml")
    with closing(Store.open(config.store_url)) as store:
        ingest(store, [articles], articles_dir=articles, tz=config.site.timezone, now=NOW)
        for start in range(0, readers, 10_000):
            chunk = [(f"reader{n:06d}@example.net", None) for n in range(start, min(readers, start + 10_000))]
            subscribers.add(store, chunk, NOW, resubscribe=False)


def _configure(root: Path, url: str, concurrency: int, batch_size: int) -> None:
    settings = tomllib.loads((REPO / "publisher.toml").read_text())
    settings["digest"]["recipients"] = "subscribers"
    settings["mailer"] = {
        "provider": "mailgun",
        "url": url,
        "domain": DOMAIN,
        "retries": 0,
        "batch_size": batch_size,
        "concurrency": concurrency,
    }
    (root / "publisher.toml").write_text(tomli_w.dumps(settings))


def _send(root: str, url: str, concurrency: int, batch_size: int) -> dict[str, float]:
    """One whole send, in a fresh process: wall and CPU seconds of ``send_digest``, its start."""
    import resource

    from publisher import config as config_module
    from publisher import dispatch
    from publisher.delivery import build_mailer
    from publisher.store import Store

    os.environ["PUBLISHER_UNSUBSCRIBE_SECRET"] = SECRET
    os.environ["PUBLISHER_MAILER_KEY"] = KEY
    _configure(Path(root), url, concurrency, batch_size)
    config = config_module.load(Path(root) / "publisher.toml")
    with closing(Store.open(config.store_url)) as store:
        mailer = build_mailer(config)
        before = resource.getrusage(resource.RUSAGE_SELF)
        started, wall = time.time(), time.perf_counter()
        result = dispatch.send_digest(config, store, mailer, NOW)
        wall = time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_SELF)
    if result.state != "sent":
        raise RuntimeError(f"the send did not go through: {result.message}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"started": started, "wall": wall, "cpu": cpu, "peak_mb": _peak_mb()}


def _open_only(root: str) -> dict[str, float]:
    """The floor of memory: a process that imports publisher and opens the same store."""
    from publisher import config as config_module
    from publisher import dispatch, subscribers  # noqa: F401  (what a send imports)
    from publisher.store import Store

    config = config_module.load(Path(root) / "publisher.toml")
    with closing(Store.open(config.store_url)) as store:
        subscribers.active_count(store)
    return {"peak_mb": _peak_mb()}


def _peak_mb() -> float:
    """This process's peak RSS. Linux keeps ru_maxrss across exec, so a spawned child reports
    its parent's peak if that was higher; VmHWM starts afresh with the new program."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return -1.0  # not Linux: the caller uses in_child's figure
    return next(int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:"))


# -- the floor: a bare loop ---------------------------------------------------------------------


def bare_loop(url: str, bodies: list[Captured], threads: int) -> tuple[float, float]:
    """Post ``bodies`` as they were captured from ``threads`` threads: (wall, CPU) seconds."""
    todo: queue.SimpleQueue[Captured] = queue.SimpleQueue()
    for body in bodies:
        todo.put(body)

    def worker() -> None:
        with httpx.Client(timeout=30) as client:
            while True:
                try:
                    item = todo.get_nowait()
                except queue.Empty:
                    return
                client.post(url + item.path, content=item.body, headers=item.headers).raise_for_status()

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    with measured() as cost:
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
    return cost.wall, cost.cpu


# -- the figures --------------------------------------------------------------------------------


def _fresh(template: Path, folder: Path, name: str) -> Path:
    copy = folder / name
    shutil.copytree(template, copy)
    return copy


def _publisher(template: Path, folder: Path, name: str, url: str, concurrency: int, batch: int) -> dict[str, float]:
    """A whole send from a fresh copy of the project, in a fresh process."""
    sent, peak_mb, _ = in_child(_send, str(_fresh(template, folder, name)), url, concurrency, batch)
    if sent["peak_mb"] < 0:
        sent["peak_mb"] = peak_mb
    return sent


def run(quick: bool) -> Report:
    readers, requests = (QUICK, QUICK_REQUESTS) if quick else (FULL, REQUESTS)
    batch = readers // requests
    repeats = 1 if quick else 3  # the machine is shared: the best of a few runs, for both sides
    with tempfile.TemporaryDirectory(prefix="bench-send-") as tmp:
        folder = Path(tmp)
        template = folder / "template"
        in_child(make_project, template, readers)  # in a child: this process stays small
        instant, slow = Endpoint(0.0), Endpoint(DELAY)
        try:
            # Instant endpoint, one thread: publisher's own CPU.
            sent = _publisher(template, folder, "instant", instant.url, 1, batch)
            bodies = instant.take()
            _check(bodies, readers, requests)
            _, bare_cpu = bare_loop(instant.url, bodies, 1)
            instant.take()
            cpu_ms, bare_ms = sent["cpu"] * 1000 / (readers / 1000), bare_cpu * 1000 / (readers / 1000)

            # 50 ms endpoint, four threads: throughput, first request, memory; each run's own
            # bodies replayed right after it.
            fast: dict[str, float] = {}
            bare_wall = first = float("inf")
            for n in range(repeats):
                sent = _publisher(template, folder, f"slow-{n}", slow.url, THREADS, batch)
                bodies = slow.take()
                _check(bodies, readers, requests)
                first = min(first, bodies[0].arrived - sent["started"])
                fast = sent if not fast or sent["wall"] < fast["wall"] else fast
                bare_wall = min(bare_wall, bare_loop(slow.url, bodies, THREADS)[0])
                slow.take()

            # 50 ms endpoint, one thread: what concurrency gains.
            one = _publisher(template, folder, "slow-one", slow.url, 1, batch)
            slow.take()
            floor, floor_mb, _ = in_child(_open_only, str(_fresh(template, folder, "open")))
            floor_mb = floor["peak_mb"] if floor["peak_mb"] > 0 else floor_mb
        finally:
            instant.close()
            slow.close()
    peak_mb = fast["peak_mb"]
    ideal = len(bodies) / THREADS * DELAY
    where = f"{readers:,} readers in {len(bodies)} Mailgun requests"
    return Report(
        figures=[
            Figure(
                f"send to {where}, 50 ms endpoint, concurrency {THREADS}: throughput",
                readers / fast["wall"],
                readers / bare_wall,
                "recipients/s",
                target=0.8,
                higher_is_better=True,
                floor_name=f"bare {THREADS}-thread httpx loop posting the same bodies",
                note=f"publisher {fast['wall']:.2f} s (rendering, planning, journal included), bare {bare_wall:.2f} s",
            ),
            Figure(
                f"send to {where}, instant endpoint: CPU per 1,000 recipients",
                cpu_ms,
                bare_ms,
                "ms CPU",
                target=CPU_BUDGET_MS / bare_ms,
                floor_name="bare 1-thread httpx loop posting the same bodies",
                note=f"absolute target {CPU_BUDGET_MS:g} ms per 1,000 (the ratio target is that over the floor)",
            ),
            Figure(
                f"send to {where}: first request after the start",
                first,
                bare_wall,
                "s wall",
                target=FIRST_REQUEST_BUDGET / bare_wall,
                floor_name=f"the bare {THREADS}-thread loop's whole send at 50 ms",
                note=f"absolute target {FIRST_REQUEST_BUDGET:g} s (the ratio target is that over the floor)",
            ),
            Figure(
                f"send to {where}, 50 ms endpoint: concurrency {THREADS} against 1",
                fast["wall"],
                one["wall"],
                "s wall",
                target=1 / 3,
                floor_name="the same send with concurrency 1",
            ),
            Figure(
                f"send to {where}: peak RSS",
                peak_mb,
                floor_mb,
                "MB",
                target=RSS_BUDGET_MB / floor_mb,
                floor_name="a process that imports publisher and opens the same store",
                note=f"absolute target < {RSS_BUDGET_MB:g} MB (the ratio target is that over the floor)",
            ),
            Figure(
                f"the endpoint: {len(bodies)} requests from {THREADS} threads at {DELAY * 1000:g} ms",
                bare_wall,
                ideal,
                "s wall",
                target=1.25,
                floor_name=f"{len(bodies)} / {THREADS} x {DELAY * 1000:g} ms, a server that costs nothing",
                note="checks that the server is not what limits the loop",
            ),
        ]
    )


def _check(bodies: list[Captured], readers: int, requests: int) -> None:
    """The endpoint got every reader, in requests of the expected form."""
    if len(bodies) != requests or not all(b.headers["Content-Type"].startswith("multipart/form-data") for b in bodies):
        raise RuntimeError(f"bench: expected {requests} multipart requests, got {len(bodies)}")
    seen = sum(b.body.count(b'name="to"') for b in bodies)
    if seen != readers:
        raise RuntimeError(f"bench: {seen} recipients reached the endpoint, not {readers}")


if __name__ == "__main__":
    report = run(quick="quick" in sys.argv[1:])
    for figure in report.figures:
        print(
            f"{figure.name}: {figure.value:.3g} {figure.unit} vs {figure.floor:.3g} "
            f"= {figure.ratio:.2f} (target {figure.target:.2f}, met {figure.met}) {figure.note}"
        )
