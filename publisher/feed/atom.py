"""A :class:`Document` as Atom 1.0 (RFC 4287), with RFC 5005 archive markup where it has any.

feedgen 1.0.0 builds the document; its traps are handled here:
- ``add_entry`` prepends by default, so entries are added with ``order="append"``;
- entry links lose ``rel`` and ``type`` (a variable is shadowed in ``atom_entry``), so they
  are put back on the generated tree, together with what feedgen cannot write at all (the
  xml-stylesheet instruction, ``fh:archive``);
- ``updated`` would be "now" and change the file on every run: it is the newest entry's.
Naive datetimes and XML-illegal characters cannot reach it: the store returns aware
datetimes, and :func:`publisher.feed.model.entry` cleans every string.
"""

from __future__ import annotations

from feedgen.feed import FeedGenerator
from lxml import etree

from publisher import __version__
from publisher.config import Config
from publisher.feed.model import Document

ATOM_NS = "http://www.w3.org/2005/Atom"
HISTORY_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005
MEDIA_TYPE = "application/atom+xml"


def render(config: Config, doc: Document) -> bytes:
    site = config.site
    fg = FeedGenerator()
    fg.id(config.feed.url)  # one logical feed: its archive documents share the id
    fg.title(doc.title)
    fg.author({"name": site.author})
    fg.link(href=doc.url, rel="self", type=MEDIA_TYPE)
    fg.link(href=site.url, rel="alternate", type="text/html")
    for rel, href in doc.links:
        fg.link(href=href, rel=rel, type=MEDIA_TYPE)
    for hub in doc.hubs:
        fg.link(href=hub, rel="hub")
    fg.language(site.language)
    fg.generator("publisher", version=__version__)
    fg.updated(doc.updated)
    for item in doc.entries:
        entry = fg.add_entry(order="append")
        entry.id(item.id)
        entry.title(item.title)
        entry.published(item.published)
        entry.updated(item.updated)
        entry.author({"name": item.author})
        entry.link(href=item.url, rel="alternate", type="text/html")
        entry.summary(item.summary)
        entry.content(item.content_html, type="html")
        for tag in item.tags:
            entry.category(term=tag)
    return _finish(fg.atom_str(pretty=True), doc, stylesheet=config.feed.stylesheet)


def _finish(document: bytes, doc: Document, *, stylesheet: bool) -> bytes:
    # huge_tree: an article's text over 10 MB is still one text node that must parse.
    root = etree.fromstring(document, etree.XMLParser(huge_tree=True))
    for link in root.iterfind(f"{{{ATOM_NS}}}entry/{{{ATOM_NS}}}link"):
        link.set("rel", "alternate")  # the only link we give entries
        link.set("type", "text/html")
    if doc.archive:
        marker = etree.Element(f"{{{HISTORY_NS}}}archive", nsmap={"fh": HISTORY_NS})
        first_entry = root.find(f"{{{ATOM_NS}}}entry")
        if first_entry is not None:
            first_entry.addprevious(marker)
        else:
            root.append(marker)
        etree.cleanup_namespaces(root, top_nsmap={"fh": HISTORY_NS})
    if stylesheet:
        root.addprevious(etree.ProcessingInstruction("xml-stylesheet", f'type="text/xsl" href="{doc.stylesheet_href}"'))
    data: bytes = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data
