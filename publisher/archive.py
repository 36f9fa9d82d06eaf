"""Every sent digest as a web page: ``issues/<digest id>.html``, an index, and an Atom feed.

The page is the digest's own HTML, as frozen when the digest was made, less what belongs to
one mailbox: the hidden preheader, the "view in browser" line and the unsubscribe line (the
template marks them ``web-hide``). A frozen digest never holds a reader's address or token
(each reader's link is put in at sending), so neither can its page. Pages are written only
for digests in state ``sent`` (:func:`publish`, called once a send was accepted), atomically,
and only when their bytes change, like the feeds; ``publisher serve`` serves them from the
feeds folder.

    feeds/issues/<digest id>.html   one per sent digest
    feeds/issues/index.html         every issue, newest first
    feeds/issues.xml                Atom: the newest issues, whole, ids that never change
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

import lxml.etree
import lxml.html

from publisher.config import Config
from publisher.errors import PublisherError
from publisher.files import write_atomic
from publisher.states import DigestState
from publisher.store import Digest, Store

FOLDER = "issues"
INDEX = "issues/index.html"
FEED = "issues.xml"
FEED_ENTRIES = 20
LISTED = 500  # issues on the index page, newest first
ATOM = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True)
class ArchiveResult:
    written: tuple[str, ...]  # paths under the feeds folder whose bytes changed
    issues: int

    def summary(self) -> str:
        changed = f"{len(self.written)} {'file' if len(self.written) == 1 else 'files'} written"
        return f"archive: {self.issues} {'issue' if self.issues == 1 else 'issues'}, {changed}"


@dataclass(frozen=True)
class Issue:
    id: str
    subject: str
    sent: datetime
    html: str  # the page's whole document


def page_path(digest_id: str) -> str:
    return f"{FOLDER}/{digest_id}.html"


def publish(config: Config, store: Store) -> ArchiveResult:
    """Write the pages of the sent digests, the index and the feed; only changed bytes.

    Raises PublisherError (one line, naming the folder) when the feeds folder cannot be written.
    """
    root = config.feed.dir
    sent = [d for d in store.recent_digests(LISTED) if d.state == DigestState.SENT]
    issues = [issue(config, d) for d in sent]
    written: list[str] = []
    try:
        for item in issues[:FEED_ENTRIES]:  # older pages were written when they were new
            if _write(root / page_path(item.id), item.html.encode()):
                written.append(page_path(item.id))
        for item in issues[FEED_ENTRIES:]:
            if not (root / page_path(item.id)).exists() and _write(root / page_path(item.id), item.html.encode()):
                written.append(page_path(item.id))
        if _write(root / INDEX, index_page(config, issues)):
            written.append(INDEX)
        if _write(root / FEED, feed(config, issues[:FEED_ENTRIES])):
            written.append(FEED)
    except OSError as exc:
        where = exc.filename or root
        raise PublisherError(
            f"archive: cannot write {where}: {exc.strerror or exc} ([feed] dir: free space or fix its rights)"
        ) from None
    return ArchiveResult(written=tuple(written), issues=len(issues))


def _write(path: Path, data: bytes) -> bool:
    return write_atomic(path, data)


def issue(config: Config, digest: Digest) -> Issue:
    """The web copy of one sent digest."""
    message = email.message_from_bytes(digest.message, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(("html",))
    html = str(part.get_content()) if part is not None else "<html><body></body></html>"
    sent = digest.sent_at or digest.created_at
    return Issue(id=digest.id, subject=digest.subject, sent=sent, html=_page(config, digest, html))


def _page(config: Config, digest: Digest, html: str) -> str:
    document = lxml.html.document_fromstring(html)
    for element in _with_class(document, {"preheader", "web-hide"}):
        _drop(element)
    head = document.find("head")
    if head is None:
        head = lxml.html.Element("head")
        document.insert(0, head)
    title = head.find("title")
    if title is None:
        title = lxml.html.Element("title")
        head.append(title)
    title.text = digest.subject
    # The charset first: a browser looks for it in the first 1024 bytes only, and the page's
    # <style> (which css-inline put first) is longer than that.
    for meta in head.findall("meta"):
        if meta.get("charset"):
            head.remove(meta)
    head.insert(0, lxml.html.Element("meta", {"charset": "utf-8"}))
    url = config.feed.base_url + page_path(digest.id)
    head.append(lxml.html.Element("link", {"rel": "canonical", "href": url}))
    feed_link = {"rel": "alternate", "type": "application/atom+xml", "href": config.feed.base_url + FEED}
    head.append(lxml.html.Element("link", {**feed_link, "title": f"{config.site.title}: issues"}))
    body = document.find("body")
    if body is not None:
        nav = lxml.html.fragment_fromstring(
            '<p class="issues-nav" style="margin:0;padding:12px 16px;text-align:center;'
            'font-family:Helvetica,Arial,sans-serif;font-size:13px">'
            f'<a href="index.html" style="color:#1d4ed8">All issues of {escape(config.site.title)}</a></p>'
        )
        body.insert(0, nav)
    return str(lxml.html.tostring(document, doctype="<!DOCTYPE html>", encoding="unicode")) + "\n"


def _with_class(document: lxml.html.HtmlElement, names: set[str]) -> list[lxml.html.HtmlElement]:
    return [e for e in document.iter() if isinstance(e.tag, str) and names & set((e.get("class") or "").split())]


def _drop(element: lxml.html.HtmlElement) -> None:
    """Remove ``element`` and what is in it, keeping the text that follows it."""
    parent = element.getparent()
    if parent is None:
        return
    tail = element.tail or ""
    previous = element.getprevious()
    if previous is not None:
        previous.tail = (previous.tail or "") + tail
    else:
        parent.text = (parent.text or "") + tail
    parent.remove(element)


def index_page(config: Config, issues: list[Issue]) -> bytes:
    """Every issue, newest first: its date and subject, linked to its page."""
    site = escape(config.site.title)
    items = "\n".join(
        f'<li><time datetime="{i.sent.isoformat()}">{i.sent.astimezone(config.digest.timezone):%d %B %Y}</time>'
        f' <a href="{escape(i.id)}.html">{escape(i.subject)}</a></li>'
        for i in issues
    )
    empty = "" if issues else "<p>No issue has been sent yet.</p>"
    page = f"""<!DOCTYPE html>
<html lang="{escape(config.site.language)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Issues · {site}</title>
<link rel="alternate" type="application/atom+xml" href="../{FEED}" title="{site}: issues">
<style>
  body {{ margin: 0; padding: 24px 16px; font-family: Helvetica, Arial, sans-serif;
    background: #f4f4f5; color: #1f2937; }}
  main {{ max-width: 600px; margin: 0 auto; background: #ffffff; padding: 24px 32px; }}
  h1 {{ font-family: Georgia, 'Times New Roman', serif; font-size: 26px; margin: 0 0 16px 0; }}
  ul {{ list-style: none; padding: 0; margin: 0; }}
  li {{ padding: 8px 0; border-top: 1px solid #e5e7eb; line-height: 1.5; }}
  time {{ display: block; font-size: 13px; color: #6b7280; }}
  a {{ color: #1d4ed8; }}
  @media (prefers-color-scheme: dark) {{
    body {{ background: #111827; color: #f3f4f6; }}
    main {{ background: #1f2937; }}
    li {{ border-top-color: #374151; }}
    time {{ color: #9ca3af; }}
    a {{ color: #93c5fd; }}
  }}
</style>
</head>
<body>
<main>
<h1><a href="{escape(config.site.url)}">{site}</a>: issues</h1>
{empty}<ul>
{items}
</ul>
<p><a href="../{FEED}">Atom feed of the issues</a></p>
</main>
</body>
</html>
"""
    return page.encode()


def feed(config: Config, issues: list[Issue]) -> bytes:
    """The Atom feed of the newest issues, each with its whole page as content.

    Entry ids are tag URIs made of the site's host, the issue's day and its digest id: they
    stay the same whatever else changes (the feeds' URL, the subject template).
    """
    host = urlsplit(config.site.url).hostname or "localhost"
    ns = f"{{{ATOM}}}"
    root = lxml.etree.Element(f"{ns}feed", nsmap={None: ATOM})  # type: ignore[dict-item]  # the default namespace
    root.set("{http://www.w3.org/XML/1998/namespace}lang", config.site.language)
    _sub(root, "id", f"tag:{host},2000:issues")
    _sub(root, "title", f"{config.site.title}: issues")
    updated = issues[0].sent if issues else datetime(2000, 1, 1, tzinfo=UTC)
    _sub(root, "updated", updated.isoformat())
    author = _sub(root, "author")
    _sub(author, "name", config.site.author or config.site.title)
    _sub(root, "link", rel="self", href=config.feed.base_url + FEED)
    _sub(root, "link", rel="alternate", type="text/html", href=config.feed.base_url + INDEX)
    for item in issues:
        entry = _sub(root, "entry")
        _sub(entry, "id", f"tag:{host},{item.sent:%Y-%m-%d}:issue/{item.id}")
        _sub(entry, "title", item.subject)
        _sub(entry, "updated", item.sent.isoformat())
        _sub(entry, "published", item.sent.isoformat())
        _sub(entry, "link", rel="alternate", type="text/html", href=config.feed.base_url + page_path(item.id))
        _sub(entry, "content", _content(item.html), type="html")
    return lxml.etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)


def _content(page: str) -> str:
    """The page's body, for a feed reader: the issue without the page's own navigation."""
    document = lxml.html.document_fromstring(page)
    for nav in _with_class(document, {"issues-nav"}):
        _drop(nav)
    body = document.find("body")
    if body is None:
        return ""
    inner = (body.text or "") + "".join(lxml.html.tostring(child, encoding="unicode") for child in body)
    return inner.strip()


def _sub(parent: lxml.etree._Element, tag: str, text: str | None = None, **attributes: str) -> lxml.etree._Element:
    element = lxml.etree.SubElement(parent, f"{{{ATOM}}}{tag}", attributes)
    if text is not None:
        element.text = xml_text(text)
    return element


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (a title may carry any)."""
    return _NOT_XML.sub("", text)
