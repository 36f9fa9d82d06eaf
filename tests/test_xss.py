"""Untrusted HTML never runs: known XSS payloads through ``publisher run``, and every artifact read back.

Each ``tests/cases/xss/<name>.html`` or ``.md`` holds one class of payload (its leading comment
says which) next to two ordinary paragraphs, and is a test of its own: a new file is picked up
by itself. The case goes through ``publisher run`` with a later article beside it, then
``publisher feed`` with one entry per feed, so that it reaches every document: atom.xml,
rss.xml, feed.json, tags/security.xml, an archive/YYYY-MM.xml, and the digest in the outbox.

Wherever the case's content is HTML (Atom content, RSS description and content:encoded, JSON
Feed content_html, the digest's HTML part) it is parsed twice, with lxml (libxml2) and with the
stdlib's html.parser (an HTML5 tokenizer), so that a parser difference cannot hide a payload:

- no script, style, iframe, frame, object, embed, applet, form or form control, base, meta,
  link, svg, math, template or noscript element;
- no ``on*`` attribute, no ``srcdoc``;
- no URL attribute (href, src, action, formaction, xlink:href, srcset...) whose scheme, once
  the characters browsers skip are gone (whitespace and controls; the parser has decoded the
  entities), is javascript, vbscript, livescript or data. Not even ``data:image`` in an img:
  an SVG image can carry script, mail clients block data: images anyway, and the sanitizer
  allows http, https, mailto and tel only, so that decision is the simpler safe one;
- no style attribute with ``expression(``, a script URL, a behavior, ``-moz-binding`` or
  ``@import``.

Titles and summaries are text: Atom's must say so (``type="text"``), JSON Feed's are text by
definition. The digest's own template has a <style> and <meta> elements in <head>: the head
must equal the head of a digest without the payload, and only <body> is checked element by
element. In the text part, every URL in the link lists must be http, https, mailto or tel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import lxml.html
import pytest
from lxml import etree

from tests.conftest import Project
from tests.feedcheck import ATOM_NS, CONTENT_NS, check_feed_folder
from tests.test_hostile_input import check_message, fresh_project, messages, parts

CASES = sorted(p for p in (Path(__file__).parent / "cases" / "xss").iterdir() if p.suffix in (".html", ".md"))
A = f"{{{ATOM_NS}}}"
MARKER = "Readers should still see this paragraph about"  # in every case, before the payload
LATER = "---\ntitle: A later story\ndate: 2026-11-24\n---\nA story dated later than every case.\n"
# The cases are first seen (dated) the day before the later story; the run publishes them all
# once its date has come (an article dated after it was first seen waits for its date).
SEEN, LATER_RUN = {"PUBLISHER_NOW": "2026-11-23T06:30:00Z"}, {"PUBLISHER_NOW": "2026-11-24T06:30:00Z"}

FORBIDDEN_ELEMENTS = {
    *("script", "noscript", "template", "style", "link", "meta", "base"),
    *("iframe", "frame", "frameset", "object", "embed", "applet", "param", "portal"),
    *("form", "input", "button", "textarea", "select", "option", "isindex", "keygen"),
    *("svg", "math"),
}
URL_ATTRIBUTES = {
    *("href", "src", "action", "formaction", "xlink:href", "data", "codebase", "cite", "poster"),
    *("background", "longdesc", "lowsrc", "dynsrc", "ping", "manifest", "icon", "usemap", "archive", "classid"),
}
SCRIPT_SCHEMES = {"javascript", "vbscript", "livescript", "mocha", "data"}
SAFE_LINK_SCHEMES = {"http", "https", "mailto", "tel"}
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):", re.IGNORECASE)
_STYLE_DANGER = ("expression(", "javascript:", "vbscript:", "behavior:", "-moz-binding", "@import", "url(data:")


# -- what "cannot run anything" means ---------------------------------------------------------


def script_url(value: str) -> bool:
    """True when a browser would take ``value`` (entities already decoded) as a script URL."""
    url = re.sub(r"[\x00-\x20\x7f]", "", value)  # browsers skip these around a URL, and tab/LF inside it
    scheme = _SCHEME.match(url)
    return scheme is not None and scheme.group(1).lower() in SCRIPT_SCHEMES


def script_style(value: str) -> bool:
    css = re.sub(r"/\*.*?\*/", "", value, flags=re.DOTALL)
    css = re.sub(r"\\([0-9a-fA-F]{1,6})\s?", lambda m: chr(int(m.group(1), 16)), css)  # CSS escapes
    css = re.sub(r"[\s\\\"']", "", css).lower()
    return any(danger in css for danger in _STYLE_DANGER)


def problems(tag: str, attributes: list[tuple[str, str | None]]) -> list[str]:
    """What is wrong with one element: a forbidden tag, a handler, a script URL, a style."""
    found = [f"<{tag}> element"] if tag.lower() in FORBIDDEN_ELEMENTS else []
    for name, value in attributes:
        name, value = name.lower(), value or ""
        if name.startswith("on") or name == "srcdoc":
            found.append(f"<{tag} {name}=...>")
        elif name in URL_ATTRIBUTES and script_url(value):
            found.append(f"<{tag} {name}={value!r}>")
        elif name == "srcset" and any(script_url(candidate.strip()) for candidate in value.split(",")):
            found.append(f"<{tag} srcset={value!r}>")
        elif name == "style" and script_style(value):
            found.append(f"<{tag} style={value!r}>")
    return found


class _Tags(HTMLParser):
    """Every start tag and its attributes as an HTML5 tokenizer reads them (after <body> only, if asked)."""

    def __init__(self, *, from_body: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.in_body = not from_body
        self.head: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.body: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.in_body = self.in_body or tag == "body"
        (self.body if self.in_body else self.head).append((tag, attrs))

    handle_startendtag = handle_starttag


def _lxml_problems(root: lxml.html.HtmlElement) -> list[str]:
    found = []
    for element in root.iter():
        if isinstance(element.tag, str):  # not a comment or processing instruction
            found += problems(etree.QName(element).localname, list(element.attrib.items()))
    return found


def assert_inert_fragment(fragment: str, where: str) -> str:
    """``fragment`` (article HTML) holds nothing that runs; returns its text."""
    root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    tokens = _Tags(from_body=False)
    tokens.feed(fragment)
    tokens.close()
    found = _lxml_problems(root) + [p for tag, attrs in tokens.body for p in problems(tag, attrs)]
    assert not found, f"{where}: {found}\n{fragment}"
    return str(root.text_content())


def assert_inert_digest(html_part: str, template_head: list[str], where: str) -> str:
    """The digest's HTML: <head> as the template makes it, <body> inert; returns the body's text."""
    doc = lxml.html.document_fromstring(html_part)
    assert head_of(html_part) == template_head, f"{where}: <head> differs from the template's"
    body = doc.find("body")
    assert body is not None
    tokens = _Tags(from_body=True)
    tokens.feed(html_part)
    tokens.close()
    found = _lxml_problems(body) + [p for tag, attrs in tokens.body for p in problems(tag, attrs)]
    assert not found, f"{where}: {found}"
    return str(body.text_content())


def head_of(html_part: str) -> list[str]:
    """<head>'s elements but its <title> (the subject), with attributes and any style text."""
    doc = lxml.html.document_fromstring(html_part)
    head = doc.find("head")
    assert head is not None
    tokens = _Tags(from_body=True)
    tokens.feed(html_part)
    tokens.close()
    lxml_view = [
        f"{e.tag} {sorted(e.attrib.items())} {e.text if e.tag == 'style' else ''}"
        for e in head
        if isinstance(e.tag, str) and e.tag != "title"
    ]
    return lxml_view + [f"{tag} {sorted(attrs, key=str)}" for tag, attrs in tokens.head if tag != "title"]


def assert_safe_links(text_part: str, where: str) -> None:
    """The text part's numbered link lists hold only http, https, mailto and tel URLs."""
    for url in re.findall(r"^\[\d+\] (.*)$", text_part, flags=re.MULTILINE):
        scheme = _SCHEME.match(url)
        assert scheme and scheme.group(1).lower() in SAFE_LINK_SCHEMES, f"{where}: link {url!r}"


# -- one run per case -----------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    case: Path
    documents: dict[str, bytes]  # "run/path" -> bytes: run 1 has every entry, run 2 one per document
    digest: bytes
    template_head: list[str]


@contextmanager
def _publish(case: Path | None) -> Iterator[tuple[dict[str, bytes], bytes]]:
    with fresh_project() as project:
        if case is not None:
            project.add_article(case.name, case.read_bytes())
        project.add_article("later.md", LATER)
        ingested = project.cli("ingest", str(project.articles), env=SEEN)
        assert ingested.exit_code == 0, ingested.output
        ran = project.cli("run", env=LATER_RUN)
        assert ran.exit_code == 0, ran.output
        documents = {f"run/{name}": data for name, data in check_feed_folder(project.root / "feeds").items()}
        project.configure(feed={"max_entries": 1})
        fed = project.cli("feed", env=LATER_RUN)
        assert fed.exit_code == 0, fed.output
        documents |= {f"one/{name}": data for name, data in check_feed_folder(project.root / "feeds").items()}
        [digest] = messages(project)
        yield documents, digest


@pytest.fixture(scope="module")
def template_head() -> list[str]:
    """The <head> of a digest with no payload in it."""
    with _publish(None) as (_, digest):
        _, html_part = parts(check_message(digest))
        return head_of(html_part)


@pytest.fixture(scope="module", params=CASES, ids=[case.name for case in CASES])
def published(request: pytest.FixtureRequest, template_head: list[str]) -> Iterator[Published]:
    case: Path = request.param
    with _publish(case) as (documents, digest):
        yield Published(case, documents, digest, template_head)


def test_the_case_folder_covers_every_payload_class() -> None:
    names = {case.stem for case in CASES}
    for needed in ("script", "event", "javascript", "data", "svg", "math", "style", "srcdoc", "form", "base", "mxss"):
        assert any(needed in name for name in names), f"no case for {needed}"
    for case in CASES:
        assert "Description:" in case.read_text(encoding="utf-8"), f"{case.name}: say what it tests"
        assert MARKER in case.read_text(encoding="utf-8"), f"{case.name}: needs the marker paragraph"


# -- the checks -----------------------------------------------------------------------------


def test_no_payload_in_atom_feeds_tag_feeds_archives_or_json_feed(published: Published) -> None:
    seen: set[str] = set()
    for name, data in published.documents.items():
        if name.endswith(".xml") and "rss" not in name:
            root = etree.fromstring(data)
            for entry in root.iter(f"{A}entry"):
                where = f"{published.case.name}: {name}: {entry.findtext(f'{A}id')}"
                for text in ("title", "summary"):
                    element = entry.find(f"{A}{text}")
                    assert element is None or element.get("type", "text") == "text", f"{where}: {text} is not text"
                content = entry.find(f"{A}content")
                assert content is not None and content.get("type") == "html", where
                if MARKER in assert_inert_fragment(content.text or "", where):
                    seen.add(name.rsplit("/", 1)[0] if name.count("/") == 2 else name)  # run/tags, one/archive
                for link in entry.iter(f"{A}link"):
                    assert link.get("href", "").startswith("https://"), f"{where}: link {link.get('href')}"
        elif name.endswith("feed.json"):
            for item in json.loads(data)["items"]:
                where = f"{published.case.name}: {name}: {item['id']}"
                if MARKER in assert_inert_fragment(item["content_html"], where):
                    seen.add(name)
                assert item["url"].startswith("https://"), where
    # The case reached each kind of document: the main feed, a tag feed, an archive, JSON Feed.
    assert {"run/atom.xml", "run/tags", "one/archive", "run/feed.json"} <= seen, seen


# RSS's description is HTML to every reader (feedparser types it text/html): a plain-text summary
# that looks like markup must arrive escaped (the summary_markup and text_that_looks_like_markup cases).
def test_no_payload_in_rss(published: Published) -> None:
    seen = False
    for name in ("run/rss.xml", "one/rss.xml"):
        for item in etree.fromstring(published.documents[name]).iter("item"):
            where = f"{published.case.name}: {name}: {item.findtext('guid')}"
            for element in (item.find("description"), item.find(f"{{{CONTENT_NS}}}encoded")):
                if element is not None:
                    seen |= MARKER in assert_inert_fragment(element.text or "", where)
    assert seen, "the case is in no RSS item"


def test_no_payload_in_the_digest(published: Published) -> None:
    message = check_message(published.digest)
    text_part, html_part = parts(message)
    where = f"{published.case.name}: digest"

    body_text = assert_inert_digest(html_part, published.template_head, where)
    assert_safe_links(text_part, where)

    assert MARKER in body_text and MARKER in " ".join(text_part.split())


def test_raw_text_elements_show_their_text_once_and_fallback_content_not_at_all(project: Project) -> None:
    """<xmp> shows its markup as text: lxml wrote it escaped and the sanitizer, an HTML5 parser,
    read that back as raw text, so readers saw "&lt;img". <noembed> and <noframes> hold fallback
    content that no browser shows."""
    case = next(case for case in CASES if case.stem == "raw_text_elements")
    project.add_article(case.name, case.read_bytes())

    result = project.cli("ingest", str(project.articles))

    assert result.exit_code == 0, result.output
    store = project.open_store()
    try:
        [article] = [a for a in store.newest_articles() if a.key == case.stem]
    finally:
        store.close()
    assert "<img src=x onerror=alert(1)>" in article.body_text.split("\n\n")  # the <xmp>'s text, as written
    assert "&lt;" not in article.body_text and "&amp;" not in article.body_html
    assert "alert(4)" not in article.body_text and "alert(5)" not in article.body_text
