"""Validity checks for the feed documents the tests produce: Atom 1.0, RSS 2.0, JSON Feed 1.1.

- :func:`check_atom`: the RELAX NG schema of RFC 4287 Appendix B (tests/schemas/atom.rnc,
  converted with rnc2rng, checked with lxml), plus the RFC's rules a schema cannot express.
- :func:`check_rss`: RSS 2.0's required elements, RFC 822 dates, the self link, guids.
- :func:`check_json_feed`: JSON Feed 1.1's required fields and their types, RFC 3339 dates.
- :func:`read_back`: the document as feedparser reads it (Atom and RSS; feedparser 6.0 does
  not read JSON Feed), with no bozo. HTML is not sanitized and relative URIs are not resolved,
  so values come back exactly as the document holds them.

Every check raises AssertionError with a message naming the document part that is wrong.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import rnc2rng
from lxml import etree

ATOM_NS = "http://www.w3.org/2005/Atom"
HISTORY_NS = "http://purl.org/syndication/history/1.0"
CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
A = f"{{{ATOM_NS}}}"
SCHEMA = Path(__file__).parent / "schemas" / "atom.rnc"

# RFC 3339 date-time as RFC 4287 3.3 restricts it: upper-case "T" and "Z", no lower-case forms.
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
# RFC 822 date-time (section 5, with RFC 1123's four-digit year, as RSS 2.0 asks).
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
RFC822 = re.compile(
    r"(?:(?P<day>Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d{2}:\d{2}(?::\d{2})? (?:[+-]\d{4}|UT|GMT|EST|EDT|CST|CDT|MST|MDT|PST|PDT|[A-IK-Z])"
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
# Media types RFC 4287 4.1.3.3 lets an entry carry inline without a summary.
_INLINE_TYPES = re.compile(r"(?:text|html|xhtml|text/.*|.*[+/]xml)", re.IGNORECASE)


def _parse_xml(data: bytes, what: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise AssertionError(f"{what}: not well-formed XML: {exc}") from None


@cache
def atom_schema() -> etree.RelaxNG:
    """tests/schemas/atom.rnc as an lxml validator, compiled once.

    rnc2rng declares the compact syntax's ``namespace local = ""`` as ``xmlns:local=""``,
    which XML namespaces forbid (a prefix cannot be undeclared in XML 1.0); the declaration is
    unused (it writes ``<nsName ns=""/>`` for ``local:*``), so it is removed.
    """
    rng = rnc2rng.dumps(rnc2rng.load(str(SCHEMA)))
    rng, count = re.subn(r'\s+xmlns:local=""', "", rng)
    assert count <= 1, "rnc2rng output changed: check the xmlns:local workaround"
    return etree.RelaxNG(etree.fromstring(rng.encode("utf-8")))


def check_date(value: str | None, where: str) -> datetime:
    """An RFC 3339 date-time with "T" and "Z" or an offset; returns it, aware."""
    assert value is not None, f"{where}: missing date"
    assert RFC3339.fullmatch(value), f"{where}: {value!r} is not an RFC 3339 date-time"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise AssertionError(f"{where}: {value!r} is not a real date-time ({exc})") from None
    assert parsed.tzinfo is not None, f"{where}: {value!r} has no offset"
    return parsed


def check_rfc822(value: str | None, where: str) -> datetime:
    """An RFC 822 date-time (four-digit year, a zone, the right weekday); returns it, aware."""
    assert value is not None, f"{where}: missing date"
    match = RFC822.fullmatch(value)
    assert match, f"{where}: {value!r} is not an RFC 822 date-time"
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{where}: {value!r} is not a real date-time ({exc})") from None
    assert parsed.tzinfo is not None, f"{where}: {value!r} has no usable zone"
    if match["day"]:
        assert match["day"] == _DAYS[parsed.weekday()], f"{where}: {value!r} names the wrong weekday"
    return parsed


def is_absolute_url(value: str | None) -> bool:
    if not value:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# -- Atom ------------------------------------------------------------------------------------


def check_atom(data: bytes) -> etree._Element:
    """A valid Atom 1.0 feed document (RFC 4287, and RFC 5005 where it is an archive)."""
    root = _parse_xml(data, "atom")
    schema = atom_schema()
    if not schema.validate(root.getroottree()):
        errors = "; ".join(f"line {e.line}: {e.message}" for e in schema.error_log)  # type: ignore[attr-defined]
        raise AssertionError(f"atom: not valid against RFC 4287's schema: {errors}")
    assert root.tag == f"{A}feed", f"atom: the root is {root.tag}, not atom:feed"
    entries = root.findall(f"{A}entry")

    # 4.1.1: an author on the feed, or on every entry (in the entry or its atom:source)
    if root.find(f"{A}author") is None:
        for i, entry in enumerate(entries):
            has = entry.find(f"{A}author") is not None or entry.find(f"{A}source/{A}author") is not None
            assert has, f"atom: no author on the feed nor on entry {i} ({_entry_id(entry)})"

    # 4.1.1: a self link (this project: exactly one); no two alternates with one type+hreflang
    selves = [link for link in root.findall(f"{A}link") if link.get("rel") == "self"]
    assert len(selves) == 1, f"atom: {len(selves)} links with rel=self on the feed, expected exactly 1"
    _check_alternates(root, "atom: feed")

    ids: dict[str, int] = {}
    for i, entry in enumerate(entries):
        where = f"atom: entry {i}"
        entry_id = _entry_id(entry)
        assert entry_id.strip(), f"{where}: empty atom:id"
        assert _SCHEME.match(entry_id), f"{where}: atom:id {entry_id!r} is not an absolute IRI"
        assert entry_id not in ids, f"{where}: atom:id {entry_id!r} repeats entry {ids[entry_id]}"
        ids[entry_id] = i
        _check_alternates(entry, where)
        content = entry.find(f"{A}content")
        has_summary = entry.find(f"{A}summary") is not None
        if content is None:  # 4.1.1: without content, an alternate link
            alternates = [link for link in entry.findall(f"{A}link") if link.get("rel", "alternate") == "alternate"]
            assert alternates, f"{where}: no atom:content and no alternate link"
        else:  # 4.1.1.2: out-of-line or non-text content needs a summary
            if content.get("src") is not None:
                assert has_summary, f"{where}: atom:content has src but the entry has no atom:summary"
            elif not _INLINE_TYPES.fullmatch(content.get("type", "text")):
                assert has_summary, f"{where}: atom:content of type {content.get('type')} needs an atom:summary"
    feed_id = root.findtext(f"{A}id") or ""
    assert _SCHEME.match(feed_id), f"atom: feed atom:id {feed_id!r} is not an absolute IRI"

    # 3.3: every date construct, wherever it is (entries, atom:source)
    for element in root.iter(f"{A}updated", f"{A}published"):
        check_date(element.text, f"atom: {_path(element)}")

    # RFC 5005 section 4: an archive document points at the feed it belongs to
    if root.find(f"{{{HISTORY_NS}}}archive") is not None:
        currents = [link for link in root.findall(f"{A}link") if link.get("rel") == "current"]
        assert len(currents) == 1, "atom: an fh:archive document needs one rel=current link"
    return root


def _entry_id(entry: etree._Element) -> str:
    return entry.findtext(f"{A}id") or ""


def _check_alternates(element: etree._Element, where: str) -> None:
    seen: set[tuple[str | None, str | None]] = set()
    for link in element.findall(f"{A}link"):
        if link.get("rel", "alternate") == "alternate":
            key = (link.get("type"), link.get("hreflang"))
            assert key not in seen, f"{where}: two alternate links with type/hreflang {key}"
            seen.add(key)


def _path(element: etree._Element) -> str:
    tree = element.getroottree()
    return str(tree.getpath(element))


# -- RSS -------------------------------------------------------------------------------------


def check_rss(data: bytes) -> etree._Element:
    """A valid RSS 2.0 document (rssboard.org/rss-specification), with its atom:link self link."""
    root = _parse_xml(data, "rss")
    assert root.tag == "rss", f"rss: the root is {root.tag}, not rss"
    assert root.get("version") == "2.0", f"rss: version is {root.get('version')!r}, not '2.0'"
    channels = root.findall("channel")
    assert len(channels) == 1, f"rss: {len(channels)} channel elements, expected 1"
    [channel] = channels
    for name in ("title", "link", "description"):
        assert channel.find(name) is not None, f"rss: channel has no {name}"
    assert (channel.findtext("title") or "").strip(), "rss: empty channel title"
    assert is_absolute_url(channel.findtext("link")), f"rss: channel link {channel.findtext('link')!r}"
    for name in ("pubDate", "lastBuildDate"):
        if channel.find(name) is not None:
            check_rfc822(channel.findtext(name), f"rss: channel {name}")

    selves = [link for link in channel.findall(f"{A}link") if link.get("rel") == "self"]
    assert len(selves) == 1, f"rss: {len(selves)} atom:link rel=self in the channel, expected exactly 1"
    for link in channel.findall(f"{A}link"):
        assert is_absolute_url(link.get("href")), f"rss: atom:link rel={link.get('rel')} href {link.get('href')!r}"

    for element in root.iter():
        if isinstance(element.tag, str) and etree.QName(element).localname == "encoded":
            assert etree.QName(element).namespace == CONTENT_NS, (
                f"rss: {element.tag} is not in the content module's namespace {CONTENT_NS}"
            )

    guids: dict[str, int] = {}
    for i, item in enumerate(channel.findall("item")):
        where = f"rss: item {i}"
        title, description = item.find("title"), item.find("description")
        assert title is not None or description is not None, f"{where}: neither title nor description"
        if item.find("link") is not None:
            assert is_absolute_url(item.findtext("link")), f"{where}: link {item.findtext('link')!r}"
        guid = item.find("guid")
        assert guid is not None, f"{where}: no guid"
        value = (guid.text or "").strip()
        assert value, f"{where}: empty guid"
        permalink = guid.get("isPermaLink", "true")
        assert permalink in ("true", "false"), f"{where}: isPermaLink={permalink!r}"
        if permalink == "true":
            assert is_absolute_url(value), f"{where}: guid {value!r} is a permalink but not a URL"
        assert value not in guids, f"{where}: guid {value!r} repeats item {guids[value]}"
        guids[value] = i
        assert item.find("pubDate") is not None, f"{where}: no pubDate"
        check_rfc822(item.findtext("pubDate"), f"{where}: pubDate")
        for category in item.findall("category"):
            assert (category.text or "").strip(), f"{where}: empty category"
    return root


# -- JSON Feed -------------------------------------------------------------------------------


def check_json_feed(data: bytes) -> dict[str, Any]:
    """A valid JSON Feed 1.1 document (jsonfeed.org/version/1.1)."""
    try:
        feed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AssertionError(f"json: not UTF-8 JSON: {exc}") from None
    assert isinstance(feed, dict), "json: the top level is not an object"
    assert feed.get("version") == JSON_FEED_VERSION, f"json: version is {feed.get('version')!r}"
    assert isinstance(feed.get("title"), str) and feed["title"].strip(), "json: no title"
    for key in ("home_page_url", "feed_url"):
        if key in feed:
            assert is_absolute_url(feed[key]), f"json: {key} {feed[key]!r} is not an absolute URL"
    for key in ("description", "language", "user_comment", "next_url", "icon", "favicon"):
        if key in feed:
            assert isinstance(feed[key], str), f"json: {key} is not a string"
    for key in ("next_url", "icon", "favicon"):
        if key in feed:
            assert is_absolute_url(feed[key]), f"json: {key} {feed[key]!r} is not an absolute URL"
    _check_authors(feed, "json: feed")
    if "hubs" in feed:
        assert isinstance(feed["hubs"], list), "json: hubs is not a list"
        for hub in feed["hubs"]:
            assert isinstance(hub, dict) and isinstance(hub.get("type"), str), f"json: hub {hub!r} has no type"
            assert is_absolute_url(hub.get("url")), f"json: hub {hub!r} has no URL"
    items = feed.get("items")
    assert isinstance(items, list), "json: items is not a list"
    ids: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"json: item {i}"
        assert isinstance(item, dict), f"{where} is not an object"
        item_id = item.get("id")
        assert isinstance(item_id, str) and item_id, f"{where}: id {item_id!r} is not a non-empty string"
        assert item_id not in ids, f"{where}: id {item_id!r} repeats item {ids[item_id]}"
        ids[item_id] = i
        texts = [key for key in ("content_html", "content_text") if key in item]
        assert texts, f"{where}: neither content_html nor content_text"
        for key in (*texts, "title", "summary", "language"):
            if key in item:
                assert isinstance(item[key], str), f"{where}: {key} is not a string"
        for key in ("url", "external_url", "image", "banner_image"):
            if key in item:
                assert is_absolute_url(item[key]), f"{where}: {key} {item[key]!r} is not an absolute URL"
        for key in ("date_published", "date_modified"):
            if key in item:
                check_date(item[key], f"{where}: {key}")
        if "tags" in item:
            tags = item["tags"]
            assert isinstance(tags, list) and all(isinstance(t, str) for t in tags), f"{where}: tags {tags!r}"
        for attachment in item.get("attachments", []):
            assert is_absolute_url(attachment.get("url")), f"{where}: attachment {attachment!r} has no URL"
            assert isinstance(attachment.get("mime_type"), str) and "/" in attachment["mime_type"], attachment
            for key in ("size_in_bytes", "duration_in_seconds"):
                if key in attachment:
                    value = attachment[key]
                    assert isinstance(value, int | float) and not isinstance(value, bool) and value >= 0, attachment
        _check_authors(item, where)
    return feed


def _check_authors(obj: dict[str, Any], where: str) -> None:
    """1.1's ``authors`` list, and 1.0's single ``author`` (allowed beside it, for 1.0 readers),
    which must then say the same as the list's first."""
    if "author" in obj:
        assert isinstance(obj["author"], dict), f"{where}: author is not an object"
        assert obj.get("authors", [obj["author"]])[:1] == [obj["author"]], f"{where}: author and authors differ"
    if "authors" not in obj:
        return
    authors = obj["authors"]
    assert isinstance(authors, list), f"{where}: authors is not a list"
    for author in [*authors, *([obj["author"]] if "author" in obj else [])]:
        assert isinstance(author, dict), f"{where}: author {author!r} is not an object"
        fields = [key for key in ("name", "url", "avatar") if key in author]
        assert fields, f"{where}: author {author!r} has no name, url nor avatar"
        assert all(isinstance(author[key], str) for key in fields), f"{where}: author {author!r}"


# -- a whole feeds folder --------------------------------------------------------------------


def is_issue_archive(name: str) -> bool:
    """Whether ``name`` (relative to the feeds folder) is the issue archive's (publisher.archive)."""
    return name == "issues.xml" or name.startswith("issues/")


def check_feed_folder(root: Path) -> dict[str, bytes]:
    """Every feed document the writer owns in ``root``, checked and read back; by relative path.

    atom.xml, tags/*.xml and archive/*.xml are Atom, rss.xml is RSS, feed.json is JSON Feed;
    other files (feed.xsl, anything else in the folder) are returned unchecked. The issue archive
    (issues.xml, issues/: publisher.archive, written when a digest is sent) is not the feed
    writer's and is left out.
    """
    docs = {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not is_issue_archive(p.relative_to(root).as_posix())
    }
    for name, data in docs.items():
        try:
            if name == "feed.json":
                check_json_feed(data)
            elif name == "rss.xml":
                check_rss(data)
                read_back(data)
            elif name == "atom.xml" or re.fullmatch(r"(?:tags|archive)/[^/]+\.xml", name):
                check_atom(data)
                read_back(data)
        except AssertionError as exc:
            raise AssertionError(f"{root / name}: {exc}") from None
    return docs


# -- read back -------------------------------------------------------------------------------


def read_back(data: bytes) -> feedparser.FeedParserDict:
    """``data`` (Atom or RSS) as feedparser reads it, with values exactly as written."""
    parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    assert not parsed.bozo, f"feedparser: {parsed.get('bozo_exception')!r}"
    assert parsed.version in ("atom10", "rss20"), f"feedparser: read it as {parsed.version!r}"
    return parsed


def as_feedparser_reads(text: str) -> str:
    """``text`` as feedparser 6 returns it from a UTF-8 document.

    feedparser "repairs" UTF-8 read as Latin-1: a value whose characters are all Latin-1 and
    whose Latin-1 bytes are valid UTF-8 ("CafÃ©") is decoded again ("Café"). Text that merely
    looks like that ("PÆ" + cedilla: "PƸ") changes too; the document itself is right.
    """
    try:
        return text.encode("iso-8859-1").decode("utf-8")
    except UnicodeError:
        return text


# -- the W3C Feed Validator's rules that matter here ----------------------------------------
#
# The W3C validator (w3c/feedvalidator) is not on PyPI; these are the rules of it that the
# fixture site could break, checked directly across a whole feeds folder.

MEDIA_NS = "http://search.yahoo.com/mrss/"
# The validator's nonhtml elements (and descriptions): text that reads as markup or a character
# reference after parsing needs "&#x" on its line ("CharacterData"); here: never &amp; or &lt;.
_PLAIN_RSS = re.compile(
    rb"<(title|description|category|copyright|media:description|itunes:[a-z]+)(?: [^>]*)?>([^<]*)</\1>"
)


def check_w3c_rules(docs: dict[str, bytes]) -> None:
    """Across every document of a feeds folder (as check_feed_folder returns them):

    - every Atom document has its own atom:id (RFC 4287 4.2.6: one id per feed);
    - no two entries of one document share atom:updated ("Two entries with the same value
      for atom:updated");
    - RSS plain text writes & and < as character references, never &amp; or &lt;
      ("should use character references");
    - media:content, media:thumbnail and enclosures name an absolute URL, enclosures a type
      and a length in bytes.
    """
    feed_ids: dict[str, str] = {}
    for name, data in sorted(docs.items()):
        if name.endswith(".xml") and name != "rss.xml":
            root = _parse_xml(data, name)
            feed_id = root.findtext(f"{A}id") or ""
            assert feed_id not in feed_ids, f"{name}: atom:id {feed_id!r} is also {feed_ids[feed_id]}'s"
            feed_ids[feed_id] = name
            updated: dict[str, str] = {}
            for entry in root.iterfind(f"{A}entry"):
                value = entry.findtext(f"{A}updated") or ""
                assert value not in updated, f"{name}: entries {updated[value]} and {_entry_id(entry)} share {value}"
                updated[value] = _entry_id(entry)
                for link in entry.iterfind(f"{A}link[@rel='enclosure']"):
                    assert is_absolute_url(link.get("href")) and link.get("type"), f"{name}: enclosure {link.attrib}"
            _check_media(root, name)
        elif name == "rss.xml":
            for match in _PLAIN_RSS.finditer(data):
                text = match.group(2)
                assert b"&amp;" not in text and b"&lt;" not in text, f"rss.xml: {match.group(0)[:80]!r}"
            root = _parse_xml(data, name)
            for enclosure in root.iter("enclosure"):
                assert is_absolute_url(enclosure.get("url")), f"rss.xml: enclosure {enclosure.attrib}"
                assert (enclosure.get("length") or "").isdigit() and enclosure.get("type"), enclosure.attrib
            for item in root.iter("item"):
                assert len(item.findall("enclosure")) <= 1, "rss.xml: an item with two enclosures"
            _check_media(root, name)
            _check_itunes(root)


ITUNES = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"
_ITUNES_FORMATS = ("m4a", "mp3", "mov", "mp4", "m4v", "pdf", "epub")


def _check_itunes(root: etree._Element) -> None:
    """The validator's iTunes rules: a podcast channel names a category, says explicit as
    true/false and has an owner's email; an episode's enclosure is a format Apple plays."""
    channel = root.find("channel")
    assert channel is not None
    if not any(element.tag.startswith(ITUNES) for element in root.iter() if isinstance(element.tag, str)):
        return
    assert channel.find(f"{ITUNES}category") is not None, "rss.xml: itunes channel without itunes:category"
    assert channel.findtext(f"{ITUNES}explicit") in ("true", "false"), "rss.xml: itunes:explicit not true/false"
    assert channel.findtext(f"{ITUNES}owner/{ITUNES}email"), "rss.xml: no itunes:owner/itunes:email"
    for item in channel.iter("item"):
        if any(isinstance(c.tag, str) and c.tag.startswith(ITUNES) for c in item):
            for enclosure in item.iter("enclosure"):
                extension = (enclosure.get("url") or "").rsplit(".", 1)[-1]
                assert extension in _ITUNES_FORMATS, f"rss.xml: episode enclosure .{extension}"
            duration = item.findtext(f"{ITUNES}duration")
            assert duration is None or re.fullmatch(r"\d+(:[0-5]\d(:[0-5]\d)?)?", duration), duration


def _check_media(root: etree._Element, name: str) -> None:
    for element in root.iter(f"{{{MEDIA_NS}}}content", f"{{{MEDIA_NS}}}thumbnail"):
        assert is_absolute_url(element.get("url")), f"{name}: {element.tag} url {element.get('url')!r}"


def check_page(data: bytes, feeds: list[str]) -> etree._Element:
    """An HTML page of the feeds: a language, no script, one autodiscovery link per feed."""
    import lxml.html

    root = lxml.html.document_fromstring(data)
    assert root.get("lang"), "page: no lang"
    assert not root.xpath("//script | //*[@onload] | //*[@onclick]"), "page: scripts"
    found = [link.get("href") for link in root.xpath("//head/link[@rel='alternate']")]
    assert found == feeds, f"page: autodiscovery links {found}, expected {feeds}"
    for link in root.xpath("//head/link[@rel='alternate']"):
        assert link.get("type") in ("application/atom+xml", "application/rss+xml", "application/feed+json")
    return root
