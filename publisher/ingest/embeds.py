"""Embedded frames (a video, a map, a post) as links to what they show.

Sanitizing drops every <iframe>: a frame runs the other site's page inside ours. A reader of
the feed or the email should still learn that the article showed a video there, so a frame
with an http(s) address becomes a paragraph with a link to that address, "Video: <site>" where
the frame says it plays video (its address, or ``allowfullscreen``), else "Embedded content:
<site>". The site's name, not the whole address: the email's text part lists the address
under the text, as it does for every link.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import lxml.html
from lxml.etree import ParserError

from publisher.ingest.decode import strip_illegal

_FRAME = re.compile(r"<iframe\b", re.IGNORECASE)
_VIDEO = re.compile(r"video|youtube|youtu\.be|vimeo|dailymotion|twitch|wistia|brightcove|jwplayer|player", re.I)
# Where a link may stand as a paragraph of its own; elsewhere (inside a <p>, a <span>) the
# link takes the frame's place in the line.
_BLOCK_PARENTS = {"div", "section", "article", "main", "body", "figure", "li", "td", "th", "blockquote", "center"}
_SOURCES = ("src", "data-src", "data-lazy-src")  # lazy loading scripts move the address


def source(frame: lxml.html.HtmlElement) -> str | None:
    """The frame's http(s) address, or None (about:blank, javascript:, a relative path)."""
    for name in _SOURCES:
        url = (frame.get(name) or "").strip()
        if url.startswith("//"):
            url = "https:" + url  # protocol-relative, as embed codes often are
        if url.lower().startswith(("http://", "https://")) and urlsplit(url).hostname:
            return url
    return None


def is_video(frame: lxml.html.HtmlElement) -> bool:
    """A player: its address says so, or it asks to go full screen (an advert never does)."""
    url = source(frame) or ""
    return bool(
        _VIDEO.search(url) or frame.get("allowfullscreen") is not None or "fullscreen" in (frame.get("allow") or "")
    )


def frames_as_links(html: str) -> str:
    """``html`` with each http(s) <iframe> replaced by a link to its address."""
    if not _FRAME.search(html):
        return html
    try:
        root = lxml.html.fragment_fromstring(strip_illegal(html), create_parent="div")
    except (ParserError, ValueError):
        return html  # sanitizing drops the frames
    for frame in list(root.iter("iframe")):
        url = source(frame)
        if url is None:
            continue  # sanitizing drops it
        link = lxml.html.Element("a", href=url)
        host = str(urlsplit(url).hostname).removeprefix("www.")
        link.text = f"Video: {host}" if is_video(frame) else f"Embedded content: {host}"
        replacement = link
        parent = frame.getparent()
        if parent is root or (parent is not None and parent.tag in _BLOCK_PARENTS):
            replacement = lxml.html.Element("p")
            replacement.append(link)
        replacement.tail = frame.tail
        if parent is not None:
            parent.replace(frame, replacement)
    parts = [root.text or ""]
    parts.extend(lxml.html.tostring(child, encoding="unicode") for child in root)
    return "".join(parts)
