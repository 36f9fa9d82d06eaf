"""What every feed format is written from: entries, and the documents that hold them."""

from __future__ import annotations

import html
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote, urljoin, urlsplit

from publisher.config import Config
from publisher.ingest.decode import strip_illegal
from publisher.links import absolute_html, article_url
from publisher.store import Article

# The first image of a body as lxml serialized it (attributes double-quoted, & escaped).
_FIRST_IMG = re.compile(r"<img\b[^>]*?\ssrc=\"([^\"]+)\"", re.IGNORECASE)


@dataclass(frozen=True)
class Media:
    """An image or an audio file an entry points at."""

    url: str  # absolute
    type: str  # media type; "" when it cannot be told from the name
    length: int = 0  # bytes; 0: unknown
    duration: str = ""  # audio: HH:MM:SS or seconds


@dataclass(frozen=True)
class Entry:
    id: str
    source: str  # the article's key (its source file): what a warning about the entry names
    url: str
    title: str
    summary: str
    content_html: str  # sanitized at ingest; links made absolute against ``url``
    author: str
    published: datetime
    updated: datetime
    tags: tuple[str, ...]
    month: str  # YYYY-MM of ``published`` in the site's time zone: its archive document
    image: Media | None = None  # the lead image: front matter ``image``, else the body's first
    image_alt: str = ""
    audio: Media | None = None  # a podcast episode (front matter ``audio``)
    language: str = ""  # the article's own, when front matter gives one


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
    feed_id: str = ""  # its atom:id: the main feed's URL, or this document's own (one id per feed)

    @property
    def stylesheet_href(self) -> str:
        """feed.xsl, relative to this document (tags/ and archive/ are one folder down)."""
        return "../" * self.path.count("/") + "feed.xsl"


def prepare(config: Config, article: Article) -> tuple[str, str]:
    """The article's URL, and its body as feeds show it: links absolute against it, XML-legal."""
    url = article_url(config.site, article)
    return url, strip_illegal(absolute_html(article.body_html, url))


def entry(
    config: Config, article: Article, entry_id: str, prepared: tuple[str, str] | None = None, tie: int = 0
) -> Entry:
    """``entry_id``: the article's remembered id (publisher.feed.ids); ``prepared``: what
    :func:`prepare` gives for this article, if already known; ``tie``: seconds that set its
    ``updated`` apart from other articles dated the same instant (see :func:`own_date`)."""
    url, content_html = prepared or prepare(config, article)
    meta = article.meta or {}
    image = _media(meta.get("image"), url) or _first_image(content_html)
    audio = meta.get("audio")
    sound = _media(audio.get("url"), url) if isinstance(audio, dict) else None
    if sound is not None and isinstance(audio, dict):
        length = audio.get("length")
        sound = Media(
            sound.url,
            str(audio.get("type") or sound.type or "audio/mpeg"),
            length if isinstance(length, int) and not isinstance(length, bool) and length > 0 else 0,
            _line(str(audio.get("duration") or "")),
        )
    language = meta.get("language")
    return Entry(
        id=entry_id,
        source=article.key,
        url=url,
        title=_line(article.title),
        summary=_line(article.summary),
        content_html=content_html,
        author=_line(article.author or "") or config.site.author,  # not one left empty by cleaning
        published=article.published,
        updated=own_date(article) + timedelta(seconds=tie),
        tags=clean_tags(article.tags),
        month=f"{article.published.astimezone(config.site.timezone):%Y-%m}",
        image=image,
        image_alt=_line(str(meta.get("image_alt") or "")),
        audio=sound,
        language=_own_language(language, config.site.language),
    )


def _own_language(language: object, site: str) -> str:
    """The article's language tag when it is a valid one and not the site's (that one the
    feed already says)."""
    if not isinstance(language, str) or not re.fullmatch(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*", language):
        return ""
    return "" if language.lower() == site.lower() else language


def own_date(article: Article) -> datetime:
    """When the article says it last changed: its ``modified`` date (front matter or the
    page's own) when later than its published date, else the published date. Never when it
    was ingested: a store rebuilt on another day gives the same dates. Atom wants updated >=
    published, so a modified date before the published one is not taken."""
    modified = (article.meta or {}).get("modified")
    if isinstance(modified, str):
        try:
            when = datetime.fromisoformat(modified.strip().replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None and when > article.published:
            return when.replace(microsecond=0)
    return article.published


def _media(value: object, base: str) -> Media | None:
    """A URL from metadata (absolute, or a path on the site), if it is an http(s) one."""
    if not isinstance(value, str) or not value.strip():
        return None
    # %-encoded beyond ASCII: feed validators take URIs, not IRIs
    url = quote(urljoin(base, value.strip()), safe=":/?#[]@!$&'()*+,;=%~")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in url for c in '"<> \n'):
        return None
    guessed, _ = mimetypes.guess_type(parts.path)
    return Media(url, guessed or "")


def _first_image(content_html: str) -> Media | None:
    found = _FIRST_IMG.search(content_html)
    return _media(html.unescape(found.group(1)), "") if found else None


def _line(text: str) -> str:
    """One line of XML-legal text: removing characters can leave runs of spaces behind."""
    return " ".join(strip_illegal(text).split())


def clean_tags(tags: list[str]) -> tuple[str, ...]:
    """Each tag once, in order; none left empty by cleaning (a category needs a term)."""
    return tuple(dict.fromkeys(tag for tag in map(_line, tags) if tag))
