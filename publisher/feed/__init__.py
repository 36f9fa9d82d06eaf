"""The store's articles -> every feed document, written through one writer.

    atom.xml, rss.xml, feed.json   the newest [feed] max_entries, in each configured format
    tags/<tag>.xml                 Atom: the newest entries with that tag (names: publisher.feed.tags)
    archive/YYYY-MM.xml            Atom, RFC 5005: entries older than atom.xml's, by month
    index.html, tags/<tag>.html    static pages for people (publisher.feed.pages), no XSLT needed
    feed.xsl                       shows Atom and RSS as a readable page in browsers that run XSLT

Each entry carries the id the store remembers for its article (publisher.feed.ids), and its
article's own date as ``updated``; each Atom document has its own atom:id (its URL). An entry
that makes a document fail to render is left out of it with one warning line (issue 10).

Archives: the newest archive month fills up as entries leave atom.xml; every older month is
closed and its document stays byte-identical unless one of its articles is edited.

A rebuild costs what changed, not the size of the archive. Each write to the store's articles
leaves a row in ``article_changes`` (a database trigger); the store also keeps, per feeds
folder, what the last rebuild wrote (``feed_builds``: the change it had seen, the main
entries, the archive months and tag feeds, each file's size and mtime). A rebuild reads the
changes since, and renders only the documents they touch: the months and tag feeds the changed
articles were or are in, the main feeds when their entries changed, a month whose neighbours
changed (its RFC 5005 links), and any file that is missing or not as written (edited by hand).
An entry's content (links made absolute) is kept in ``feed_content`` by article version, so
re-rendering a month does not parse again the bodies that did not change.
Anything it cannot trust (no record, other settings or code, another store, too many changes)
makes it rebuild every document, streaming the archive a month at a time; unchanged files are
never rewritten either way.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache
from importlib.resources import files
from itertools import islice
from pathlib import Path
from typing import Any

from lxml import etree

from publisher import __version__, clock
from publisher.config import Config, FeedConfig
from publisher.errors import FeedError
from publisher.feed import atom, ids, index, jsonfeed, pages, rss, tags
from publisher.feed.model import Document, Entry, clean_tags, entry, prepare
from publisher.files import remove_orphans, write_atomic
from publisher.store import Article, Store, Tx, feeds

MAIN = {"atom": "atom.xml", "rss": "rss.xml", "json": "feed.json"}
Renderer = Callable[[Config, Document], bytes]
# What a renderer raises for an entry it cannot write (lxml's limits, feedgen's checks).
_RENDER_ERRORS = (ValueError, TypeError, etree.LxmlError, OverflowError)
RENDER: dict[str, Renderer] = {
    "atom": atom.render,
    "rss": rss.render,
    "json": jsonfeed.render,
}
STYLESHEET = "feed.xsl"
PAGE = "index.html"  # the feeds' human page; each tag feed has one beside it (tags/<slug>.html)
logger = logging.getLogger(__name__)
_OWNED_FOLDERS = ("tags", "archive")


@dataclass(frozen=True)
class FeedResult:
    dir: Path
    entries: int  # in the main documents
    documents: int
    written: tuple[str, ...]  # paths (relative to dir) whose bytes changed
    removed: tuple[str, ...]
    changed_urls: tuple[str, ...]  # public URLs of the feed documents that changed (for WebSub)
    left_out: tuple[str, ...] = ()  # "<document>: <article file>: <why>" for entries that could not be written
    pages_written: tuple[str, ...] = ()  # the HTML pages (index.html, tags/*.html) whose bytes changed

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed or self.pages_written)

    @property
    def path(self) -> Path:
        return self.dir / MAIN["atom"]

    def summary(self) -> str:
        entries = "1 entry" if self.entries == 1 else f"{self.entries} entries"
        left = f", {len(self.left_out)} entries left out (see the warnings)" if self.left_out else ""
        return (
            f"feeds: {self.documents} documents in {self.dir} ({entries}), "
            f"{len(self.written)} written, {len(self.removed)} removed{left}"
        )


FULL_AFTER = 5000  # changes since the last rebuild beyond which every document is rebuilt
_PREPARED_KEPT = 10_000  # prepared contents one rebuild stores, at most (a full one: the newest)
_TAG_SYNCS = 3  # times the tag index is brought up to date for one rebuild, if writers keep writing


def write_feeds(config: Config, store: Store) -> FeedResult:
    """Bring every feed document up to date with the store; unchanged files are not rewritten.

    A folder that cannot be written (rights, a full disk) raises FeedError naming the file.
    """
    try:
        _remove_orphans(config.feed.dir)
        ids.remember(store, config.site, config.feed.dir)
        return _write_feeds(config, store)
    except OSError as exc:
        where = exc.filename or config.feed.dir
        raise FeedError(
            f"feeds: cannot write {where}: {exc.strerror or exc} ([feed] dir: free space or fix its rights)"
        ) from exc


def _write_feeds(config: Config, store: Store) -> FeedResult:
    folder = str(config.feed.dir.resolve())
    syncs = 0
    while (built := _build(config, store, folder, sync_allowed=syncs < _TAG_SYNCS)) is None:
        index.sync_tags(store, _slugs_of, full_after=FULL_AFTER)  # outside the rebuild's transaction
        syncs += 1
    result, state, seen, prepared = built
    if prepared:
        index.save_contents(store, prepared)
    if state != (seen[1] if seen else None):
        index.save_build(store, folder, seen[0] if seen else None, state)
    return result


def _build(
    config: Config, store: Store, folder: str, *, sync_allowed: bool
) -> tuple[FeedResult, dict[str, Any], tuple[int, dict[str, Any]] | None, dict[int, index.Prepared]] | None:
    """The rebuild, in one transaction; None if the tag index must be brought up to date first."""
    with store.transaction() as conn:
        upto = index.current_rev(conn)
        if _tag_feeds(config):
            done = index.tags_rev(conn) or 0
            if done != upto and sync_allowed:
                return None
            upto = min(upto, done)  # writers kept writing: what the tag index lacks is read next time
        seen = index.load_build(conn, folder)
        rebuild = _Rebuild(config, conn, upto, index.setting(conn, "created_at"), clock.now())
        result, state = rebuild.run(seen[1] if seen else None)
        return result, state, seen, rebuild.prepared


def tag_slug(tag: str) -> str:
    """The plain slug of a tag: "Economy" -> economy, "C++" -> c-plus-plus. A tag's feed has
    this name unless another tag had it first (publisher.feed.tags remembers the names)."""
    return tags.plain_slug(tag)


def _slugs_of(names: tags.Names, article_tags: list[str]) -> dict[str, str]:
    """An article's tag feeds: slug -> the tag as the article first writes it."""
    slugs = {names.slug(tag): tag for tag in reversed(clean_tags(article_tags))}
    return {slug: tag for slug, tag in slugs.items() if slug}


def _tag_feeds(config: Config) -> bool:
    return config.feed.tag_feeds and "atom" in config.feed.formats


def _archives(config: Config) -> bool:
    return config.feed.archives and "atom" in config.feed.formats


class _Rebuild:
    """One rebuild of one feeds folder, inside one store transaction."""

    def __init__(self, config: Config, conn: Tx, upto: int, created: str | None, now: datetime) -> None:
        self.config = config
        self.conn = conn
        self.now = now  # articles dated later are embargoed: left out until a rebuild after their date
        self.empty_updated = datetime.fromisoformat(created or "1970-01-01T00:00:00+00:00")
        self.fingerprint = _fingerprint(config, created or "")
        self.upto = upto
        self.root = config.feed.dir
        self._main: list[Entry] | None = None
        self._main_ids: list[int] = []
        self._months: dict[str, list[Entry]] = {}
        self._tags: dict[str, list[Entry]] = {}
        self._entries: dict[int, Entry] = {}  # by article id: one transaction, one version
        self._cached: dict[int, index.Prepared] = {}  # as stored, by article id
        self.prepared: dict[int, index.Prepared] = {}  # prepared here, to store
        self.written: list[str] = []
        self.files: dict[str, list[int]] = {}  # path -> [size, mtime_ns] as last written or checked
        self.names = tags.Names(conn)
        self._ids: dict[str, str] = {}  # article key -> remembered entry id
        self._ties: dict[int, int] = {}  # article id -> seconds set apart (own_date ties)
        self.left_out: list[str] = []
        self._tag_list: list[str] = []

    def run(self, before: dict[str, Any] | None) -> tuple[FeedResult, dict[str, Any]]:
        """Incremental from ``before`` when it can be trusted, else every document."""
        trusted = before is not None and before.get("fingerprint") == self.fingerprint
        if before is not None and trusted and before["rev"] <= self.upto <= before["rev"] + FULL_AFTER:
            result, state = self.incremental(before)
        else:
            result, state = self.full()
        state["fingerprint"] = self.fingerprint
        # The first date left out: a rebuild at or after it shows what arrived (no write marks it).
        due = index.next_due(self.conn, self.now)
        state["due"] = due.isoformat() if due is not None else None
        return result, state

    # -- reading ------------------------------------------------------------------------------

    def main(self) -> list[Entry]:
        if self._main is None:
            articles = index.newest(self.conn, self.config.feed.max_entries, self.now)
            self._main_ids = [article.id for article in articles]
            self._main = self._entries_of(articles)
        return self._main

    def main_ids(self) -> list[int]:
        self.main()
        return self._main_ids

    def _boundary(self) -> tuple[datetime, int] | None:
        """Where the archive starts: after the last main entry, if atom.xml is full."""
        main = self.main()
        if len(main) < self.config.feed.max_entries or not main:
            return None
        return main[-1].published, self._main_ids[-1]

    def month(self, month: str) -> list[Entry]:
        """The archive entries of ``month``, newest first."""
        if month not in self._months:
            boundary = self._boundary()
            items: list[Entry] = []
            if boundary is not None:
                tz = self.config.site.timezone
                year, number = map(int, month.split("-"))
                # a day either side: the month's edges in the site's zone, DST or not
                start = datetime(year, number, 1, tzinfo=tz) - timedelta(days=1)
                end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz) + timedelta(days=1)
                articles = index.older(self.conn, boundary, since=start, until=end, now=self.now)
                items = self._entries_of([article for article in articles if self.month_of(article.published) == month])
            self._months[month] = items
        return self._months[month]

    def tag(self, slug: str) -> list[Entry]:
        if slug not in self._tags:
            articles = index.tagged(self.conn, slug, self.config.feed.max_entries, self.now)
            self._tags[slug] = self._entries_of(articles)
        return self._tags[slug]

    def _entries_of(self, found: list[Article]) -> list[Entry]:
        """Their entries, each made once per rebuild (main and tag feeds share most)."""
        wanted = [article for article in found if article.id not in self._entries]
        self._cached.update(index.contents(self.conn, [article.id for article in wanted]))
        self._learn(wanted)
        for article in wanted:
            self._entries[article.id] = self._entry(article)
        return [self._entries[article.id] for article in found]

    def _entry(self, article: Article) -> Entry:
        entry_id = self._ids.get(article.key) or ids.new_id(self.config.site, article.key)  # remembered next run
        tie = self._ties.get(article.id, 0)
        return entry(self.config, article, entry_id, self._prepared(article), tie)

    def _learn(self, found: list[Article]) -> None:
        """The remembered ids of these articles, and how far each is set apart from articles
        of the same date: the W3C validator warns of two entries with one atom:updated, so
        the n-th live article (by id) dated an instant is updated n seconds after it."""
        self._ids.update(ids.lookup(self.conn, [a.key for a in found if a.key not in self._ids]))
        instants = sorted({a.published for a in found if a.id not in self._ties})
        previous, n = None, 0
        for article_id, published in feeds.dated_in_order(self.conn, instants):
            n = n + 1 if published == previous else 0
            previous = published
            self._ties[article_id] = n

    def _prepared(self, article: Article) -> tuple[str, str]:
        """The article's URL and content as stored, if made from this version; else made now."""
        made_from = (self.fingerprint, article.key, article.slug, article.published.isoformat(), article.body_html)
        version = hashlib.sha256("\0".join(made_from).encode()).hexdigest()
        for known in (self.prepared, self._cached):
            cached = known.get(article.id)
            if cached is not None and cached[0] == version:
                return cached[1], cached[2]
        url, html = prepare(self.config, article)
        if len(self.prepared) < _PREPARED_KEPT:
            self.prepared[article.id] = (version, url, html)
        return url, html

    def month_of(self, when: datetime) -> str:
        return f"{when.astimezone(self.config.site.timezone):%Y-%m}"

    # -- documents ----------------------------------------------------------------------------

    def _document(
        self, path: str, title: str, items: list[Entry], links: tuple[tuple[str, str], ...] = (), archive: bool = False
    ) -> Document:
        feed = self.config.feed
        updated = max((item.updated for item in items), default=self.empty_updated)
        url = _url(feed, path)
        return Document(
            path, url, title, tuple(items), updated, links=links, archive=archive, hubs=feed.hubs, feed_id=url
        )

    def main_document(self, name: str, months: list[str]) -> Document:
        newest = (("prev-archive", _archive_url(self.config, months[-1])),) if name == "atom" and months else ()
        return self._document(MAIN[name], self.config.site.title, self.main(), links=newest)

    def month_document(self, months: list[str], i: int, items: list[Entry]) -> Document:
        links: list[tuple[str, str]] = [("current", self.config.feed.url)]
        if i > 0:
            links.append(("prev-archive", _archive_url(self.config, months[i - 1])))
        if i + 1 < len(months):
            links.append(("next-archive", _archive_url(self.config, months[i + 1])))
        title = f"{self.config.site.title}: archive {months[i]}"
        return self._document(f"archive/{months[i]}.xml", title, items, links=tuple(links), archive=True)

    def tag_document(self, slug: str, items: list[Entry]) -> Document:
        tag = self.tag_name(slug, items)
        return self._document(f"tags/{slug}.xml", f"{self.config.site.title}: {tag}", items)

    def tag_name(self, slug: str, items: list[Entry]) -> str:
        """The tag as the newest entry with it writes it."""
        for item in items:
            for tag in item.tags:
                if self.names.slug(tag) == slug:
                    return tag
        return slug

    def source_path(self, key: str) -> str:
        """The file an article was read from, as a warning names it."""
        found = feeds.source_path(self.conn, key)
        return str(found or key)

    def main_page(self, tag_slugs: list[str]) -> bytes:
        """feeds/index.html: the newest entries, every feed to subscribe to."""
        doc = self.main_document("atom", [])
        listed = [(slug, self.names.spelling.get(slug, slug)) for slug in tag_slugs]
        return pages.render(self.config, doc, tag_feeds=listed)

    def emit(self, kind: str, doc: Document) -> None:
        self.write(doc.path, self.render(kind, doc))
        if kind == "atom" and doc.path != MAIN["atom"] and not doc.archive:
            self.write(doc.path.removesuffix(".xml") + ".html", pages.render(self.config, doc))  # its human page

    def render(self, kind: str, doc: Document) -> bytes:
        """The document; an entry that makes it fail is left out with one line (issue 10)."""
        try:
            return RENDER[kind](self.config, doc)
        except _RENDER_ERRORS:
            pass
        kept = []
        for item in doc.entries:
            try:
                RENDER[kind](self.config, replace(doc, entries=(item,)))
            except _RENDER_ERRORS as exc:
                why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                line = f"{doc.path}: {self.source_path(item.source)}: {why}"
                logger.warning("feeds: left an entry out of %s", line)
                self.left_out.append(line)
                continue
            kept.append(item)
        return RENDER[kind](self.config, replace(doc, entries=tuple(kept)))

    def write(self, path: str, data: bytes) -> None:
        target = self.root / path
        if write_atomic(target, data):
            self.written.append(path)
        stat = target.stat()
        self.files[path] = [stat.st_size, stat.st_mtime_ns]

    # -- the two ways -------------------------------------------------------------------------

    def full(self) -> tuple[FeedResult, dict[str, Any]]:
        """Every document, the archive streamed a month at a time."""
        config = self.config
        months: list[str] = []  # newest first
        pending: tuple[str, list[Entry]] | None = None
        boundary = self._boundary()
        if _archives(config) and boundary is not None:
            for article in _learning(self, index.stream_older(self.conn, boundary, self.now)):
                item = self._entry(article)  # not kept: the archive streams
                if pending is None or item.month != pending[0]:
                    if pending is not None:
                        self._emit_streamed(pending, newer=months[-2] if len(months) > 1 else None, older=item.month)
                    pending = (item.month, [])
                    months.append(item.month)
                pending[1].append(item)
            if pending is not None:
                self._emit_streamed(pending, newer=months[-2] if len(months) > 1 else None, older=None)
        months.reverse()
        for name in config.feed.formats:
            self.emit(name, self.main_document(name, months))
        tags: list[str] = []
        if _tag_feeds(config):
            for slug in index.tag_slugs(self.conn):
                items = self.tag(slug)
                if items:
                    tags.append(slug)
                    self.emit("atom", self.tag_document(slug, items))
        if config.feed.stylesheet:
            self.write(STYLESHEET, _stylesheet())
        self.write(PAGE, self.main_page(tags))
        planned = _planned(config, months, tags)
        removed = [path for path in sorted(_on_disk(self.root)) if path not in planned]
        return self._finish(planned, months, tags, removed, self.main_ids())

    def _emit_streamed(self, month: tuple[str, list[Entry]], *, newer: str | None, older: str | None) -> None:
        # month_document wants the ascending list around it: [older?, month, newer?]
        around = [name for name in (older, month[0], newer) if name is not None]
        self.emit("atom", self.month_document(around, around.index(month[0]), month[1]))

    def incremental(self, before: dict[str, Any]) -> tuple[FeedResult, dict[str, Any]]:
        """The documents the changes since ``before`` touch, and files not as written."""
        config = self.config
        self.files = {path: list(stat) for path, stat in before["files"].items()}
        old_main: list[int] = before["main"]
        old_months: list[str] = before["months"]
        old_tags: list[str] = before["tags"]
        dirty: set[str] = set()
        dirty_months: set[str] = set()
        dirty_tags: set[str] = set()
        touched: set[int] = set()
        changed: list[index.Change] = []
        if self.upto > before["rev"]:
            changed = index.changes(self.conn, before["rev"], self.upto)
            touched = {change.article_id for change in changed}
            for change in changed:
                if change.old_published is not None:
                    dirty_months.add(self.month_of(change.old_published))
                dirty_tags.update(_slugs_of(self.names, change.old_tags or []))
        due = before.get("due")
        if due is not None and datetime.fromisoformat(due) <= self.now:
            touched |= index.arrived(self.conn, datetime.fromisoformat(due), self.now)  # embargoes that ended
        if touched:
            # articles dated the same instant as a changed one: their updated may move a second
            instants = {head.published for head in index.heads(self.conn, touched)}
            instants |= {change.old_published for change in changed if change.old_published is not None}
            touched |= index.dated(self.conn, instants)
            for head in index.heads(self.conn, touched):
                dirty_months.add(self.month_of(head.published))
                dirty_tags.update(_slugs_of(self.names, head.tags))
            main_ids = self.main_ids()
            if main_ids != old_main:  # entries moved between atom.xml and the archive
                dirty_months.update(self.month_of(head.published) for head in index.heads(self.conn, set(old_main)))
                dirty_months.update(item.month for item in self.main())
            if main_ids != old_main or touched & set(main_ids):
                dirty.update(MAIN[name] for name in config.feed.formats)
                dirty.add(PAGE)
        months: list[str] = []
        if _archives(config):
            kept = set(old_months) - dirty_months
            months = sorted(kept | {month for month in dirty_months if self.month(month)})
            old_around, around = _neighbours(old_months), _neighbours(months)
            dirty.update(
                f"archive/{month}.xml"
                for month in months
                if month in dirty_months or around[month] != old_around.get(month)
            )
            if old_months[-1:] != months[-1:] and "atom" in config.feed.formats:
                dirty.add(MAIN["atom"])  # its prev-archive link
        tags: list[str] = []
        if _tag_feeds(config):
            kept = set(old_tags) - dirty_tags
            tags = sorted(kept | {slug for slug in dirty_tags if self.tag(slug)})
            dirty.update(f"tags/{slug}.xml" for slug in dirty_tags if slug in tags)
        if tags != sorted(old_tags):
            dirty.add(PAGE)  # it lists the tag feeds
        planned = _planned(config, months, tags)
        disk = _on_disk(self.root)
        for path in planned:
            if path not in dirty and disk.get(path) != tuple(self.files.get(path, ())):
                dirty.add(path)  # missing, or changed by someone else
        order = {path: i for i, path in enumerate(planned)}
        self._tag_list = tags
        for path in sorted(dirty, key=order.__getitem__):
            if path.endswith(".html") and path.removesuffix(".html") + ".xml" in dirty:
                continue  # written with its feed
            self._render(path, months)
        removed = [path for path in sorted(disk) if path not in planned]
        return self._finish(planned, months, tags, removed, self.main_ids() if self._main is not None else old_main)

    def _render(self, path: str, months: list[str]) -> None:
        if path == STYLESHEET:
            self.write(path, _stylesheet())
        elif path == PAGE:
            self.write(path, self.main_page(self._tag_list))
        elif path.startswith("archive/"):
            month = path.removeprefix("archive/").removesuffix(".xml")
            self.emit("atom", self.month_document(months, months.index(month), self.month(month)))
        elif path.startswith("tags/"):
            slug = path.removeprefix("tags/").removesuffix(".xml").removesuffix(".html")
            self.emit("atom", self.tag_document(slug, self.tag(slug)))
        else:
            name = next(name for name, file in MAIN.items() if file == path)
            self.emit(name, self.main_document(name, months))

    def _finish(
        self, planned: list[str], months: list[str], tags: list[str], removed: list[str], main_ids: list[int]
    ) -> tuple[FeedResult, dict[str, Any]]:
        for path in removed:
            (self.root / path).unlink(missing_ok=True)
        feed = self.config.feed
        order = {path: i for i, path in enumerate(planned)}
        everything = sorted(self.written, key=order.__getitem__)
        written = tuple(path for path in everything if not _is_page(path))
        result = FeedResult(
            dir=self.root,
            entries=len(main_ids),
            documents=sum(not _is_page(path) for path in planned),
            written=written,
            removed=tuple(path for path in removed if not _is_page(path)),
            changed_urls=tuple(_url(feed, path) for path in written if path != STYLESHEET),
            left_out=tuple(self.left_out),
            pages_written=tuple(path for path in everything if _is_page(path)),
        )
        state = {
            "rev": self.upto,
            "main": main_ids,
            "months": months,
            "tags": tags,
            "files": {path: self.files[path] for path in planned if path in self.files},
        }
        return result, state


def _is_page(path: str) -> bool:
    """An HTML page beside the feeds (not a feed: no WebSub ping, not counted as a document)."""
    return path.endswith(".html")


def _learning(rebuild: _Rebuild, stream: Iterator[Article], size: int = 500) -> Iterator[Article]:
    """``stream``, with the remembered ids and date ties of each batch learned before it goes on."""
    while batch := list(islice(stream, size)):
        rebuild._learn(batch)
        yield from batch


def _url(feed: FeedConfig, path: str) -> str:
    return feed.url if path == MAIN["atom"] else feed.base_url + path


def _planned(config: Config, months: list[str], tags: list[str]) -> list[str]:
    """Every document path, in the order results list them."""
    paths = [MAIN[name] for name in config.feed.formats]
    paths += [f"archive/{month}.xml" for month in months]
    for slug in tags:
        paths += [f"tags/{slug}.xml", f"tags/{slug}.html"]
    paths.append(PAGE)
    return [*paths, STYLESHEET] if config.feed.stylesheet else paths


def _neighbours(months: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """month -> (the month before it, the month after it) among ``months`` (ascending)."""
    padded: list[str | None] = [None, *months, None]
    return {month: (padded[i], padded[i + 2]) for i, month in enumerate(months)}


def _remove_orphans(root: Path) -> None:
    """Temp files of ours that a killed writer left (a CDN sync would publish them). One still
    being written is locked by its writer and left alone (publisher.files.remove_orphans)."""
    remove_orphans(root, lambda name: name in MAIN.values() or name in (STYLESHEET, PAGE))
    for folder in _OWNED_FOLDERS:
        remove_orphans(root / folder, lambda name: name.endswith((".xml", ".html")) and not name.startswith("."))


def _on_disk(root: Path) -> dict[str, tuple[int, int]]:
    """The documents this writer owns in ``root``, with their size and mtime (other files
    there are left alone)."""
    found: dict[str, tuple[int, int]] = {}
    for folder, owned in (("", (*MAIN.values(), STYLESHEET, PAGE)), *((name, None) for name in _OWNED_FOLDERS)):
        try:
            with os.scandir(root / folder) as listing:
                for item in listing:
                    suffixes = (".xml", ".html") if folder == "tags" else (".xml",)
                    mine = (
                        item.name in owned if owned else item.name.endswith(suffixes) and not item.name.startswith(".")
                    )
                    if mine and item.is_file():
                        stat = item.stat()
                        found[f"{folder}/{item.name}" if folder else item.name] = (stat.st_size, stat.st_mtime_ns)
        except (FileNotFoundError, NotADirectoryError):
            continue
    return found


@lru_cache(maxsize=1)
def _stylesheet() -> bytes:
    return files("publisher.feed").joinpath(STYLESHEET).read_bytes()


@lru_cache(maxsize=1)
def _code() -> str:
    """A digest of the code that renders the documents: another version may write other bytes."""
    digest = hashlib.sha256(__version__.encode())
    package = files("publisher.feed")
    for name in (
        "__init__.py",
        "atom.py",
        "rss.py",
        "jsonfeed.py",
        "model.py",
        "pages.py",
        "ids.py",
        "tags.py",
        STYLESHEET,
    ):
        digest.update(package.joinpath(name).read_bytes())
    digest.update(files("publisher").joinpath("links.py").read_bytes())
    digest.update(files("publisher.ingest").joinpath("decode.py").read_bytes())  # strip_illegal
    return digest.hexdigest()


def _fingerprint(config: Config, store_created: str) -> str:
    """What the documents depend on besides the articles: the settings, the code, the store."""
    feed = config.feed
    text = repr((config.site, replace(feed, dir=Path()), store_created, _code()))
    return hashlib.sha256(text.encode()).hexdigest()


def _archive_url(config: Config, month: str) -> str:
    return f"{config.feed.base_url}archive/{month}.xml"
