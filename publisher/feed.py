"""The store's newest articles -> ``feeds/atom.xml`` (RFC 4287), written atomically.

feedgen 1.0.0 builds the document; three of its traps are handled here:
- ``add_entry`` prepends by default, so entries are added with ``order="append"``;
- entry links lose ``rel`` and ``type`` (a variable is shadowed in ``atom_entry``), so they
  are put back on the generated tree;
- ``updated`` would be "now" and change the file on every run, so it is the newest entry's.
Its other traps (naive datetimes, XML-illegal characters that fail the whole feed at write
time) cannot happen: the store returns aware datetimes and every string is cleaned first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from feedgen.feed import FeedGenerator
from lxml import etree

from publisher import __version__
from publisher.config import Config
from publisher.files import write_atomic
from publisher.ingest.decode import strip_illegal
from publisher.links import article_url, entry_id
from publisher.store import Article, Store

ATOM_NS = "http://www.w3.org/2005/Atom"
FEED_NAME = "atom.xml"


@dataclass(frozen=True)
class FeedResult:
    path: Path
    entries: int
    changed: bool

    def summary(self) -> str:
        state = "written" if self.changed else "unchanged"
        return f"feed: {self.path} ({self.entries} entries, {state})"


def write_feed(config: Config, store: Store) -> FeedResult:
    """Rebuild the Atom feed from the store; the file is rewritten only when it changed."""
    articles = store.newest_articles(config.max_entries)
    created = store.setting("created_at")
    fallback = datetime.fromisoformat(created) if created else None
    document = atom_document(config, articles, empty_updated=fallback)
    path = config.feed_dir / FEED_NAME
    return FeedResult(path=path, entries=len(articles), changed=write_atomic(path, document))


def atom_document(config: Config, articles: list[Article], *, empty_updated: datetime | None) -> bytes:
    """The feed as bytes; ``articles`` newest first. Same input, same bytes."""
    site = config.site
    fg = FeedGenerator()
    fg.id(config.feed_url)
    fg.title(_text(site.title))
    fg.author({"name": _text(site.author)})
    fg.link(href=config.feed_url, rel="self", type="application/atom+xml")
    fg.link(href=site.url, rel="alternate", type="text/html")
    fg.language(site.language)
    fg.generator("publisher", version=__version__)
    times = [_entry_updated(a) for a in articles]
    newest = max(times, default=empty_updated)
    if newest is not None:
        fg.updated(newest)
    for article, updated in zip(articles, times, strict=True):
        entry = fg.add_entry(order="append")
        entry.id(entry_id(site, article))
        entry.title(_text(article.title))
        entry.published(article.published)
        entry.updated(updated)
        entry.author({"name": _text(article.author or site.author)})
        entry.link(href=article_url(site, article), rel="alternate", type="text/html")
        entry.summary(_text(article.summary))
        entry.content(_text(article.body_html), type="html")
        for tag in article.tags:
            entry.category(term=_text(tag))
    return _restore_entry_links(fg.atom_str(pretty=True))


def _entry_updated(article: Article) -> datetime:
    # Atom wants updated >= published; a post dated in the future would break that.
    return max(article.updated, article.published)


def _text(value: str) -> str:
    return strip_illegal(value)


def _restore_entry_links(document: bytes) -> bytes:
    """Give every entry link the rel and type that feedgen 1.0.0 drops."""
    root = etree.fromstring(document)
    for link in root.iterfind(f"{{{ATOM_NS}}}entry/{{{ATOM_NS}}}link"):
        link.set("rel", "alternate")
        link.set("type", "text/html")
    document = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return document
