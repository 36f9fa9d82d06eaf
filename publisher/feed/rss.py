"""A :class:`Document` as RSS 2.0, with the Atom, content, Media RSS and iTunes extensions.

Each item has ``title``, ``link``, ``description`` (the summary, as HTML: the plain summary
escaped), ``content:encoded`` (the HTML, unless [feed] content = "summary"), ``dc:creator``
(RSS's own ``author`` must be an email address), ``category``, ``pubDate`` (RFC 822), a
``guid`` (the same permanent id as the Atom entry, so ``isPermaLink="false"``), its lead
image as ``media:content``/``media:thumbnail``, and one ``enclosure``: the audio if the
article has some (a podcast episode), else the lead image. The channel links itself with
``atom:link rel="self"`` (and its hubs with ``rel="hub"``), which feedgen writes only partly.

Plain-text elements (titles, the channel description, categories, creators) carry ``&`` and
``<`` as the character references ``&#x26;`` and ``&#x3C;``, as the RSS Advisory Board's
profile and the W3C validator ask: the reader then cannot take them for markup or entities.
"""

from __future__ import annotations

import html
import re

from feedgen.feed import FeedGenerator
from lxml import etree

from publisher import __version__
from publisher.config import Config
from publisher.feed.atom import with_namespaces
from publisher.feed.model import Document, Entry

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_NS = "http://search.yahoo.com/mrss/"
ITUNES_NS = "http://www.itunes.com/dtds/podcast-1.0.dtd"
MEDIA_TYPE = "application/rss+xml"
# Elements whose text is plain: their & and < are written as character references.
_PLAIN = re.compile(
    rb"(<(title|description|category|dc:creator|generator|copyright|media:description|itunes:[a-z]+)(?: [^>]*)?>)"
    rb"([^<]*)(</\2>)"
)


def render(config: Config, doc: Document) -> bytes:
    site, feed = config.site, config.feed
    fg = FeedGenerator()
    fg.load_extension("dc", atom=False, rss=True)
    podcast = feed.podcast and any(item.audio is not None for item in doc.entries)
    if podcast:
        fg.load_extension("podcast", atom=False, rss=True)
        fg.podcast.itunes_author(site.author)
        fg.podcast.itunes_explicit("yes" if feed.podcast_explicit else "no")  # true/false below: Apple's today
        fg.podcast.itunes_owner(name=site.author, email=feed.podcast_email)
        fg.podcast.itunes_summary(feed.subtitle or f"The newest articles from {site.title}")
        if feed.podcast_category:
            fg.podcast.itunes_category({"cat": feed.podcast_category})
        if feed.logo:
            fg.podcast.itunes_image(feed.logo)
    fg.title(doc.title)
    fg.link(href=doc.url, rel="self")
    fg.link(href=site.url, rel="alternate")  # feedgen makes the last link the channel's <link>
    fg.description(feed.subtitle or f"The newest articles from {site.title}")
    fg.language(site.language)
    fg.generator(f"publisher {__version__}")
    if feed.rights:
        fg.copyright(feed.rights)
    if feed.logo:
        fg.image(url=feed.logo, title=doc.title, link=site.url)
    fg.lastBuildDate(doc.updated)
    fg.pubDate(doc.updated)
    for item in doc.entries:
        entry = fg.add_entry(order="append")
        entry.title(item.title)
        entry.link(href=item.url)
        entry.guid(item.id, permalink=False)
        # <description> is HTML to every reader; the summary is plain text.
        entry.description(html.escape(item.summary, quote=False))
        if feed.content == "full":
            entry.content(item.content_html)
        entry.published(item.published)
        entry.dc.dc_creator(item.author)
        for tag in item.tags:
            entry.category(term=tag)
        enclosure = item.audio or (item.image if item.image is not None and item.image.type else None)
        if enclosure is not None:
            entry.enclosure(enclosure.url, str(enclosure.length), enclosure.type)
        if podcast and item.audio is not None:
            entry.podcast.itunes_author(item.author)
            if item.audio.duration:
                entry.podcast.itunes_duration(item.audio.duration)
    return _finish(fg.rss_str(pretty=True), doc, stylesheet=feed.stylesheet)


def _finish(document: bytes, doc: Document, *, stylesheet: bool) -> bytes:
    # huge_tree: an article's text over 10 MB is still one text node that must parse.
    root = etree.fromstring(document, etree.XMLParser(huge_tree=True))
    if any(item.image is not None for item in doc.entries):
        root = with_namespaces(root, {"media": MEDIA_NS})
    channel = root.find("channel")
    assert channel is not None
    for link in channel.iterfind(f"{{{ATOM_NS}}}link"):
        link.set("type", MEDIA_TYPE)
    anchor = channel.find(f"{{{ATOM_NS}}}link")
    for hub in reversed(doc.hubs):
        element = etree.Element(f"{{{ATOM_NS}}}link", href=hub, rel="hub")
        if anchor is not None:
            anchor.addnext(element)
        else:
            channel.append(element)
    for element, item in zip(channel.iterfind("item"), doc.entries, strict=True):
        _images(element, item)
    for explicit in channel.iterfind(f"{{{ITUNES_NS}}}explicit"):  # feedgen knows only yes/no/clean
        explicit.text = "true" if explicit.text == "yes" else "false"
    if stylesheet:
        root.addprevious(etree.ProcessingInstruction("xml-stylesheet", f'type="text/xsl" href="{doc.stylesheet_href}"'))
    etree.indent(root, space="  ")
    data: bytes = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return _PLAIN.sub(_references, data)


def _references(match: re.Match[bytes]) -> bytes:
    text = match.group(3).replace(b"&amp;", b"&#x26;").replace(b"&lt;", b"&#x3C;")
    return match.group(1) + text + match.group(4)


def _images(element: etree._Element, item: Entry) -> None:
    if item.image is None:
        return
    attributes = {"url": item.image.url, "medium": "image"}
    if item.image.type:
        attributes["type"] = item.image.type
    content = etree.SubElement(element, f"{{{MEDIA_NS}}}content", attributes)
    if item.image_alt:
        etree.SubElement(content, f"{{{MEDIA_NS}}}description").text = item.image_alt
    etree.SubElement(element, f"{{{MEDIA_NS}}}thumbnail", url=item.image.url)
