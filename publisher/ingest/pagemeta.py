"""What a page says about itself: headline, author, dates, language, lead image, canonical URL.

As the field reads it (trafilatura's and htmldate's order): JSON-LD first (schema.org Article
and its kinds, also inside ``@graph``), then OpenGraph/article/Dublin Core ``<meta>`` tags,
then the document (``<html lang dir>``, ``<link rel=canonical>``); the publication date from
htmldate when the page declares none.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import lxml.html

_ARTICLE_TYPES = re.compile(r"(?:Article|BlogPosting|NewsArticle|Report|Posting|WebPage|Review)$")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")
_RTL_LANGUAGES = {"ar", "arc", "ckb", "dv", "fa", "he", "iw", "ku", "ps", "sd", "syr", "ug", "ur", "yi"}
_JSON_LD_MAX = 200_000  # characters of one script parsed


@dataclass
class PageInfo:
    headline: str | None = None
    site_name: str | None = None
    author: str | None = None
    published: str | None = None
    modified: str | None = None
    language: str | None = None
    direction: str | None = None
    image: str | None = None
    image_alt: str | None = None
    canonical: str | None = None
    description: str | None = None


def page_info(doc: lxml.html.HtmlElement, meta: dict[str, str]) -> PageInfo:
    """Read ``doc`` (before anything is removed from it); ``meta``: its <meta> tags by lowercased name."""
    ld = _json_ld(doc)
    info = PageInfo(
        headline=_text(ld.get("headline")) or _text(ld.get("name")),
        site_name=_name(ld.get("publisher")),
        author=_name(ld.get("author")) or meta.get("author") or meta.get("article:author") or meta.get("dc.creator"),
        published=_text(ld.get("datePublished"))
        or meta.get("article:published_time")
        or meta.get("datepublished")
        or meta.get("dc.date")
        or meta.get("date"),
        modified=_text(ld.get("dateModified")) or meta.get("article:modified_time") or meta.get("og:updated_time"),
        description=meta.get("description") or meta.get("og:description") or _text(ld.get("description")),
        image=meta.get("og:image") or meta.get("og:image:url") or meta.get("twitter:image") or _image(ld.get("image")),
        image_alt=meta.get("og:image:alt") or meta.get("twitter:image:alt"),
    )
    if info.author and info.author.startswith(("http://", "https://")):
        info.author = None  # article:author is often the author's profile URL
    info.language = _language(doc, meta, ld)
    info.direction = _direction(doc, info.language)
    for element in doc.iter("link"):
        if "canonical" in (element.get("rel") or "").lower().split() and element.get("href"):
            info.canonical = str(element.get("href")).strip()
            break
    info.canonical = info.canonical or meta.get("og:url")
    return info


def _json_ld(doc: lxml.html.HtmlElement) -> dict[str, Any]:
    """The first schema.org article-like object in the page's JSON-LD, or {}."""
    for script in doc.iter("script"):
        if (script.get("type") or "").strip().lower() != "application/ld+json" or not script.text:
            continue
        if len(script.text) > _JSON_LD_MAX:
            continue
        try:
            data = json.loads(script.text)
        except ValueError:
            continue
        found = _article(data, 0)
        if found:
            return found
    return {}


def _article(data: Any, depth: int) -> dict[str, Any] | None:
    if depth > 4:
        return None
    if isinstance(data, list):
        for item in data:
            found = _article(item, depth + 1)
            if found:
                return found
        return None
    if not isinstance(data, dict):
        return None
    kinds = data.get("@type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if any(isinstance(kind, str) and _ARTICLE_TYPES.search(kind) for kind in kinds) and (
        "headline" in data or "datePublished" in data
    ):
        return data
    return _article(data.get("@graph"), depth + 1)


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return " ".join(value.split())
    return None


def _name(value: Any) -> str | None:
    if isinstance(value, list):
        names = [name for name in (_name(item) for item in value[:5]) if name]
        return ", ".join(names) or None
    if isinstance(value, dict):
        return _text(value.get("name"))
    return _text(value)


def _image(value: Any) -> str | None:
    if isinstance(value, list):
        return _image(value[0]) if value else None
    if isinstance(value, dict):
        return _text(value.get("url")) or _text(value.get("contentUrl"))
    return _text(value)


def _language(doc: lxml.html.HtmlElement, meta: dict[str, str], ld: dict[str, Any]) -> str | None:
    for value in (
        doc.get("lang"),
        doc.get("xml:lang"),
        meta.get("content-language"),
        meta.get("og:locale"),
        _text(ld.get("inLanguage")),
    ):
        candidate = (value or "").strip().replace("_", "-").split(",")[0].strip()
        if candidate and _LANGUAGE.fullmatch(candidate):
            return candidate
    return None


def _direction(doc: lxml.html.HtmlElement, language: str | None) -> str | None:
    """The page's declared dir, else what its language or its script says."""
    for element in (doc, doc.find("body")):
        if element is not None and (element.get("dir") or "").lower() in ("ltr", "rtl"):
            return str(element.get("dir")).lower()
    if language:
        return "rtl" if language.split("-")[0].lower() in _RTL_LANGUAGES else "ltr"
    body = doc.find("body")
    sample = body.text_content()[:2000] if body is not None else ""
    letters = [c for c in sample if c.isalpha()]
    if not letters:
        return None
    rtl = sum(1 for c in letters if unicodedata.bidirectional(c) in ("R", "AL"))
    return "rtl" if rtl > len(letters) / 2 else "ltr"


def htmldate(doc: lxml.html.HtmlElement) -> str | None:
    try:
        from htmldate import find_date

        # It copies a tree it is given before cleaning it.
        found = find_date(doc, extensive_search=False, outputformat="%Y-%m-%d")
    except Exception:  # a third-party parser on untrusted input: no date, not a failed article
        return None
    return str(found) if found else None
