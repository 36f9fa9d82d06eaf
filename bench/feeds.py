"""What a feed rebuild costs as the store grows, beside what writing its documents must cost.

Stores of growing size (articles spread evenly over 2000-2025, so every size has the same ~300
archive months, five tags in turn, small bodies) are filled with executemany straight into the
articles table. Each gets a first, full rebuild (in a fresh process, for its peak memory), then:

- a rebuild with nothing changed (the Series, and 1M against 1k);
- a rebuild after one new article, against the floor: the documents that rebuild wrote, built
  from the same entries with plain lxml and written to disk; and against the nothing-changed
  rebuild of the same store.

CPU seconds, best of a few. ``python -c "from bench import feeds; feeds.run(quick=False)"``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import insert

from bench.common import Figure, Report, Series, best_of, in_child, measured
from publisher import config as config_module
from publisher.config import Config
from publisher.feed import MAIN, ids, index, write_feeds
from publisher.feed.model import Entry, entry
from publisher.store import NewArticle, Store
from publisher.store.schema import articles

REPO = Path(__file__).resolve().parent.parent
START = datetime(2000, 1, 1, tzinfo=UTC)
SPAN = datetime(2026, 1, 1, tzinfo=UTC) - START
BODY = '<p>Paragraph one of a short article, with <a href="../other/">a relative link</a>.</p><p>Two.</p>'
ATOM = "http://www.w3.org/2005/Atom"
BUDGET_MB = 250.0  # the issue's: peak RSS of a rebuild of a 1M-article store


def _config(root: Path) -> Config:
    (root / "publisher.toml").write_text((REPO / "publisher.toml").read_text(encoding="utf-8"), encoding="utf-8")
    return config_module.load(root / "publisher.toml")


def fill(store: Store, count: int) -> None:
    """``count`` articles evenly over 2000-2025 (oldest id first), with executemany."""
    step = SPAN / count
    chunk: list[dict[str, Any]] = []
    with store.transaction() as conn:
        for n in range(count):
            when = START + step * n
            chunk.append(
                {
                    "key": f"a{n:07}",
                    "slug": f"article-{n}",
                    "title": f"Article {n}",
                    "summary": f"Summary of article {n}.",
                    "body_html": BODY,
                    "body_text": "Paragraph one. Two.",
                    "author": None,
                    "tags": [f"Tag {n % 5}"],
                    "format": "html",
                    "source_path": f"a{n:07}.html",
                    "content_hash": hashlib.sha256(str(n).encode()).hexdigest(),
                    "published": when,
                    "updated": when,
                    "first_seen": when,
                }
            )
            if len(chunk) == 10_000:
                conn.execute(insert(articles), chunk)
                chunk = []
        if chunk:
            conn.execute(insert(articles), chunk)


def _full_rebuild(folder: str) -> tuple[float, int]:
    """In a fresh process: the first rebuild of the store in ``folder`` (CPU s, documents)."""
    config = config_module.load(Path(folder) / "publisher.toml")
    store = Store.open(config.store_url)
    with measured() as cost:
        result = write_feeds(config, store)
    store.close()
    return cost.cpu, result.documents


def _baseline(folder: str) -> int:
    """In a fresh process: the floor of memory, publisher imported and the store opened."""
    config = config_module.load(Path(folder) / "publisher.toml")
    store = Store.open(config.store_url)
    count = store.article_count()
    store.close()
    return count


def _new_article(store: Store, n: int) -> None:
    when = START + SPAN + timedelta(hours=n)
    raw = f"new article {n}".encode()
    store.save_article(
        NewArticle(
            key=f"new-{n}",
            slug=f"new-{n}",
            title=f"New article {n}",
            summary="A new one.",
            body_html=BODY,
            body_text="Paragraph one. Two.",
            author=None,
            tags=["Tag 0"],
            format="html",
            source_path=f"new-{n}.html",
            content_hash=hashlib.sha256(raw).hexdigest(),
            raw=raw,
            published=when,
        ),
        when,
    )


def _entries_of(config: Config, store: Store, path: str) -> list[Entry]:
    """The entries of a written document, read back the way the rebuild reads them."""
    feed = config.feed
    with store.transaction() as conn:
        if path in MAIN.values():
            chosen = index.newest(conn, feed.max_entries)
        elif path.startswith("tags/"):
            chosen = index.tagged(conn, path.removeprefix("tags/").removesuffix(".xml"), feed.max_entries)
        else:
            month = path.removeprefix("archive/").removesuffix(".xml")
            newest = index.newest(conn, feed.max_entries)
            boundary = (newest[-1].published, newest[-1].id)
            year, number = map(int, month.split("-"))
            start = datetime(year, number, 1, tzinfo=UTC) - timedelta(days=1)
            end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC) + timedelta(days=1)
            chosen = index.older(conn, boundary, since=start, until=end)
    items = [entry(config, article, ids.new_id(config.site, article.key)) for article in chosen]
    return [item for item in items if path in MAIN.values() or path.startswith("tags/") or item.month in path]


def plain_atom(items: list[Entry], target: Path) -> None:
    """The floor: the same entries as an Atom document, with lxml alone, written to disk."""
    feed = etree.fromstring(f'<feed xmlns="{ATOM}"/>'.encode())
    etree.SubElement(feed, f"{{{ATOM}}}title").text = "Feed"
    etree.SubElement(feed, f"{{{ATOM}}}id").text = "https://example.org/feeds/atom.xml"
    etree.SubElement(feed, f"{{{ATOM}}}updated").text = items[0].updated.isoformat() if items else ""
    for item in items:
        node = etree.SubElement(feed, f"{{{ATOM}}}entry")
        etree.SubElement(node, f"{{{ATOM}}}id").text = item.id
        etree.SubElement(node, f"{{{ATOM}}}title").text = item.title
        etree.SubElement(node, f"{{{ATOM}}}updated").text = item.updated.isoformat()
        etree.SubElement(node, f"{{{ATOM}}}published").text = item.published.isoformat()
        etree.SubElement(node, f"{{{ATOM}}}link", href=item.url)
        etree.SubElement(node, f"{{{ATOM}}}summary").text = item.summary
        etree.SubElement(node, f"{{{ATOM}}}content", type="html").text = item.content_html
        for tag in item.tags:
            etree.SubElement(node, f"{{{ATOM}}}category", term=tag)
    target.write_bytes(etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True))


@dataclasses.dataclass
class _Size:
    count: int
    full_cpu: float = 0.0
    documents: int = 0
    peak_mb: float = 0.0
    nothing: float = 0.0
    one_new: float = 0.0
    one_new_floor: float = 0.0
    written: tuple[str, ...] = ()


def _measure(count: int, repeats: int) -> _Size:
    size = _Size(count)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        config = _config(root)
        store = Store.open(config.store_url)
        fill(store, count)
        store.close()
        (size.full_cpu, size.documents), size.peak_mb, _ = in_child(_full_rebuild, folder)
        store = Store.open(config.store_url)
        write_feeds(config, store)  # this process's caches warm, as a daemon's are
        size.nothing = best_of(repeats, lambda: write_feeds(config, store))
        best, floor = float("inf"), float("inf")
        for n in range(repeats):
            _new_article(store, n)
            with measured() as cost:
                result = write_feeds(config, store)
            best = min(best, cost.cpu)
            documents = {path: _entries_of(config, store, path) for path in result.written}
            scratch = root / "floor"
            scratch.mkdir(exist_ok=True)
            with measured() as cost:
                for i, items in enumerate(documents.values()):
                    plain_atom(items, scratch / f"{i}.xml")
            floor = min(floor, cost.cpu)
            size.written = result.written
        size.one_new, size.one_new_floor = best, floor
        store.close()
    return size


def _baseline_mb() -> float:
    with tempfile.TemporaryDirectory() as folder:
        config = _config(Path(folder))
        store = Store.open(config.store_url)
        fill(store, 100)
        store.close()
        _, peak, _ = in_child(_baseline, folder)
    return peak


def run(quick: bool) -> Report:
    sizes = [100, 1_000] if quick else [1_000, 10_000, 100_000, 1_000_000]
    repeats = 2 if quick else 5
    baseline_mb = _baseline_mb()  # first: a child starts from this process's peak (fork, then exec)
    measured_sizes = [_measure(count, repeats) for count in sizes]
    small, large = measured_sizes[0], measured_sizes[-1]
    n = f"{large.count:,}"
    report = Report()
    report.series.append(
        Series("feed rebuild, nothing changed", [(size.count, size.nothing) for size in measured_sizes])
    )
    report.figures += [
        Figure(
            f"feed rebuild, nothing changed, {n} vs {small.count:,} articles",
            large.nothing,
            small.nothing,
            "s CPU",
            target=1.5,
            floor_name=f"the same rebuild over {small.count:,} articles",
            note=f"{large.documents} documents checked, none rendered",
        ),
        Figure(
            f"feed rebuild after one new article, {n} articles",
            large.one_new,
            large.one_new_floor,
            "s CPU",
            target=3.0,
            floor_name="the documents it wrote, from the same entries, with plain lxml",
            note="written: " + ", ".join(large.written),
        ),
        Figure(
            f"feed rebuild after one new article vs nothing changed, {n} articles",
            large.one_new,
            large.nothing,
            "s CPU",
            target=2.0,
            floor_name="the nothing-changed rebuild of the same store",
        ),
        Figure(
            f"peak RSS of a full feed rebuild, {n} articles",
            large.peak_mb,
            baseline_mb,
            "MB",
            target=None,
            floor_name="a process that imports publisher and opens the store",
            note=f"budget {BUDGET_MB:.0f} MB: {'met' if large.peak_mb < BUDGET_MB else 'missed'}; "
            f"the full rebuild took {large.full_cpu:.1f} s CPU for {large.documents} documents",
        ),
    ]
    return report


if __name__ == "__main__":
    for figure in run(quick=False).figures:
        print(f"{figure.name}: {figure.value:.4g} / {figure.floor:.4g} {figure.unit}, ratio {figure.ratio:.2f}")
