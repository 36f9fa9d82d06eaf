"""A :class:`Document` as JSON Feed 1.1 (https://jsonfeed.org/version/1.1)."""

from __future__ import annotations

import json
from typing import Any

from publisher.config import Config
from publisher.feed.model import Document

VERSION = "https://jsonfeed.org/version/1.1"
MEDIA_TYPE = "application/feed+json"


def render(config: Config, doc: Document) -> bytes:
    site = config.site
    feed: dict[str, Any] = {
        "version": VERSION,
        "title": doc.title,
        "home_page_url": site.url,
        "feed_url": doc.url,
        "language": site.language,
        "authors": [{"name": site.author}],
    }
    if doc.hubs:
        feed["hubs"] = [{"type": "WebSub", "url": hub} for hub in doc.hubs]
    feed["items"] = [
        {
            "id": item.id,
            "url": item.url,
            "title": item.title,
            "content_html": item.content_html,
            "summary": item.summary,
            "date_published": item.published.isoformat(),
            "date_modified": item.updated.isoformat(),
            "authors": [{"name": item.author}],
            "tags": list(item.tags),
        }
        for item in doc.entries
    ]
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
