"""How much ``[mailer] concurrency`` speeds up a send.

A digest goes to N local subscribers, in batches, through the webhook provider to an HTTP
server in this process that answers 200, after a delay standing in for a provider's round trip
(0 ms: only publisher's own cost, the journal's commits included). Each row is a whole send,
planning included, at concurrency 1 and 4; the ratio is to the concurrency-1 send with the same
delay, measured in the same process. Ratios, not seconds, are what to compare between machines.

    python bench/send.py              # 1000 subscribers in batches of 10, delays 0 and 50 ms
    python bench/send.py 2000 20      # other numbers of subscribers and batch size
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
import tomllib
from contextlib import closing
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import tomli_w

from publisher import config as config_module
from publisher import dispatch, subscribers
from publisher.delivery import build_mailer
from publisher.ingest import ingest
from publisher.store import Store

REPO = Path(__file__).resolve().parent.parent
CONCURRENCY = (1, 4)
DELAYS = (0.0, 0.05)


class Provider(BaseHTTPRequestHandler):
    """Reads the request, waits ``delay`` seconds (the provider at work), answers 200."""

    delay = 0.0
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        time.sleep(self.delay)
        body = json.dumps({"id": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def send_seconds(url: str, readers: int, batch_size: int, concurrency: int) -> float:
    """Seconds to send one digest to ``readers`` subscribers, in a fresh project."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        settings = tomllib.loads((REPO / "publisher.toml").read_text())
        settings["digest"]["recipients"] = "subscribers"
        settings["mailer"] = {
            "provider": "webhook",
            "url": url,
            "retries": 0,
            "batch_size": batch_size,
            "concurrency": concurrency,
        }
        (root / "publisher.toml").write_text(tomli_w.dumps(settings))
        config = config_module.load(root / "publisher.toml")
        with closing(Store.open(config.store_url)) as store:
            now = datetime.now(UTC)
            ingest(store, [REPO / "articles"], articles_dir=REPO / "articles", tz=config.site.timezone, now=now)
            readers_list = [(f"reader{n:06d}@example.net", None) for n in range(readers)]
            subscribers.add(store, readers_list, now, resubscribe=False)
            mailer = build_mailer(config)
            started = time.perf_counter()
            result = dispatch.send_digest(config, store, mailer, now)
            took = time.perf_counter() - started
        if result.state != "sent":
            sys.exit(f"bench: the send did not go through: {result.message}")
        return took


def main(readers: int, batch_size: int) -> None:
    os.environ.setdefault("PUBLISHER_UNSUBSCRIBE_SECRET", "bench-secret-0123456789abcdef")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    batches = -(-readers // batch_size)
    print(f"{readers} subscribers in {batches} batches of {batch_size}")
    print(f"{'delay':>7} {'concurrency':>12} {'send / baseline':>16}")
    try:
        for delay in DELAYS:
            Provider.delay = delay
            baseline = send_seconds(url, readers, batch_size, CONCURRENCY[0])
            for concurrency in CONCURRENCY:
                seconds = send_seconds(url, readers, batch_size, concurrency) if concurrency > 1 else baseline
                print(f"{delay * 1000:>5.0f}ms {concurrency:>12} {seconds / baseline:>15.2f}x")
            print(f"baseline at {delay * 1000:.0f} ms: concurrency {CONCURRENCY[0]} in this process, {baseline:.2f} s")
    finally:
        server.shutdown()


if __name__ == "__main__":
    args = [int(arg) for arg in sys.argv[1:]]
    main(*(args + [1000, 10][len(args) :]))
