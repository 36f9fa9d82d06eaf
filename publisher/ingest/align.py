"""Keep the page's own markup for the text an extractor chose.

trafilatura picks an article's text better than any rule of ours, but its output has lost the
page's links and images (asking it to keep them makes it choose worse: link-heavy blocks then
pass). So its plain text is used as a vote: the page is cut into text units (block elements
without blocks inside, and the runs of inline text between blocks), each unit is kept when
most of its word 3-grams are in the extractor's text (short units: when the extractor has the
same words as a line of their own), and the page is pruned to the kept units, with links,
emphasis and images as the page had them. Matched 3-grams are used up, so a paragraph the page
holds twice (a teaser and the body) is kept as many times as the extractor kept it.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import lxml.html

# Scripts written without spaces (Chinese, Japanese, Thai, Lao, Myanmar): one character is
# one token, else a whole paragraph would be one "word".
_UNSPACED = "\u0e00-\u0eff\u1000-\u109f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(f"[{_UNSPACED}]|[^\\W{_UNSPACED}]+")
_UNSPACED_CHAR = re.compile(f"[{_UNSPACED}]")
_SPACED_WORD = re.compile(r"\w+")
_N = 3
_MIN_SHARE = 0.5
# Blocks that hold one unit of text whatever their markup inside (a list item with a <p>; a
# table row, which extractors write as one line).
_LEAVES = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "tr", "pre", "figcaption", "caption"}
_BLOCKS = _LEAVES | {
    "html",
    "body",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "nav",
    "aside",
    "ul",
    "ol",
    "dl",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "blockquote",
    "figure",
    "form",
    "fieldset",
    "address",
    "details",
    "summary",
    "hr",
    "center",
    "br",
}
_MEDIA = {"img", "picture", "video", "audio", "figure", "iframe"}  # an iframe: an embedded video


@dataclass
class _Unit:
    elements: list[lxml.html.HtmlElement] = field(default_factory=list)
    texts: list[tuple[lxml.html.HtmlElement, str]] = field(default_factory=list)  # (element, "text"|"tail")
    words: list[str] = field(default_factory=list)
    media: bool = False
    kept: bool = False


def tokens(text: str) -> list[str]:
    text = text.casefold()
    # The plain word pattern where no unspaced script is present (most pages): a third cheaper.
    return _WORD.findall(text) if _UNSPACED_CHAR.search(text) else _SPACED_WORD.findall(text)


def align(root: lxml.html.HtmlElement, chosen: str) -> lxml.html.HtmlElement | None:
    """Prune ``root`` (in place) to the units matching ``chosen``; the smallest element holding
    them all, or None when nothing matched."""
    units = _units(root)
    grams: Counter[tuple[str, ...]] = Counter()
    lines: set[tuple[str, ...]] = set()
    stream_words: list[str] = []
    for line in chosen.splitlines():
        words = tokens(line)
        lines.add(tuple(words))
        grams.update(_grams(words))
        stream_words += words
    stream = f" {' '.join(stream_words)} "
    short: list[int] = []
    for i, unit in enumerate(units):
        if unit.media or not unit.words:
            continue
        if len(unit.words) < _N:
            unit.kept = tuple(unit.words) in lines
            if not unit.kept and f" {' '.join(unit.words)} " in stream:
                short.append(i)
            continue
        # Each of the unit's 3-grams takes one of the chosen text's while any is left (the
        # same count as min() per distinct 3-gram); given back when the unit is not kept.
        taken: list[tuple[str, ...]] = []
        for gram in _grams(unit.words):
            left = grams.get(gram, 0)
            if left > 0:
                grams[gram] = left - 1
                taken.append(gram)
        unit.kept = len(taken) >= _MIN_SHARE * (len(unit.words) - _N + 1)
        if not unit.kept:
            for gram in taken:
                grams[gram] += 1
    # A short unit found inside the chosen text (a table cell, a word in a link) goes with its
    # long neighbours: kept when the nearest long units on both sides are.
    long_at = [i for i, unit in enumerate(units) if len(unit.words) >= _N]
    for i in short:
        k = bisect.bisect(long_at, i)
        units[i].kept = 0 < k < len(long_at) and units[long_at[k - 1]].kept and units[long_at[k]].kept
    text_units = [i for i, unit in enumerate(units) if unit.words or not unit.media]
    kept_positions = [i for i in text_units if units[i].kept]
    if not kept_positions:
        return None
    first, last = kept_positions[0], kept_positions[-1]
    # An image goes with the text beside it: kept when the nearest text unit before or after
    # it is; before the first or after the last kept text only inside the element holding
    # all the kept text (a lead image, a closing photo; not the next story's thumbnail).
    region = _common_ancestor([a for a in (_anchor(units[i]).getparent() for i in kept_positions) if a is not None])
    previous: list[_Unit | None] = []
    last_text: _Unit | None = None
    for unit in units:
        previous.append(last_text)
        if not unit.media and unit.words:
            last_text = unit
    following: _Unit | None = None
    for i in range(len(units) - 1, -1, -1):
        unit = units[i]
        if unit.media:
            before, after = previous[i], following
            unit.kept = bool((before and before.kept) or (after and after.kept))
            if unit.kept and not first < i < last:
                unit.kept = region is not None and any(a is region for a in unit.elements[0].iterancestors())
        elif unit.words:
            following = unit
    return _prune(root, [unit for unit in units if unit.kept], [unit for unit in units if not unit.kept])


def _anchor(unit: _Unit) -> lxml.html.HtmlElement:
    if unit.elements:
        return unit.elements[0]
    element, kind = unit.texts[0]
    return element if kind == "text" else element.getparent()


def _common_ancestor(elements: list[lxml.html.HtmlElement]) -> lxml.html.HtmlElement | None:
    """The deepest element holding all ``elements`` (one of them, if it holds the others)."""
    if not elements:
        return None
    chain = [elements[0], *elements[0].iterancestors()]
    depth = {element: i for i, element in enumerate(chain)}
    top = 0
    for element in elements[1:]:
        for candidate in (element, *element.iterancestors()):
            if candidate in depth:
                top = max(top, depth[candidate])
                break
    return chain[top]


def _grams(words: list[str]) -> Iterable[tuple[str, ...]]:
    return zip(words, words[1:], words[2:], strict=False)  # _N words each


def _units(root: lxml.html.HtmlElement) -> list[_Unit]:
    blocky: set[lxml.html.HtmlElement] = set()
    for element in root.iter(*_BLOCKS, *_MEDIA):
        for ancestor in element.iterancestors():
            if ancestor in blocky:
                break
            blocky.add(ancestor)
    units: list[_Unit] = []
    run = _Unit()

    def close() -> None:
        nonlocal run
        parts = [e.text_content() for e in run.elements] + [str(getattr(e, kind) or "") for e, kind in run.texts]
        run.words = tokens(" ".join(parts))
        units.append(run)
        run = _Unit()

    def walk(element: lxml.html.HtmlElement) -> None:
        text = element.text
        if text and not text.isspace():
            run.texts.append((element, "text"))
        for child in element:
            tag = child.tag
            if not isinstance(tag, str):
                pass
            elif tag in _MEDIA and (tag != "figure" or child not in blocky):
                if run.elements or run.texts:
                    close()
                units.append(_Unit(elements=[child], media=True))
            elif tag in _LEAVES or (tag in _BLOCKS and child not in blocky):
                if run.elements or run.texts:
                    close()
                words = tokens(child.text_content())
                media = not words and next(child.iter(*_MEDIA), None) is not None  # <p><img></p>
                units.append(_Unit(elements=[child], words=words, media=media))
            elif child in blocky:
                if run.elements or run.texts:
                    close()
                walk(child)
                if run.elements or run.texts:
                    close()
            else:
                run.elements.append(child)
            tail = child.tail
            if tail and not tail.isspace():
                run.texts.append((child, "tail"))

    walk(root)
    if run.elements or run.texts:
        close()
    return units


def _prune(root: lxml.html.HtmlElement, kept: list[_Unit], dropped: list[_Unit]) -> lxml.html.HtmlElement:
    keep: set[lxml.html.HtmlElement] = set()
    for unit in kept:
        for element in unit.elements:
            keep.add(element)
        for element, kind in unit.texts:
            keep.add(element if kind == "text" else element.getparent())
    holders: set[lxml.html.HtmlElement] = set()
    for element in keep:
        for ancestor in element.iterancestors():
            if ancestor in holders:
                break
            holders.add(ancestor)
    for unit in dropped:
        for element, kind in unit.texts:
            setattr(element, kind, None)
        for element in unit.elements:
            if element.getparent() is not None:
                element.drop_tree()  # its tail, a unit of its own, was decided apart
    stack = [root]
    while stack:
        for child in list(stack.pop()):
            if not isinstance(child.tag, str) or child in keep:
                continue
            if child in holders:
                stack.append(child)
            else:
                child.drop_tree()  # its tail, if kept, stays
    top = root
    while True:
        children = [c for c in top if isinstance(c.tag, str)]
        if len(children) == 1 and not (top.text or "").strip() and children[0] not in keep:
            top = children[0]
            continue
        return top
