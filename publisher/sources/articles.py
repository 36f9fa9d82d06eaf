"""A feed item (and, with ``full_text``, its page) -> the article the store keeps.

The body goes through the same cleaning as an HTML article file (publisher.ingest.clean:
nh3, then blocks that repeat or are chrome dropped); a page goes through the project's
extractor (publisher.ingest.extract) as an .html file would. The raw bytes kept with each
version are the item as the feed gave it (JSON), and the page as fetched, so cleaning can be
run again on them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import lxml.html
from lxml.etree import ParserError
from slugify import slugify

from publisher.ingest import SUMMARY_CHARS
from publisher.ingest.clean import Body, clean_body
from publisher.ingest.decode import decode, strip_illegal
from publisher.ingest.formats import Draft, read
from publisher.links import REMOTE_KEY_PREFIX, absolute_html
from publisher.sources.parse import Item
from publisher.store import ArticleMeta, NewArticle

FORMAT = "feed"  # articles.format of an article from a remote feed
KEY_PREFIX = REMOTE_KEY_PREFIX  # its key: feed:<source name>/<16 hex digits>


def article_key(source: str, first_identity: str) -> str:
    return f"{KEY_PREFIX}{source}/{hashlib.sha256(first_identity.encode()).hexdigest()[:16]}"


def new_article(
    source: str, key: str, item: Item, *, tags: tuple[str, ...], tz: ZoneInfo, page: tuple[str, bytes] | None = None
) -> NewArticle:
    """The article for ``item``; ``page`` is its article page (URL, bytes) when fetched."""
    title = _title(item)
    body = clean_body(item.content_html, title=title)
    meta = ArticleMeta()
    page_text = None
    if page is not None:
        page_url, page_bytes = page
        page_text = decode(page_bytes, html=True)
        extracted = _extracted(page_bytes, tz)
        if extracted is not None and extracted.body.text.strip():
            body = Body(absolute_html(extracted.body.html, page_url), extracted.body.paragraphs)
            meta = extracted.meta
    if item.link:
        meta["canonical"] = item.link
    title = title or _cut(body.text, 80) or "Untitled"
    raw = json.dumps(
        {"source": source, "item": item.record(), "page": page_text}, sort_keys=True, ensure_ascii=False
    ).encode("utf-8", "surrogatepass")
    return NewArticle(
        key=key,
        slug=slugify(title, max_length=80, word_boundary=True) or slugify(key, max_length=80) or "article",
        title=title,
        summary=_summary(item, body),
        body_html=body.html,
        body_text=body.text,
        author=_plain(item.author) if item.author else None,
        tags=list(dict.fromkeys([*item.tags, *tags])),
        format=FORMAT,
        source_path=item.link or key,
        content_hash=hashlib.sha256(raw).hexdigest(),
        raw=raw,
        published=item.published or item.updated,
        meta=meta,
    )


def _extracted(page: bytes, tz: ZoneInfo) -> Draft | None:
    try:
        return read(Path("page.html"), page, tz)
    except ValueError:
        return None  # not an HTML page: the feed's summary stands


def _title(item: Item) -> str:
    title = item.title
    if item.title_html and title.strip():
        with contextlib.suppress(ParserError, ValueError):  # unreadable markup: the title as written
            title = lxml.html.fragment_fromstring(title, create_parent="div").text_content()
    return _plain(title)


def _summary(item: Item, body: Body) -> str:
    """The feed's summary when it has the content besides, else the first paragraph; cut near 280."""
    if item.has_content and item.summary_html:
        text = clean_body(item.summary_html).text
    else:
        text = next((p for p in body.paragraphs if not p.startswith("- ")), "") or body.text
    return _cut(text, SUMMARY_CHARS)


def _cut(text: str, limit: int) -> str:
    text = _plain(text)
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:.") + "…"


def _plain(text: str) -> str:
    """One line of plain text: a title never carries CR/LF into an email header."""
    return " ".join(strip_illegal(text).split())
