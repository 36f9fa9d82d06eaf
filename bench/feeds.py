"""How the cost of rebuilding the feeds grows with the store.

Every run renders every document (main feeds, tag feeds, monthly archives) and writes only
the changed ones. This measures a rebuild over stores of growing size against a baseline
measured in the same process: the same rebuild over the smallest store. Ratios, not seconds,
are what to compare between machines.

    python bench/feeds.py            # sizes 100, 1000, 5000
    python bench/feeds.py 200 2000   # other sizes
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from publisher import config as config_module
from publisher.feed import write_feeds
from publisher.ingest.clean import clean_body
from publisher.store import NewArticle, Store

REPO = Path(__file__).resolve().parent.parent
START = datetime(2024, 1, 1, tzinfo=UTC)


def fill(store: Store, count: int) -> None:
    """``count`` articles, one every 8 hours (so about 90 a month), five tags in turn."""
    body = clean_body("".join(f"<p>Paragraph {i} of a typical article, long enough to matter.</p>" for i in range(8)))
    for n in range(count):
        when = START + timedelta(hours=8 * n)
        raw = f"article {n}".encode()
        store.save_article(
            NewArticle(
                key=f"a{n:05}",
                slug=f"article-{n}",
                title=f"Article {n}",
                summary=f"Summary of article {n}.",
                body_html=body.html,
                body_text=body.text,
                author=None,
                tags=[f"tag{n % 5}"],
                format="txt",
                source_path=f"a{n:05}.txt",
                content_hash=hashlib.sha256(raw).hexdigest(),
                raw=raw,
                published=when,
            ),
            when,
        )


def rebuild_seconds(count: int, repeats: int = 3) -> tuple[float, int]:
    """Best time of a rebuild with nothing changed, and how many documents it renders."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "publisher.toml").write_text((REPO / "publisher.toml").read_text())
        config = config_module.load(root / "publisher.toml")
        store = Store.open(config.store_url)
        fill(store, count)
        documents = write_feeds(config, store).documents  # the first build writes everything
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            write_feeds(config, store)
            best = min(best, time.perf_counter() - started)
        store.close()
        return best, documents


def main(sizes: list[int]) -> None:
    baseline, _ = rebuild_seconds(sizes[0])
    print(f"{'articles':>9} {'documents':>10} {'rebuild / baseline':>19} {'per article':>12}")
    for size in sizes:
        seconds, documents = rebuild_seconds(size)
        ratio = seconds / baseline
        print(f"{size:>9} {documents:>10} {ratio:>18.1f}x {ratio / (size / sizes[0]):>11.2f}x")
    print(f"baseline: a rebuild over {sizes[0]} articles in this process, {baseline * 1000:.0f} ms")


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [100, 1000, 5000])
