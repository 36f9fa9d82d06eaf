"""Find the article in a whole HTML page: headline, main text, and the page's metadata.

The text is chosen by trafilatura, the best open-source extractor measured on real pages (see
bench/extraction.py): its fast mode, and its full mode where the fast one gives nothing or
mostly short lines (menus). That text is kept with the page's own markup, links and images
(see :mod:`publisher.ingest.align`); then furniture by tag and ARIA role, mastheads and bylines
go; a video's frame stays, to become a link (see :mod:`publisher.ingest.embeds`). The
metadata comes from :mod:`publisher.ingest.pagemeta`.

The headline is the <h1>/<h2> that says what the page declares (JSON-LD headline, og:title,
else <title> without the site's name); a page that declares one and has no such heading gets
the declared one (its <h1> is then a logo or a tagline); else the first <h1> outside the
masthead.

When trafilatura finds nothing (a tiny page), our own rules choose: the content root is the
first of the <article> holding the most paragraph text, <main>, [role=main],
[itemprop=articleBody], or the element with the most direct paragraph text; navigation,
asides, footers, forms and elements whose class or id names them as chrome are removed inside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import lxml.html
import trafilatura
from lxml import etree
from lxml.etree import ParserError
from trafilatura.settings import Extractor

from publisher.ingest.align import align
from publisher.ingest.embeds import is_video
from publisher.ingest.pagemeta import PageInfo, htmldate, page_info

_REMOVE_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "aside",
    "footer",
    "form",
    "button",
    "input",
    "select",
    "textarea",
    "svg",
    "dialog",
)
# Never article text, dropped by trafilatura (and by our rules) anyway.
_UNREAD = (
    "head",
    "script",
    "style",
    "noscript",
    "template",
    "noembed",
    "noframes",
    "svg",
    "nav",
    "aside",
    "footer",
    "button",
    "input",
    "select",
    "textarea",
    "dialog",
)
_TEXT_PARENTS = ("p", "li", "td", "blockquote", "em", "strong", "span", "a")
_REMOVE_ROLES = ("navigation", "banner", "contentinfo", "complementary", "search", "dialog")
_CHROME_NAMES = re.compile(
    r"(?:^|[\s_-])(?:comments?|respond|reply|share|sharing|social|sharedaddy|related|sidebar|"
    r"widget|breadcrumbs?|menu|nav|navigation|pagination|post-nav|footer|cookie|newsletter|"
    r"subscribe|advert|ads?|promo|skip-link|screen-reader-text|author-bio|tags?-links|jp-relatedposts|"
    r"byline|entry-meta|post-meta|posted-on)"
    r"(?:$|[\s_-])",
    re.IGNORECASE,
)
# What sits between a headline and the site name: | :: middle dot >> (rarely inside a headline),
# else en dash, em dash, - (common inside headlines too, so only used when there is no other).
_TITLE_SEPARATORS = (re.compile(r"\s+(?:\||::|\u00b7|\u00bb)\s+"), re.compile(r"\s+(?:\u2013|\u2014|-)\s+"))


@dataclass
class Page:
    title: str
    body_html: str
    date: str | None = None
    author: str | None = None
    summary: str | None = None
    tags: list[str] = field(default_factory=list)
    info: PageInfo = field(default_factory=PageInfo)


# Comments and processing instructions out at parse time, as trafilatura parses: a comment
# inside a paragraph otherwise cuts its text short there.
# Elements are HtmlElements by a fixed lookup in C: lxml.html's own parser asks Python for the
# class of every element each time one is touched (a fifth of trafilatura's time on this tree),
# to give forms and inputs classes of their own that nothing here uses.
_PARSER = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, collect_ids=False)
_PARSER.set_element_class_lookup(
    etree.ElementDefaultClassLookup(
        element=lxml.html.HtmlElement, comment=lxml.html.HtmlComment, pi=lxml.html.HtmlProcessingInstruction
    )
)
# Above this many elements the page is not given to trafilatura (its cost grows faster than
# the page); the rules below are linear.
_MAX_ELEMENTS = 60_000
_FAST = Extractor(fast=True, comments=False, tables=True)
_FULL = Extractor(comments=False, tables=True)
_LONG_PARAGRAPH_WORDS = 25
_SHORT_LINE_WORDS = 6
_SHORT_LINES_SHARE = 0.5


def extract(text: str) -> Page:
    """Parse a page; raises ValueError when it holds no HTML document."""
    try:
        doc = lxml.html.document_fromstring(text, parser=_PARSER)
    except (ParserError, ValueError) as exc:
        raise ValueError(f"not an HTML document ({exc})") from None
    meta = _meta(doc)
    info = page_info(doc, meta)
    published = info.published or _date(doc, meta) or htmldate(doc)
    site = meta.get("og:site_name") or meta.get("application-name") or info.site_name
    declared = info.headline or meta.get("og:title") or meta.get("twitter:title")
    hint = _strip_site_name(declared or _title_tag(doc), site)
    tags = _tags(meta, doc)
    # The head is read. What neither trafilatura nor the body needs goes before trafilatura
    # copies the tree (a third of its cost was menus and the head); JSON-LD stays for its
    # fallback, which may take the article's text from there.
    for element in list(doc.iter(*_UNREAD)):
        if element.tag == "head":
            for child in list(element):
                if not _is_json_ld(child):
                    _drop(child)
        elif not _is_json_ld(element):
            _drop(element)
    chosen = _chosen_text(doc)
    for element in list(doc.iter("script", "head")):
        _drop(element)
    # Raw text shown as it is: lxml writes the text escaped, which the sanitizer (an HTML5
    # parser) would read back as raw text, "&lt;" and all. As <pre> it reads back as written.
    for element in list(doc.iter("xmp", "listing", "plaintext")):
        element.tag = "pre"
    body = doc.find("body")
    # The heading that says what the page declares; else, when the page declares a headline
    # (og:title, JSON-LD), that (an <h1> saying otherwise is a logo or tagline); else the first
    # <h1> outside the masthead, else <title> without the site name.
    headline = _headline_like(doc, hint)
    if headline is None and not declared:
        headline = _headline(doc, skip_masthead=True)
    aligned = align(body, chosen) if chosen and body is not None else None
    if aligned is not None:
        title = " ".join(headline.text_content().split()) if headline is not None else hint
        root = aligned
        if headline is not None:
            _drop(headline)
        _remove_chrome(root, by_name=False)
        for element in _elements(root, ".//header | .//time"):
            if element.tag == "time" and element.getparent() is not None and element.getparent().tag in _TEXT_PARENTS:
                continue
            if not _has_long_paragraph(element):
                _drop(element)  # a masthead (site name, tagline) or the article's byline and date
    else:
        root = _content_root(doc)
        headline = _headline_like(root, hint)
        if headline is None:
            headline = _headline(root)
        if headline is None:
            headline = _headline_like(doc, hint)
        if headline is None:
            headline = _headline(doc, skip_masthead=True)
        title = " ".join(headline.text_content().split()) if headline is not None else ""
        if headline is not None:
            _drop(headline)
        title = title or hint or meta.get("og:title") or ""
        _remove_chrome(root)
    return Page(
        title=title,
        body_html=_inner_html(root),
        date=published,
        author=info.author or meta.get("author") or meta.get("article:author") or _rel_author(doc),
        summary=meta.get("description") or meta.get("og:description"),
        tags=tags,
        info=info,
    )


def _chosen_text(doc: lxml.html.HtmlElement) -> str | None:
    """trafilatura's plain text of the article (its fast mode, no comments), or None."""
    if doc.xpath("count(//*)") > _MAX_ELEMENTS:
        return None
    try:
        # trafilatura copies the tree before it cleans it (measured: all 181 dev pages unchanged).
        # Its options, made once: they are only read.
        chosen = trafilatura.extract(doc, options=_FAST)
        if not chosen or _mostly_short_lines(chosen):
            # Menus and link lists rather than prose: its full mode (which also weighs a
            # readability-like and a jusText pass against it) chooses better, at twice the cost.
            chosen = trafilatura.extract(doc, options=_FULL) or chosen
    except Exception:  # a third-party parser on untrusted input: its failure means "use our rules"
        return None
    return chosen


def _is_json_ld(element: lxml.html.HtmlElement) -> bool:
    return element.tag == "script" and (element.get("type") or "").strip().lower() == "application/ld+json"


def _has_long_paragraph(element: lxml.html.HtmlElement) -> bool:
    return any(len(p.text_content().split()) > _LONG_PARAGRAPH_WORDS for p in element.iter("p"))


def _mostly_short_lines(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    return sum(1 for line in lines if len(line.split()) < _SHORT_LINE_WORDS) > _SHORT_LINES_SHARE * len(lines)


def _headline_like(root: lxml.html.HtmlElement, hint: str) -> lxml.html.HtmlElement | None:
    """The first <h1>/<h2> whose text is the page's declared headline (or holds it, or is held
    by it): not a tagline or a logo heading, which say something else."""
    wanted = _fold(hint)
    if not wanted:
        return None
    for element in _elements(root, ".//h1 | .//h2"):
        text = _fold(element.text_content())
        if text and (text == wanted or (len(text) >= 12 and (text in wanted or wanted in text))):
            return element
    return None


def _fold(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def _elements(doc: lxml.html.HtmlElement, query: str) -> list[lxml.html.HtmlElement]:
    """The elements an XPath query selects (lxml types xpath() as returning anything)."""
    return [found for found in doc.xpath(query) if isinstance(found, lxml.html.HtmlElement)]


def _meta(doc: lxml.html.HtmlElement) -> dict[str, str]:
    found: dict[str, str] = {}
    for element in doc.iter("meta"):
        name = (element.get("property") or element.get("name") or element.get("itemprop") or "").lower()
        content = (element.get("content") or "").strip()
        if name and content and name not in found:
            found[name] = content
    return found


def _content_root(doc: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    articles = _elements(doc, "//article")
    if articles:
        return max(articles, key=_paragraph_chars)
    for query in ("//main", "//*[@role='main']", "//*[@itemprop='articleBody']"):
        found = _elements(doc, query)
        if found:
            return found[0]
    body = doc.find("body")
    candidates = list({p.getparent(): None for p in doc.iter("p") if p.getparent() is not None})
    if candidates:
        return max(candidates, key=_paragraph_chars)
    return body if body is not None else doc


def _paragraph_chars(element: lxml.html.HtmlElement) -> int:
    return sum(len(p.text_content()) for p in element.iter("p"))


def _headline(root: lxml.html.HtmlElement, *, skip_masthead: bool = False) -> lxml.html.HtmlElement | None:
    """The first non-empty <h1>; with ``skip_masthead``, not one in a header, nav, aside or footer."""
    for h1 in root.iter("h1"):
        if h1.text_content().strip() and not (skip_masthead and any(_is_masthead(a) for a in h1.iterancestors())):
            return h1
    return None


def _is_masthead(element: lxml.html.HtmlElement) -> bool:
    return element.tag in ("header", "nav", "aside", "footer") or element.get("role") in _REMOVE_ROLES


def _remove_chrome(root: lxml.html.HtmlElement, *, by_name: bool = True) -> None:
    """Drop the page's furniture inside ``root``: by tag and ARIA role, and, ``by_name``, by
    class or id (only where our own rules chose the root: a site may name its article body
    "l-sidebar-fixed ... l-article-body", which trafilatura's choice does not trip over)."""
    for element in list(root.iter()):
        if element is root or not isinstance(element.tag, str):
            continue
        names = f"{element.get('class', '')} {element.get('id', '')}"
        if (
            element.tag in _REMOVE_TAGS
            or (element.tag == "iframe" and not is_video(element))  # a video stays, as a link; adverts go
            or element.get("role") in _REMOVE_ROLES
            or element.get("aria-hidden") == "true"
            or (by_name and element.tag == "header")  # masthead, or the article's own byline block
            or (by_name and element.tag == "time" and element.getparent().tag not in _TEXT_PARENTS)
            or (by_name and _CHROME_NAMES.search(names))
        ):
            _drop(element)


def _drop(element: lxml.html.HtmlElement) -> None:
    """Remove ``element`` but keep the text that follows it."""
    if element.getparent() is not None:
        element.drop_tree()


def _inner_html(root: lxml.html.HtmlElement) -> str:
    parts = [root.text or ""]
    parts.extend(lxml.html.tostring(child, encoding="unicode") for child in root)
    return "".join(parts)


def _title_tag(doc: lxml.html.HtmlElement) -> str:
    found = doc.find(".//title")
    return " ".join(found.text_content().split()) if found is not None else ""


def _strip_site_name(title: str, site_name: str | None = None) -> str:
    """``"Big Story - Details | Example News"`` -> ``"Big Story - Details"``.

    The page's declared site name is cut from whichever end holds it; without one, the last
    part is taken to be the site name (the usual "Headline | Site" order). Separators inside
    the headline stay.
    """
    name = " ".join((site_name or "").split()).casefold()
    splits = [list(separator.finditer(title)) for separator in _TITLE_SEPARATORS]
    if name:
        for cuts in splits:
            if cuts and title[cuts[-1].end() :].casefold() == name:
                return title[: cuts[-1].start()]
            if cuts and title[: cuts[0].start()].casefold() == name:
                return title[cuts[0].end() :]
    for cuts in splits:
        if cuts:
            return title[: cuts[-1].start()]
    return title


def _date(doc: lxml.html.HtmlElement, meta: dict[str, str]) -> str | None:
    for key in ("article:published_time", "datepublished", "date", "dc.date", "pubdate"):
        if meta.get(key):
            return meta[key]
    for element in _elements(doc, "//time[@datetime]"):
        return str(element.get("datetime"))
    return None


def _rel_author(doc: lxml.html.HtmlElement) -> str | None:
    for element in _elements(doc, "//*[@rel='author']"):
        text = " ".join(element.text_content().split())
        if text:
            return text
    return None


def _tags(meta: dict[str, str], doc: lxml.html.HtmlElement) -> list[str]:
    tags = [tag.strip() for tag in meta.get("keywords", "").split(",")]
    tags += [str(m.get("content", "")).strip() for m in _elements(doc, "//meta[@property='article:tag']")]
    unique: dict[str, None] = {}
    for tag in tags:
        if tag and tag.casefold() not in {t.casefold() for t in unique}:
            unique[tag] = None
    return list(unique)
