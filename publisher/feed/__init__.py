"""The store's articles -> every feed document, written through one writer.

Read everything, then write everything (Pelican's way): :func:`plan` turns the live
articles into documents, :func:`write_feeds` renders each in its format and writes it
atomically, leaves unchanged files untouched, and deletes documents no longer planned.

    atom.xml, rss.xml, feed.json   the newest [feed] max_entries, in each configured format
    tags/<tag>.xml                 Atom: the newest entries with that tag
    archive/YYYY-MM.xml            Atom, RFC 5005: entries older than atom.xml's, by month
    feed.xsl                       shows Atom and RSS as a readable page in a browser

Archives: the newest archive month fills up as entries leave atom.xml; every older month is
closed and its document stays byte-identical unless one of its articles is edited.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from pathlib import Path

from slugify import slugify

from publisher.config import Config
from publisher.feed import atom, jsonfeed, rss
from publisher.feed.model import Document, Entry, entry
from publisher.files import write_atomic
from publisher.store import Store

MAIN = {"atom": "atom.xml", "rss": "rss.xml", "json": "feed.json"}
RENDER: dict[str, Callable[[Config, Document], bytes]] = {
    "atom": atom.render,
    "rss": rss.render,
    "json": jsonfeed.render,
}
STYLESHEET = "feed.xsl"
_OWNED_FOLDERS = ("tags", "archive")


@dataclass(frozen=True)
class FeedResult:
    dir: Path
    entries: int  # in the main documents
    documents: int
    written: tuple[str, ...]  # paths (relative to dir) whose bytes changed
    removed: tuple[str, ...]
    changed_urls: tuple[str, ...]  # public URLs of the feed documents that changed (for WebSub)

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed)

    @property
    def path(self) -> Path:
        return self.dir / MAIN["atom"]

    def summary(self) -> str:
        entries = "1 entry" if self.entries == 1 else f"{self.entries} entries"
        return (
            f"feeds: {self.documents} documents in {self.dir} ({entries}), "
            f"{len(self.written)} written, {len(self.removed)} removed"
        )


def plan(config: Config, entries: list[Entry], *, empty_updated: datetime) -> list[tuple[str, Document]]:
    """Every document to publish, as (format, document); ``entries`` newest first."""
    feed = config.feed
    main, older = entries[: feed.max_entries], entries[feed.max_entries :]
    atom_url = feed.url

    def document(
        path: str, title: str, items: list[Entry], links: tuple[tuple[str, str], ...] = (), archive: bool = False
    ) -> Document:
        updated = max((item.updated for item in items), default=empty_updated)
        url = atom_url if path == MAIN["atom"] else feed.base_url + path
        return Document(path, url, title, tuple(items), updated, links=links, archive=archive, hubs=feed.hubs)

    months = sorted({item.month for item in older}) if feed.archives and "atom" in feed.formats else []
    planned: list[tuple[str, Document]] = []
    for name in feed.formats:
        newest = (("prev-archive", _archive_url(config, months[-1])),) if name == "atom" and months else ()
        planned.append((name, document(MAIN[name], config.site.title, main, links=newest)))
    for i, month in enumerate(months):
        links: list[tuple[str, str]] = [("current", atom_url)]
        if i > 0:
            links.append(("prev-archive", _archive_url(config, months[i - 1])))
        if i + 1 < len(months):
            links.append(("next-archive", _archive_url(config, months[i + 1])))
        items = [item for item in older if item.month == month]
        title = f"{config.site.title}: archive {month}"
        planned.append(("atom", document(f"archive/{month}.xml", title, items, links=tuple(links), archive=True)))
    if feed.tag_feeds and "atom" in feed.formats:
        for slug, (tag, items) in sorted(_by_tag(entries).items()):
            title = f"{config.site.title}: {tag}"
            planned.append(("atom", document(f"tags/{slug}.xml", title, items[: feed.max_entries])))
    return planned


def write_feeds(config: Config, store: Store) -> FeedResult:
    """Rebuild every feed document from the store; unchanged files are not rewritten."""
    created = store.setting("created_at")
    empty_updated = datetime.fromisoformat(created) if created else datetime.fromisoformat("1970-01-01T00:00:00+00:00")
    entries = [entry(config, article) for article in store.newest_articles()]
    planned = plan(config, entries, empty_updated=empty_updated)
    outputs = {doc.path: RENDER[kind](config, doc) for kind, doc in planned}
    if config.feed.stylesheet:
        outputs[STYLESHEET] = files("publisher.feed").joinpath(STYLESHEET).read_bytes()

    root = config.feed.dir
    written = tuple(path for path, data in outputs.items() if write_atomic(root / path, data))
    removed = []
    for stale in sorted(_published(root) - set(outputs)):
        (root / stale).unlink(missing_ok=True)
        removed.append(stale)
    urls = {doc.path: doc.url for _, doc in planned}
    return FeedResult(
        dir=root,
        entries=min(len(entries), config.feed.max_entries),
        documents=len(outputs),
        written=written,
        removed=tuple(removed),
        changed_urls=tuple(urls[path] for path in written if path in urls),
    )


def _archive_url(config: Config, month: str) -> str:
    return f"{config.feed.base_url}archive/{month}.xml"


def _by_tag(entries: list[Entry]) -> dict[str, tuple[str, list[Entry]]]:
    """slug -> (the tag as first written, its entries newest first); "Economy" = "economy"."""
    tags: dict[str, tuple[str, list[Entry]]] = {}
    for item in entries:
        slugs = {tag_slug(tag): tag for tag in reversed(item.tags)}  # first spelling wins
        for slug, tag in slugs.items():
            if slug:
                tags.setdefault(slug, (tag, []))[1].append(item)
    return tags


def tag_slug(tag: str) -> str:
    """The file name of a tag's feed: "Economy" -> economy, "C++" -> c-plus-plus."""
    return str(slugify(tag, max_length=80, replacements=[["+", "-plus-"], ["#", "-sharp-"]]))


def _published(root: Path) -> set[str]:
    """The documents this writer owns in ``root`` (other files there are left alone)."""
    found = {name for name in (*MAIN.values(), STYLESHEET) if (root / name).is_file()}
    for folder in _OWNED_FOLDERS:
        if (root / folder).is_dir():
            found |= {f"{folder}/{p.name}" for p in (root / folder).glob("*.xml") if not p.name.startswith(".")}
    return found
