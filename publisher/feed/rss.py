"""A :class:`Document` as RSS 2.0, with the Atom and content-module extensions readers expect.

Each item has ``title``, ``link``, ``description`` (the summary), ``content:encoded`` (the
HTML), ``dc:creator`` (RSS's own ``author`` must be an email address), ``category``,
``pubDate`` (RFC 822) and a ``guid``: the same permanent tag: id as the Atom entry, so
``isPermaLink="false"``. The channel links itself with ``atom:link rel="self"`` (and its
hubs with ``rel="hub"``), which feedgen writes only partly.
"""

from __future__ import annotations

import html

from feedgen.feed import FeedGenerator
from lxml import etree

from publisher import __version__
from publisher.config import Config
from publisher.feed.model import Document

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_TYPE = "application/rss+xml"


def render(config: Config, doc: Document) -> bytes:
    site = config.site
    fg = FeedGenerator()
    fg.load_extension("dc", atom=False, rss=True)
    fg.title(doc.title)
    fg.link(href=doc.url, rel="self")
    fg.link(href=site.url, rel="alternate")  # feedgen makes the last link the channel's <link>
    fg.description(f"The newest articles from {site.title}")
    fg.language(site.language)
    fg.generator(f"publisher {__version__}")
    fg.lastBuildDate(doc.updated)
    fg.pubDate(doc.updated)
    for item in doc.entries:
        entry = fg.add_entry(order="append")
        entry.title(item.title)
        entry.link(href=item.url)
        entry.guid(item.id, permalink=False)
        # <description> is HTML to every reader; the summary is plain text.
        entry.description(html.escape(item.summary, quote=False))
        entry.content(item.content_html)
        entry.published(item.published)
        entry.dc.dc_creator(item.author)
        for tag in item.tags:
            entry.category(term=tag)
    return _finish(fg.rss_str(pretty=True), doc, stylesheet=config.feed.stylesheet)


def _finish(document: bytes, doc: Document, *, stylesheet: bool) -> bytes:
    # huge_tree: an article's text over 10 MB is still one text node that must parse.
    root = etree.fromstring(document, etree.XMLParser(huge_tree=True))
    channel = root.find("channel")
    assert channel is not None
    for link in channel.iterfind(f"{{{ATOM_NS}}}link"):
        link.set("type", MEDIA_TYPE)
    anchor = channel.find(f"{{{ATOM_NS}}}link")
    for hub in reversed(doc.hubs):
        element = etree.Element(f"{{{ATOM_NS}}}link", href=hub, rel="hub")
        if anchor is not None:
            element.tail = anchor.tail  # keep the pretty-printed layout
            anchor.addnext(element)
        else:
            channel.append(element)
    if stylesheet:
        root.addprevious(etree.ProcessingInstruction("xml-stylesheet", f'type="text/xsl" href="{doc.stylesheet_href}"'))
    data: bytes = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data
