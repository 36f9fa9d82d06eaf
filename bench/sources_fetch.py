"""``python -m bench.sources_fetch [N]``: fetch_sources on a local N-item RSS feed (default 1000).

Three runs against tests/feedserver.py on 127.0.0.1 into a SQLite store: the first fetch (N new
articles), a refetch of the same body from a server without validators (200, nothing changed),
and a refetch answered 304. Not part of ``python -m bench``: a figure for NOTES-sources.md.
"""

from __future__ import annotations

import sys
import tempfile
import time
import tomllib
from datetime import timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path

import tomli_w

from publisher import config as config_module
from publisher.sources import fetch_sources
from publisher.store import Store
from tests.conftest import NOW, REPO
from tests.feedserver import Doc, FeedServer, feed_server


def rss(server: FeedServer, n: int) -> bytes:
    items = "".join(
        f"<item><guid>g{i}</guid><title>Item {i}</title><link>{server.url(f'/p/{i}')}</link>"
        f"<pubDate>{format_datetime(NOW - timedelta(minutes=i))}</pubDate>"
        f"<description>{escape('<p>' + f'Words of item {i}. ' * 40 + '</p>')}</description></item>"
        for i in range(n)
    )
    channel = f"<title>B</title><link>{server.url('/')}</link><description>d</description>{items}"
    return f'<?xml version="1.0"?><rss version="2.0"><channel>{channel}</channel></rss>'.encode()


def main(n: int) -> None:
    with feed_server() as server, tempfile.TemporaryDirectory() as tmp:
        doc = Doc(rss(server, n), etag=False, last_modified=None)
        server.routes["/feed.xml"] = doc
        settings = tomllib.loads((REPO / "publisher.toml").read_text(encoding="utf-8"))
        settings["store"] = {"url": f"sqlite:///{tmp}/p.db"}
        settings["sources"] = [{"name": "b", "url": server.url("/feed.xml"), "interval": "1m", "backlog": "365d"}]
        (Path(tmp) / "articles").mkdir()
        path = Path(tmp) / "publisher.toml"
        path.write_text(tomli_w.dumps(settings), encoding="utf-8")
        config = config_module.load(path)
        store = Store.open(config.store_url)
        print(f"feed: {n} items, {len(doc.body):,} bytes")
        runs = (("first fetch", 1, False), ("refetch, 200, unchanged", 2, False), ("refetch, 304", 4, True))
        for label, hours, validators in runs:
            when = NOW + timedelta(hours=hours)
            if validators:
                doc.etag = True
                fetch_sources(config, store, when - timedelta(minutes=30))  # learn the ETag
            started = time.perf_counter()
            result = fetch_sources(config, store, when)
            took = time.perf_counter() - started
            print(f"{label}: {took:.2f} s ({len(result.new)} new, {len(result.unchanged)} unchanged)")
        store.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
