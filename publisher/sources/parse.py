"""A feed document -> its items, whatever the format.

RSS 0.9x, 1.0 and 2.0 and Atom are read by feedparser, which also resolves relative links
against ``xml:base`` and the feed's URL. JSON Feed (https://jsonfeed.org/version/1.1), which
feedparser does not read, is read here with json as its spec says. HTML is kept as the feed
gives it (feedparser's own sanitizer is off): publisher cleans it with nh3, as for any article.

A document that is not well-formed is refused whole (:class:`ParseError`) rather than read by
feedparser's forgiving parser: a truncated feed would otherwise bring half an item, which the
next fetch would then "edit". The next fetch tries again.
"""

from __future__ import annotations

import calendar
import html
import io
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from publisher.links import absolute_html


class ParseError(Exception):
    """The document is no feed publisher can read; ``str()`` is one line."""


@dataclass(frozen=True)
class Item:
    """One item of a feed, as the feed gives it."""

    guid: str | None
    link: str | None  # absolute http(s), or None
    title: str  # may hold markup when ``title_html``
    content_html: str  # the fullest HTML the feed has: its content, else its summary
    summary_html: str | None
    has_content: bool  # False: the feed carries only a summary (or nothing) of this item
    published: datetime | None
    updated: datetime | None
    author: str | None = None
    tags: list[str] = field(default_factory=list)
    title_html: bool = False

    def record(self) -> dict[str, Any]:
        """The item as JSON-able data, dates as ISO 8601."""
        data = asdict(self)
        for key in ("published", "updated"):
            data[key] = data[key].isoformat() if data[key] is not None else None
        return data


def parse(body: bytes, url: str, content_type: str = "") -> list[Item]:
    """The items of the feed ``body`` fetched from ``url``, in document order."""
    # By the document, not its Content-Type, which servers often get wrong: XML never starts with "{".
    if body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{":
        return _json_feed(body, url)
    parsed = feedparser.parse(
        io.BytesIO(body),
        response_headers={"content-location": url, "content-type": content_type or "application/xml"},
        sanitize_html=False,
        resolve_relative_uris=True,
    )
    problem = parsed.get("bozo_exception")
    if parsed.get("bozo") and not isinstance(problem, feedparser.ThingsNobodyCaresAboutButMe):
        raise ParseError(f"not well-formed XML ({_one_line(problem)})")
    if not parsed.get("version"):
        raise ParseError("not an RSS, Atom or JSON feed")
    return [_entry(entry) for entry in parsed.entries]


def _entry(entry: Any) -> Item:
    content = [c for c in entry.get("content", []) if c.get("value", "").strip()]
    summary = entry.get("summary_detail") if entry.get("summary", "").strip() else None
    body = content[0] if content else summary
    title_detail = entry.get("title_detail") or {}
    return Item(
        guid=_text(entry.get("id")),
        link=_http(entry.get("link")),
        title=entry.get("title", "") or "",
        title_html="html" in (title_detail.get("type") or ""),
        content_html=_as_html(body) if body else "",
        summary_html=_as_html(summary) if summary else None,
        has_content=bool(content),
        published=_when(entry.get("published_parsed")),
        # `in` first: feedparser's get() would answer with published_parsed, and warn.
        updated=_when(entry["updated_parsed"]) if "updated_parsed" in entry else None,
        author=_text(entry.get("author")),
        tags=[t for tag in entry.get("tags", []) if (t := _text(tag.get("term")))],
    )


def _as_html(detail: Any) -> str:
    value = str(detail.get("value", ""))
    if "html" in (detail.get("type") or "text/html"):
        return value
    return _paragraphs(value)


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{html.escape(p.strip())}</p>" for p in text.split("\n\n") if p.strip())


def _when(parsed: Any) -> datetime | None:
    """feedparser's time tuple (UTC) as an aware datetime."""
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _text(value: Any) -> str | None:
    text = " ".join(str(value).split()) if value is not None else ""
    return text or None


def _http(value: Any) -> str | None:
    link = _text(value)
    if link and urlsplit(link).scheme in ("http", "https") and urlsplit(link).netloc:
        return link
    return None


def _one_line(problem: object) -> str:
    return " ".join(str(problem).split())[:200] or type(problem).__name__


# -- JSON Feed ------------------------------------------------------------------------------


def _json_feed(body: bytes, url: str) -> list[Item]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"not valid JSON ({_one_line(exc)})") from None
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str) or not version.startswith("https://jsonfeed.org/version/"):
        raise ParseError("JSON without a JSON Feed version (https://jsonfeed.org/version/1.1)")
    items = doc.get("items")
    if not isinstance(items, list):
        raise ParseError("JSON Feed without an items list")
    base = _http(doc.get("feed_url")) or url
    feed_author = _author(doc)
    return [_json_item(item, base, feed_author) for item in items if isinstance(item, dict)]


def _json_item(item: dict[str, Any], base: str, feed_author: str | None) -> Item:
    guid = item.get("id")
    link = _http(urljoin(base, item["url"])) if isinstance(item.get("url"), str) else None
    if isinstance(item.get("content_html"), str) and item["content_html"].strip():
        content = item["content_html"]
    elif isinstance(item.get("content_text"), str):
        content = _paragraphs(item["content_text"])
    else:
        content = ""
    summary = _paragraphs(item["summary"]) if isinstance(item.get("summary"), str) and item["summary"] else None
    tags: list[Any] = item["tags"] if isinstance(item.get("tags"), list) else []
    return Item(
        guid=_text(guid) if isinstance(guid, str | int) and not isinstance(guid, bool) else None,
        link=link,
        title=item["title"] if isinstance(item.get("title"), str) else "",
        content_html=absolute_html(content, link or base) if content else (summary or ""),
        summary_html=summary,
        has_content=bool(content.strip()),
        published=_iso(item.get("date_published")),
        updated=_iso(item.get("date_modified")),
        author=_author(item) or feed_author,
        tags=[t for tag in tags if isinstance(tag, str) and (t := _text(tag))],
    )


def _author(data: dict[str, Any]) -> str | None:
    """JSON Feed 1.1's first of ``authors``, or 1.0's ``author``."""
    authors = data.get("authors")
    first = authors[0] if isinstance(authors, list) and authors else data.get("author")
    return _text(first.get("name")) if isinstance(first, dict) and isinstance(first.get("name"), str) else None


def _iso(value: Any) -> datetime | None:
    """An RFC 3339 date; one without an offset is taken as UTC."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
