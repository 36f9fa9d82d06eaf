"""A :class:`Document` as JSON Feed 1.1 (https://jsonfeed.org/version/1.1).

Authors are given both ways: 1.1's ``authors`` list and 1.0's single ``author``, which
readers that know only 1.0 (feedparser's JSON parser among them) read; the 1.1 spec allows
both. Each item carries its lead image (``image``), its audio as an ``attachments`` entry,
and its language when it has its own.
"""

from __future__ import annotations

import json
from typing import Any

from publisher.config import Config
from publisher.feed.model import Document, Entry

VERSION = "https://jsonfeed.org/version/1.1"
MEDIA_TYPE = "application/feed+json"


def render(config: Config, doc: Document) -> bytes:
    site, settings = config.site, config.feed
    feed: dict[str, Any] = {
        "version": VERSION,
        "title": doc.title,
        "home_page_url": site.url,
        "feed_url": doc.url,
        "description": settings.subtitle or f"The newest articles from {site.title}",
        "language": site.language,
        "author": {"name": site.author},
        "authors": [{"name": site.author}],
    }
    if settings.logo or settings.icon:
        feed["icon"] = settings.logo or settings.icon  # 512x512 in the spec's words: the larger one
    if settings.icon:
        feed["favicon"] = settings.icon
    if doc.hubs:
        feed["hubs"] = [{"type": "WebSub", "url": hub} for hub in doc.hubs]
    feed["items"] = [_item(item, full=settings.content == "full") for item in doc.entries]
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _item(item: Entry, *, full: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"id": item.id, "url": item.url, "title": item.title}
    if full:
        data["content_html"] = item.content_html
    else:
        data["content_text"] = item.summary
    data["summary"] = item.summary
    if item.image is not None:
        data["image"] = item.image.url
    data["date_published"] = item.published.isoformat()
    data["date_modified"] = item.updated.isoformat()
    data["author"] = {"name": item.author}
    data["authors"] = [{"name": item.author}]
    data["tags"] = list(item.tags)
    if item.language:
        data["language"] = item.language
    if item.audio is not None:
        attachment: dict[str, Any] = {"url": item.audio.url, "mime_type": item.audio.type}
        if item.audio.length:
            attachment["size_in_bytes"] = item.audio.length
        seconds = _seconds(item.audio.duration)
        if seconds:
            attachment["duration_in_seconds"] = seconds
        data["attachments"] = [attachment]
    return data


def _seconds(duration: str) -> int:
    """ "1:02:03", "62:03" or "3723" -> seconds; 0 if it is none of those."""
    parts = duration.split(":")
    if not duration or len(parts) > 3 or not all(part.isdigit() for part in parts):
        return 0
    total = 0
    for part in parts:
        total = total * 60 + int(part)
    return total
