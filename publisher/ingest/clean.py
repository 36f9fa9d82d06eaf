"""Turn an article body (HTML from any format) into what readers should see.

Embedded frames become links (see :mod:`publisher.ingest.embeds`); the body is sanitized
with nh3, cut into blocks (paragraphs, headings, lists, quotes...),
and then, block by block: site chrome is dropped, a block repeating an earlier one (scraped
pages often hold the body twice) or the headline is dropped, empty blocks (but not those
holding an image) are dropped. Chrome is recognised only in short blocks, so a real paragraph
that happens to start with "Related" or "Share" survives; after a "Related"/"Share this"
label, the links that follow it are its list and go too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import lxml.html
import nh3
from lxml.etree import ParserError

from publisher.ingest.decode import strip_illegal
from publisher.ingest.embeds import frames_as_links

_CHROME_MAX_CHARS = 200
_RUN_SHARE = 0.2  # of the distinct text: a repeated run this big is a second copy of the body
_BLOCK_SHARE = 0.5  # the same for a run of one block
_RUN_CANDIDATES = 8  # earlier copies of a block compared (bounds the cost)
_CHROME_WHOLE = re.compile(
    r"(?:leave a (?:comment|reply)|comments?(?: \(\d+\))?|\d+ comments?|post comment|"
    r"cancel reply|(?:name|email|e-mail|website|comment)\s*\*?|"
    r"skip to (?:main )?content|(?:scroll|back) to (?:the )?top|"
    r"share(?: this(?: (?:post|article|story))?)?:?|like this:?|like|tweet|pin it|"
    r"(?:like )?loading(?:\.{3}|…)|like this:? (?:like )?loading(?:\.{3}|…)|"  # WordPress's like widget
    r"related(?: (?:posts|articles|stories|content))?:?|"
    r"you (?:may|might) also like:?|post navigation|read more|advertisement|"
    r"all rights reserved\.?)",
    re.IGNORECASE,
)
_CHROME_START = re.compile(
    r"(?:leave a (?:comment|reply)\b|your email address will not be published|"
    r"required fields are marked|save my name, email|click to (?:share|print|email)\b|"
    r"share (?:on|via) \w+|(?:previous|next) (?:post|article|story)\b|[«←] ?(?:previous|older)\b|"
    r"(?:©|\(c\)|copyright\b)\s*(?:©\s*)?(?:\d{4}|.*all rights reserved)|"
    r"subscribe to (?:our|the) newsletter|related (?:posts|articles|stories):)",
    re.IGNORECASE,
)
# Labels of a section of links (related posts, share buttons) rather than of article text.
_LINKS_LABEL = re.compile(
    r"(?:related(?: (?:posts|articles|stories|content))?|you (?:may|might) also like|"
    r"share(?: this(?: (?:post|article|story))?)?|more (?:stories|articles|posts)|read (?:more|next))\s*:?",
    re.IGNORECASE,
)
_MENU_SEPARATORS = re.compile(r"\s+[|\u00b7\u2022/\u00bb\u203a]\s+")
_MENU_MIN_ITEMS = 4
_MENU_ITEM_WORDS = 3
_EDGE_SYMBOLS = re.compile(r"^[^\w(©]+|[^\w.:)]+$")
_MEDIA = {"img", "picture", "video", "audio"}
_CONTAINERS = {"div", "section", "article", "main", "body", "span", "font", "center"}
_STANDALONE = {"img", "hr", "figure", "table", "video", "audio", "picture"}
_BLOCKS = {
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "dl",
    "blockquote",
    "pre",
    "figure",
    "table",
    "hr",
    "img",
    "div",
    "section",
    "article",
    "main",
    "center",
}
_ALLOWED_URL_SCHEMES = {"http", "https", "mailto", "tel"}
# Gone with everything inside; noembed and noframes hold fallback content browsers do not show.
_DROPPED_WITH_CONTENT = {
    "script",
    "style",
    "noscript",
    "template",
    "iframe",
    "object",
    "svg",
    "math",
    "noembed",
    "noframes",
}
# Table cells keep their column's alignment (Markdown writes style="text-align:right"): a
# style attribute there, holding text-align and nothing else.
_ATTRIBUTES = {
    tag: set(names) | ({"style"} if tag in ("td", "th") else set()) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()
}
_URL_ATTRIBUTES = {"href", "src", "cite", "action", "formaction", "poster", "longdesc", "background"}
# Browsers ignore tabs and newlines inside a URL ("jav\tascript:"), and lxml writes them out
# percent-escaped ("jav%09ascript:"), which nh3 then takes for a harmless relative URL.
_URL_NOISE = re.compile(r"[\x00-\x20]|%(?:[01][0-9a-f]|20)", re.IGNORECASE)
_URL_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):", re.IGNORECASE)


@dataclass(frozen=True)
class Body:
    html: str
    paragraphs: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


def sanitize(html: str) -> str:
    """Untrusted HTML -> HTML that cannot run anything (no script, handlers, javascript:)."""
    return nh3.clean(
        strip_illegal(html),
        url_schemes=_ALLOWED_URL_SCHEMES,
        clean_content_tags=_DROPPED_WITH_CONTENT,
        attributes=_ATTRIBUTES,
        filter_style_properties={"text-align"},
        link_rel="noopener noreferrer",
        attribute_filter=_drop_hidden_schemes,
    )


def _drop_hidden_schemes(element: str, attribute: str, value: str) -> str | None:
    """Drop a URL whose scheme, once the characters browsers skip are gone, is not allowed."""
    if attribute in _URL_ATTRIBUTES:
        scheme = _URL_SCHEME.match(_URL_NOISE.sub("", value))
        if scheme and scheme.group(1).lower() not in _ALLOWED_URL_SCHEMES:
            return None
    return value


def clean_body(html: str, *, title: str = "") -> Body:
    """Sanitize ``html`` and keep each real block once, in first-seen order."""
    title_key = _key(title)
    blocks: list[tuple[str, str, str, int]] = []  # markup, text, key, characters
    after_links_label = False
    for element in _split_blocks(sanitize(frames_as_links(html))):
        text = block_text(element)
        line = " ".join(text.split()) if "\n" in text else text  # block_text spaces all but list items
        key = line.casefold()  # == _key(text): case folding neither makes nor takes whitespace
        if not key and element.tag not in _STANDALONE and not _has_media(element):
            continue
        if after_links_label and _only_links(element):
            continue
        after_links_label = bool(_LINKS_LABEL.fullmatch(line))
        if _is_chrome_line(line) or (key and key == title_key):
            continue
        element.tail = None
        markup = lxml.html.tostring(element, encoding="unicode")
        blocks.append((markup, text, key or markup, len(line)))
    kept = [(markup, text) for (markup, text, _, _), repeat in zip(blocks, _repeats(blocks), strict=True) if not repeat]
    return Body(
        html=sanitize("\n".join(markup for markup, _ in kept)),
        paragraphs=tuple(text for _, text in kept if text),
    )


def _repeats(blocks: list[tuple[str, str, str, int]]) -> list[bool]:
    """Which blocks repeat an earlier run of the body and should go.

    Scraped pages hold the body twice (AMP and normal, a print copy, the body inside itself):
    a run of blocks repeating an earlier run goes when it carries a good part of the page's
    distinct text (a fifth, for a run of two blocks or more; half, for one block alone). What an
    author repeats on purpose stays: a refrain, a chorus, a second "Update:" line, the same
    three lines under each day of a meal plan. Sizes are in characters, so that a script
    written without spaces weighs as much as one with them.
    """
    keys = [key for _, _, key, _ in blocks]
    distinct: dict[str, int] = {}
    for key, (_, _, _, size) in zip(keys, blocks, strict=True):
        distinct.setdefault(key, size)
    total = sum(distinct.values()) or 1
    positions: dict[str, list[int]] = {}
    repeats = [False] * len(blocks)
    i = 0
    while i < len(blocks):
        best = 0
        for j in positions.get(keys[i], ())[-_RUN_CANDIDATES:]:
            length = 0
            while i + length < len(keys) and j + length < i and keys[j + length] == keys[i + length]:
                length += 1
            best = max(best, length)
        share = sum(blocks[k][3] for k in range(i, i + best)) / total
        if (best >= 2 and share >= _RUN_SHARE) or (best == 1 and share >= _BLOCK_SHARE):
            for k in range(i, i + best):
                repeats[k] = True
                positions.setdefault(keys[k], []).append(k)
            i += best
        else:
            positions.setdefault(keys[i], []).append(i)
            i += 1
    return repeats


def is_chrome(text: str) -> bool:
    """True for the short lines of page furniture that are not part of an article."""
    return _is_chrome_line(" ".join(text.split()))


def _is_chrome_line(text: str) -> bool:
    """is_chrome of ``text`` with its whitespace already collapsed to single spaces."""
    if len(text) > _CHROME_MAX_CHARS:
        return False
    core = _EDGE_SYMBOLS.sub("", text)  # "↑ Back to top", "» Leave a Reply"
    return _is_menu(core) or any(
        _CHROME_WHOLE.fullmatch(line) or _LINKS_LABEL.fullmatch(line) or _CHROME_START.match(line)
        for line in (text, core)
    )


def _is_menu(text: str) -> bool:
    """A row of menu items as text keeps it ("Home | News | Sport | Contact"): jusText's short,
    sentence-free block, recognised by its separators, in any language."""
    items = _MENU_SEPARATORS.split(text)
    return (
        len(items) >= _MENU_MIN_ITEMS
        and all(0 < len(item.split()) <= _MENU_ITEM_WORDS for item in items)
        and not any(item.rstrip().endswith((".", "!", "?", "。", "؟")) for item in items[:-1])
    )


def block_text(element: lxml.html.HtmlElement) -> str:
    """The readable text of one block; list items go on lines of their own."""
    for br in element.iter("br", "img", "td", "th"):  # lines and cells are words apart ("dates:<br>June")
        if not (br.tail or "").startswith((" ", "\n")):
            br.tail = " " + (br.tail or "")
    if element.tag in ("ul", "ol"):
        items = [" ".join(li.text_content().split()) for li in element.iter("li")]
        return "\n".join(f"- {item}" for item in items if item)
    return " ".join(element.text_content().split())


def _has_media(element: lxml.html.HtmlElement) -> bool:
    return next(element.iter(*_MEDIA), None) is not None


def _only_links(element: lxml.html.HtmlElement) -> bool:
    """True when all the text of ``element`` is link text (a list of links, a row of buttons)."""
    text = _key(element.text_content())
    links = _key(" ".join(a.text_content() for a in element.iter("a")))
    return bool(links) and re.sub(r"[\W_]+", "", text) == re.sub(r"[\W_]+", "", links)


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def _split_blocks(html: str) -> Iterator[lxml.html.HtmlElement]:
    if not html.strip():
        return
    try:
        items = lxml.html.fragments_fromstring(html)
    except ParserError:
        return
    yield from _flatten(items)


def _flatten(items: Iterable[str | lxml.html.HtmlElement]) -> Iterator[lxml.html.HtmlElement]:
    """Yield leaf blocks: containers are opened, loose inline runs become paragraphs."""
    inline: list[str | lxml.html.HtmlElement] = []

    def paragraph() -> Iterator[lxml.html.HtmlElement]:
        if inline:
            p = lxml.html.Element("p")
            for item in inline:
                if isinstance(item, str):
                    if len(p):
                        p[-1].tail = (p[-1].tail or "") + item
                    else:
                        p.text = (p.text or "") + item
                else:
                    p.append(item)
            inline.clear()
            yield p

    for item in items:
        if isinstance(item, str) or item.tag not in _BLOCKS:
            inline.append(item)
            if not isinstance(item, str) and item.tail:
                inline.append(item.tail)
                item.tail = None
            continue
        yield from paragraph()
        tail, item.tail = item.tail, None
        if item.tag in _CONTAINERS and any(isinstance(c.tag, str) and c.tag in _BLOCKS for c in item):
            children: list[str | lxml.html.HtmlElement] = [item.text] if item.text else []
            for child in list(item):
                if not isinstance(child.tag, str):  # comments, processing instructions
                    continue
                children.append(child)
            yield from _flatten(children)
        elif item.tag in _CONTAINERS:
            item.tag = "p"
            yield item
        else:
            yield item
        if tail and tail.strip():
            inline.append(tail)
    yield from paragraph()
