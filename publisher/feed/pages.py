"""The feeds' human pages: ``feeds/index.html`` and ``tags/<slug>.html`` beside each tag feed.

Static HTML, written with the feeds (atomically, only when the bytes change): what a person
who opens the feeds' address sees, with no XSLT (Chromium is removing it) and no script. It
lists the newest entries and the feeds to subscribe to, and carries the autodiscovery
``<link rel="alternate">`` elements that browsers and readers look for. Every string is
escaped: titles and summaries are the articles' own text.
"""

from __future__ import annotations

from html import escape

from publisher.config import Config
from publisher.feed.model import Document

_STYLE = """
body { margin: 0; font-family: Georgia, 'Times New Roman', serif; color: #1f2937; background: #f4f4f5; }
main { max-width: 42rem; margin: 0 auto; padding: 1.5rem; background: #fff; min-height: 100vh; }
.hint { font-family: Helvetica, Arial, sans-serif; font-size: 0.95rem; background: #eff6ff;
  border: 1px solid #bfdbfe; border-radius: 6px; padding: 0.8rem 1rem; margin-bottom: 1.5rem; }
.hint strong { display: block; margin-bottom: 0.3rem; }
.hint code { word-break: break-all; }
h1 { font-size: 2rem; margin: 0 0 0.2rem 0; }
.sub, .feeds, .meta, .tags { font-family: Helvetica, Arial, sans-serif; }
.sub { color: #4b5563; }
.feeds a { margin-right: 0.8rem; }
article { border-top: 1px solid #e5e7eb; padding: 1rem 0; }
article h2 { font-size: 1.3rem; margin: 0 0 0.2rem 0; }
a { color: #1d4ed8; }
article h2 a { color: #111827; text-decoration: none; }
.meta { font-size: 0.85rem; color: #6b7280; }
p.summary { line-height: 1.55; margin: 0.4rem 0 0 0; }
.tags { font-size: 0.9rem; line-height: 1.8; }
"""
_TYPES = {"atom": "application/atom+xml", "rss": "application/rss+xml", "json": "application/feed+json"}
_NAMES = {"atom": "Atom", "rss": "RSS", "json": "JSON Feed"}
_FILES = {"atom": "atom.xml", "rss": "rss.xml", "json": "feed.json"}


def render(config: Config, doc: Document, *, tag_feeds: list[tuple[str, str]] | None = None) -> bytes:
    """The page of ``doc``: the main feeds' (``tag_feeds`` listed: (slug, tag) each) or a tag feed's."""
    site, feed = config.site, config.feed
    if tag_feeds is None:  # a tag feed: Atom only
        feeds = [("atom", doc.url)]
        title = doc.title
    else:
        feeds = [(name, feed.url if name == "atom" else feed.base_url + _FILES[name]) for name in feed.formats]
        title = site.title
    first = feeds[0][1] if feeds else feed.url
    head = [
        "<!doctype html>",
        f'<html lang="{escape(site.language)}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)} (web feed)</title>",
        *(
            f'<link rel="alternate" type="{_TYPES[name]}" title="{escape(title)} ({_NAMES[name]})" '
            f'href="{escape(url)}">'
            for name, url in feeds
        ),
        *([f'<link rel="icon" href="{escape(feed.icon)}">'] if feed.icon else []),
        f"<style>{_STYLE}</style>",
        "</head>",
    ]
    body = [
        "<body>",
        "<main>",
        '<div class="hint"><strong>This is a web feed.</strong>',
        "Subscribe by copying this address into your feed reader: "
        f"<code>{escape(first)}</code>. New articles then come to you, no email or account needed.</div>",
        f"<h1>{escape(title)}</h1>",
        *([f'<p class="sub">{escape(feed.subtitle)}</p>'] if feed.subtitle and tag_feeds is not None else []),
        '<p class="feeds">Subscribe: '
        + " ".join(f'<a href="{escape(url)}" type="{_TYPES[name]}">{_NAMES[name]}</a>' for name, url in feeds)
        + (' · <a href="../index.html">All feeds</a>' if tag_feeds is None else "")
        + f' · <a href="{escape(site.url)}">Visit the website</a></p>',
    ]
    for item in doc.entries:
        lang = f' lang="{escape(item.language)}"' if item.language else ""
        body += [
            f"<article{lang}>",
            f'<h2><a href="{escape(item.url)}">{escape(item.title)}</a></h2>',
            f'<div class="meta">{escape(item.author)} · '
            f'<time datetime="{item.published.isoformat()}">{item.published.astimezone(site.timezone):%Y-%m-%d}</time>'
            "</div>",
            *([f'<p class="summary">{escape(item.summary)}</p>'] if item.summary else []),
            "</article>",
        ]
    if tag_feeds:
        links = " · ".join(
            f'<a href="tags/{escape(slug)}.html">{escape(tag)}</a>'
            for slug, tag in sorted(tag_feeds, key=lambda pair: (pair[1].casefold(), pair[0]))
        )
        body.append(f'<h2 class="tags">Feeds by tag</h2><p class="tags">{links}</p>')
    body += ["</main>", "</body>", "</html>", ""]
    return "\n".join(head + body).encode("utf-8")
