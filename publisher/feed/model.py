"""What every feed format is written from: entries, and the documents that hold them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from publisher.config import Config
from publisher.ingest.decode import strip_illegal
from publisher.links import absolute_html, article_url, entry_id
from publisher.store import Article


@dataclass(frozen=True)
class Entry:
    id: str
    url: str
    title: str
    summary: str
    content_html: str  # sanitized at ingest; links made absolute against ``url``
    author: str
    published: datetime
    updated: datetime
    tags: tuple[str, ...]
    month: str  # YYYY-MM of ``published`` in the site's time zone: its archive document


@dataclass(frozen=True)
class Document:
    """One feed document: where it goes, what it says about itself, and its entries."""

    path: str  # relative to the feeds folder, e.g. "atom.xml", "tags/economy.xml"
    url: str  # its public URL
    title: str
    entries: tuple[Entry, ...]
    updated: datetime  # the newest entry's time, so an unchanged store gives the same bytes
    links: tuple[tuple[str, str], ...] = ()  # extra (rel, href): RFC 5005 archive links
    archive: bool = False  # an RFC 5005 archive document (fh:archive)
    hubs: tuple[str, ...] = field(default=())

    @property
    def stylesheet_href(self) -> str:
        """feed.xsl, relative to this document (tags/ and archive/ are one folder down)."""
        return "../" * self.path.count("/") + "feed.xsl"


def prepare(config: Config, article: Article) -> tuple[str, str]:
    """The article's URL, and its body as feeds show it: links absolute against it, XML-legal."""
    url = article_url(config.site, article)
    return url, strip_illegal(absolute_html(article.body_html, url))


def entry(config: Config, article: Article, prepared: tuple[str, str] | None = None) -> Entry:
    """``prepared``: what :func:`prepare` gives for this article, if already known."""
    url, content_html = prepared or prepare(config, article)
    # Atom wants updated >= published; a post dated in the future would break that.
    updated = max(article.updated, article.published)
    return Entry(
        id=entry_id(config.site, article),
        url=url,
        title=_line(article.title),
        summary=_line(article.summary),
        content_html=content_html,
        author=_line(article.author or "") or config.site.author,  # not one left empty by cleaning
        published=article.published,
        updated=updated,
        tags=clean_tags(article.tags),
        month=f"{article.published.astimezone(config.site.timezone):%Y-%m}",
    )


def _line(text: str) -> str:
    """One line of XML-legal text: removing characters can leave runs of spaces behind."""
    return " ".join(strip_illegal(text).split())


def clean_tags(tags: list[str]) -> tuple[str, ...]:
    """Each tag once, in order; none left empty by cleaning (a category needs a term)."""
    return tuple(dict.fromkeys(tag for tag in map(_line, tags) if tag))
