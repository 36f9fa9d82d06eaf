"""A :class:`Document` as Atom 1.0 (RFC 4287), with RFC 5005 archive markup where it has any.

feedgen 1.0.0 builds the document; its traps are handled here:
- ``add_entry`` prepends by default, so entries are added with ``order="append"``;
- entry links lose ``rel`` and ``type`` (a variable is shadowed in ``atom_entry``), so entry
  links are written on the generated tree instead, together with what feedgen cannot write
  at all (the xml-stylesheet instruction, ``fh:archive``, an entry's ``xml:lang``, Media RSS);
- ``updated`` would be "now" and change the file on every run: it is the newest entry's.
Naive datetimes and XML-illegal characters cannot reach it: the store returns aware
datetimes, and :func:`publisher.feed.model.entry` cleans every string.

Each document has its own ``atom:id`` (RFC 4287: one per feed): the main feed's is its URL
as ever, a tag feed's or an archive month's is its own URL.
"""

from __future__ import annotations

from typing import Any

from feedgen.feed import FeedGenerator
from lxml import etree

from publisher import __version__
from publisher.config import Config
from publisher.feed.model import Document, Entry

ATOM_NS = "http://www.w3.org/2005/Atom"
HISTORY_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005
MEDIA_NS = "http://search.yahoo.com/mrss/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
MEDIA_TYPE = "application/atom+xml"


def render(config: Config, doc: Document) -> bytes:
    site, feed = config.site, config.feed
    fg = FeedGenerator()
    fg.id(doc.feed_id or feed.url)
    fg.title(doc.title)
    fg.author({"name": site.author})
    fg.link(href=doc.url, rel="self", type=MEDIA_TYPE)
    fg.link(href=site.url, rel="alternate", type="text/html")
    for rel, href in doc.links:
        fg.link(href=href, rel=rel, type=MEDIA_TYPE)
    for hub in doc.hubs:
        fg.link(href=hub, rel="hub")
    fg.language(site.language)
    fg.generator("publisher", version=__version__, uri=feed.generator_uri or None)
    if feed.subtitle:
        fg.subtitle(feed.subtitle)
    if feed.rights:
        fg.rights(feed.rights)
    if feed.icon:
        fg.icon(feed.icon)
    if feed.logo:
        fg.logo(feed.logo)
    fg.updated(doc.updated)
    for item in doc.entries:
        entry = fg.add_entry(order="append")
        entry.id(item.id)
        entry.title(item.title)
        entry.published(item.published)
        entry.updated(item.updated)
        entry.author({"name": item.author})
        entry.summary(item.summary)
        if feed.content == "full":
            entry.content(item.content_html, type="html")
        for tag in item.tags:
            entry.category(term=tag)
    return _finish(fg.atom_str(pretty=True), doc, stylesheet=feed.stylesheet)


def _finish(document: bytes, doc: Document, *, stylesheet: bool) -> bytes:
    # huge_tree: an article's text over 10 MB is still one text node that must parse.
    root = etree.fromstring(document, etree.XMLParser(huge_tree=True))
    media = any(item.image is not None for item in doc.entries)
    if media or doc.archive:
        nsmap = {**({"fh": HISTORY_NS} if doc.archive else {}), **({"media": MEDIA_NS} if media else {})}
        root = with_namespaces(root, nsmap)
    for element, item in zip(root.iterfind(f"{{{ATOM_NS}}}entry"), doc.entries, strict=True):
        _entry_extras(element, item)
    if doc.archive:
        marker = etree.Element(f"{{{HISTORY_NS}}}archive")
        first_entry = root.find(f"{{{ATOM_NS}}}entry")
        if first_entry is not None:
            first_entry.addprevious(marker)
        else:
            root.append(marker)
    if stylesheet:
        root.addprevious(etree.ProcessingInstruction("xml-stylesheet", f'type="text/xsl" href="{doc.stylesheet_href}"'))
    etree.indent(root, space="  ")
    data: bytes = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data


def with_namespaces(root: etree._Element, extra: dict[str, str]) -> etree._Element:
    """``root`` again, declaring ``extra`` prefixes at the top (lxml cannot add them in place)."""
    nsmap: Any = {**root.nsmap, **extra}  # the default namespace's key is None, which the stubs refuse
    attributes = {str(name): str(value) for name, value in root.attrib.items()}
    new = etree.Element(root.tag, attributes, nsmap=nsmap)
    new.text = root.text
    for child in root:
        new.append(child)
    return new


def _entry_extras(element: etree._Element, item: Entry) -> None:
    """What feedgen leaves out of an entry: its links, its language, its lead image."""
    if item.language:
        element.set(XML_LANG, item.language)
    anchor = element.find(f"{{{ATOM_NS}}}summary")
    extras = [etree.Element(f"{{{ATOM_NS}}}link", href=item.url, rel="alternate", type="text/html")]
    if item.audio is not None:
        audio = {"href": item.audio.url, "rel": "enclosure", "type": item.audio.type}
        if item.audio.length:
            audio["length"] = str(item.audio.length)
        extras.append(etree.Element(f"{{{ATOM_NS}}}link", audio))
    if item.image is not None:
        attributes = {"url": item.image.url, "medium": "image"}
        if item.image.type:
            attributes["type"] = item.image.type
        content = etree.Element(f"{{{MEDIA_NS}}}content", attributes)
        if item.image_alt:
            etree.SubElement(content, f"{{{MEDIA_NS}}}description").text = item.image_alt
        extras += [content, etree.Element(f"{{{MEDIA_NS}}}thumbnail", url=item.image.url)]
    for extra in extras:
        if anchor is not None:
            anchor.addprevious(extra)
        else:
            element.append(extra)
