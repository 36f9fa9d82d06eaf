"""Sanitized article HTML -> the plain text of an email's text part.

Links become numbered references ("the plan [1]") whose URLs are listed apart, so the text
reads like the HTML and loses no link. Headings are underlined, list items start with "- "
or "1. ", quotations with "> ", code keeps its lines (indented four spaces), struck-out text
stays between ~~ and ~~, and paragraphs are wrapped at ``width`` columns (the digest asks for
none: mail clients wrap to their window) without ever breaking a word or a URL.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

import lxml.html
from lxml.etree import ParserError

WIDTH = 72
_MIN_WIDTH = 30  # deep nesting never squeezes text narrower than this
_GLUE = "\x00"  # a space that wrapping must not break at: "plan [1]" stays on one line
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_LISTS = {"ul", "ol"}
_BLOCKS = {
    *_HEADINGS,
    *_LISTS,
    "address",
    "article",
    "aside",
    "blockquote",
    "caption",
    "center",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "header",
    "hgroup",
    "hr",
    "li",
    "main",
    "nav",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
}
_SPACES = re.compile(r"[ \t\n\r\f]+")  # HTML's whitespace: a no-break space stays
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:(?://)?", re.IGNORECASE)

Block = list[str]  # the lines of one paragraph, list, quotation...


@dataclass(frozen=True)
class PlainText:
    text: str  # blocks separated by blank lines, no trailing newline
    links: tuple[str, ...]  # link [n] is links[n - 1]


def to_text(html: str, *, width: int = WIDTH) -> PlainText:
    """The text of ``html`` and the URLs of its links, numbered in order of first appearance."""
    if not html.strip():
        return PlainText("", ())
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except ParserError:  # nothing but comments or a processing instruction
        return PlainText("", ())
    converter = _Converter()
    blocks = converter.blocks(root, width)
    return PlainText("\n\n".join("\n".join(block) for block in blocks), tuple(converter.links))


class _Converter:
    def __init__(self) -> None:
        self.links: list[str] = []

    def blocks(self, element: lxml.html.HtmlElement, width: int) -> list[Block]:
        """The blocks inside ``element``: each run of inline content becomes a paragraph."""
        out: list[Block] = []
        run = [_collapse(element.text)]
        for child in element:
            if isinstance(child.tag, str) and child.tag in _BLOCKS:
                out += _paragraph("".join(run), width)
                out += self.block(child, width)
                run = []
            elif isinstance(child.tag, str):
                run.append(self.inline(child))
            run.append(_collapse(child.tail))
        out += _paragraph("".join(run), width)
        return out

    def block(self, element: lxml.html.HtmlElement, width: int) -> list[Block]:
        tag = element.tag
        if tag in _HEADINGS:
            lines = _wrap(self.inline(element), width)
            if not lines:
                return []
            underline = ("=" if tag == "h1" else "-") * min(width, max(map(len, lines)))
            return [[*lines, underline]]
        if tag in _LISTS:
            return self.listing(element, width)
        if tag == "blockquote":
            return _prefixed(self.blocks(element, width - 2), "> ", ">")
        if tag == "pre":
            lines = [line.rstrip() for line in element.text_content().expandtabs(4).strip("\n").split("\n")]
            return [["    " + line if line else "" for line in lines]] if any(lines) else []
        if tag == "hr":
            return [["* * *"]]
        if tag == "table":
            return self.table(element, width)
        if tag == "dl":
            return self.definitions(element, width)
        return self.blocks(element, width)

    def listing(self, element: lxml.html.HtmlElement, width: int) -> list[Block]:
        """One block: items start with "- " or "n. ", their further lines are indented to match.

        Anything else inside the list (a list put straight in a list, say) is indented too.
        """
        children = [child for child in element if isinstance(child.tag, str)]
        try:
            number = int(element.get("start", "1"))
        except ValueError:
            number = 1
        last = number + sum(child.tag == "li" for child in children)
        indent = len(f"{last}. ") if element.tag == "ol" else 2
        lines: Block = []
        for child in children:
            blocks = (self.blocks if child.tag == "li" else self.block)(child, width - indent)
            inner = [line for block in blocks for line in block]
            if not inner:
                continue
            marker = "" if child.tag != "li" else f"{number}. " if element.tag == "ol" else "- "
            number += child.tag == "li"
            lines.append(marker.ljust(indent) + inner[0])
            lines += [" " * indent + line if line else "" for line in inner[1:]]
        return [lines] if lines else []

    def definitions(self, element: lxml.html.HtmlElement, width: int) -> list[Block]:
        """One block: each term on a line of its own, its definition under it, indented."""
        lines: Block = []
        for child in element:
            if child.tag == "dt":
                lines += _wrap(self.inline(child), width)
            elif child.tag == "dd":
                lines += ["    " + line if line else "" for block in self.blocks(child, width - 4) for line in block]
        return [lines] if lines else []

    def table(self, element: lxml.html.HtmlElement, width: int) -> list[Block]:
        """A caption, then one line per row with its cells joined by " | "."""
        lines: Block = []
        for caption in element.findall("caption"):
            lines += _wrap(self.inline(caption), width)
        for row in element.xpath("tr|thead/tr|tbody/tr|tfoot/tr"):  # a table in a cell is in the cell's text
            cells = [" ".join(self.inline(cell).split()) for cell in row if cell.tag in ("td", "th")]
            lines += _wrap(" | ".join(cell for cell in cells if cell), width, indent="  ")
        return [lines] if lines else []

    def inline(self, element: lxml.html.HtmlElement) -> str:
        """The text of ``element`` on one line; <br> is kept as a newline."""
        tag = element.tag
        if tag == "br":
            return "\n"
        if tag == "img":
            alt = " ".join((element.get("alt") or "").split())
            return f"[Image:{_GLUE}{alt}]" if alt else ""
        text = _collapse(element.text)
        for child in element:
            text += (self.inline(child) if isinstance(child.tag, str) else "") + _collapse(child.tail)
        if tag == "q":
            return f"“{text}”"
        if tag in ("s", "del", "strike") and text.strip():
            return f"~~{text}~~"  # struck out, as Markdown writes it: not to be read as current
        if tag == "a":
            return self.link(text, (element.get("href") or "").strip())
        if tag in _BLOCKS:  # a block inside an inline element or a table cell: keep words apart
            return f" {text} "
        return text

    def link(self, text: str, href: str) -> str:
        """``text`` and a reference to ``href``, unless the text already shows the URL."""
        if not href or href.startswith("#"):
            return text
        shown = text.strip()
        if shown and _bare(shown) in (_bare(href), href.removeprefix("mailto:")):
            return text
        if href not in self.links:
            self.links.append(href)
        reference = f"[{self.links.index(href) + 1}]"
        if not shown:  # an image without alt text, say
            return text + reference
        before, after = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
        return f"{before}{shown}{_GLUE}{reference}{after}"


def _collapse(text: str | None) -> str:
    return _SPACES.sub(" ", text.replace(_GLUE, "")) if text else ""


def _bare(url: str) -> str:
    """``url`` as a link text may show it: without the scheme and the trailing slash."""
    return _SCHEME.sub("", url).rstrip("/")


def _wrap(text: str, width: int, *, indent: str = "") -> list[str]:
    """``text`` (one paragraph; newlines are <br>s) wrapped at ``width``, words and URLs whole."""
    text = re.sub(r" *\n *", "\n", re.sub(" +", " ", text)).strip(" \n")
    if not text:
        return []
    width = max(width, _MIN_WIDTH)
    lines: list[str] = []
    for segment in text.split("\n"):
        wrapped = textwrap.wrap(
            segment, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
        )
        lines += wrapped or [""]
    return [line.replace(_GLUE, " ") for line in lines]


def _paragraph(text: str, width: int) -> list[Block]:
    lines = _wrap(text, width)
    return [lines] if lines else []


def _prefixed(blocks: list[Block], prefix: str, blank: str) -> list[Block]:
    """``blocks`` as one block, each line prefixed, blocks still apart by a ``blank`` line."""
    lines: Block = []
    for block in blocks:
        if lines:
            lines.append(blank)
        lines += [prefix + line if line else blank for line in block]
    return [lines] if lines else []
