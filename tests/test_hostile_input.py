"""Hostile input through ingest, feeds and digest: any bytes, template syntax, header injection.

Every example is a fresh project run through ``publisher run`` (in-process), and every
artifact is read back the way its consumer reads it: feeds with lxml, tests/feedcheck.py and
feedparser; the digest with the stdlib email parser (``policy.default``), which must find no
defect, exactly the digest's own headers, and a multipart/alternative of text and HTML.

- (a) arbitrary bytes as .txt/.md/.html articles: a one-line error naming the file (exit 1,
  the other articles stored), or valid feeds and a valid message;
- (b) Jinja syntax in titles, authors, tags, summaries and bodies comes out literally;
- (c) line breaks (CR, LF, NEL, U+2028, ``\\r\\nBcc: ...``) and RFC 2047 encoded words
  (``=?utf-8?q?=0D=0ABcc:...?=``) in any article field never add a header or break a header
  line, for the digest and for each reader's personal copy.
"""

from __future__ import annotations

import copy
import email
import email.policy
import html
import json
import re
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from lxml import etree

from publisher import digest
from publisher.store import Article
from tests.conftest import NOW, REPO, SAMPLE, SAMPLE_TITLE, Project
from tests.delivery_helpers import subscribe
from tests.feedcheck import ATOM_NS, check_feed_folder, read_back

A = f"{{{ATOM_NS}}}"
# The digest's headers, each exactly once; a reader's personal copy has the same set.
HEADERS = {
    "Subject",
    "From",
    "To",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
}
SECRET = "hostile-input-link-secret-5Kq8Zt"
READERS = ["ada@example.org", "grace@example.net"]
# U+2060 WORD JOINER: what digest.header_text puts between "=" and "?" in a header.
JOINER = "\u2060"
# Everything a subject template can show of an article.
SUBJECT = (
    "{{ site.title }}: {% for a in articles %}{{ a.title }} | {{ a.author }} | {{ a.tags|join(' ') }} | "
    "{{ a.summary }} / {% endfor %}"
)

# Hypothesis: no shrinking (each example is a whole project), a fresh folder per example.
FAST = settings(
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)


# -- a project per example ---------------------------------------------------------------------


@contextmanager
def fresh_project(**sections: dict[str, Any]) -> Iterator[Project]:
    """A throwaway project like the ``project`` fixture (sample article included), configured."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "articles").mkdir()
        (root / "articles" / SAMPLE.name).write_bytes(SAMPLE.read_bytes())
        settings_ = tomllib.loads((REPO / "publisher.toml").read_text(encoding="utf-8"))
        project = Project(root=root, settings=copy.deepcopy(settings_))
        project.configure(**sections)
        yield project


def stored(project: Project) -> tuple[list[Article], list[Article]]:
    """Every stored article, and those in the last digest."""
    store = project.open_store()
    try:
        last = store.last_digest()
        return store.newest_articles(), store.digest_articles(last.id) if last else []
    finally:
        store.close()


# -- the message --------------------------------------------------------------------------------


def messages(project: Project) -> list[bytes]:
    """Every .eml the outbox holds: the digest, or one personal copy per reader (in a folder)."""
    return [path.read_bytes() for path in sorted(project.outbox.rglob("*.eml"))] if project.outbox.exists() else []


def check_message(raw: bytes) -> EmailMessage:
    """A well-formed digest: CRLF lines, the expected headers once each, text and HTML, no defect."""
    lines = raw.split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines), "a bare CR or LF in the message"
    head = lines[: lines.index(b"")]
    names: list[str] = []
    for line in head:
        assert line.isascii() and len(line) <= 998, f"header line not 7-bit or too long: {line[:100]!r}"
        if line[:1] in (b" ", b"\t"):
            assert names, "a continuation line before any header"
            continue
        name, colon, _ = line.partition(b":")
        assert colon and re.fullmatch(rb"[!-9;-~]+", name), f"not a header line: {line[:100]!r}"
        names.append(name.decode())
    # One-click unsubscribe only where the link is the reader's own (RFC 8058): not in every digest.
    expected = HEADERS if "List-Unsubscribe-Post" in names else HEADERS - {"List-Unsubscribe-Post"}
    assert sorted(names) == sorted(expected), f"header lines {names}"

    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert sorted(message.keys()) == sorted(expected)
    for part in message.walk():
        assert not part.defects, f"{part.get_content_type()}: {part.defects}"
        for name, value in part.items():
            assert not getattr(value, "defects", ()), f"{name}: {value.defects}"
            assert not re.search(r"[\r\n\x0b\x0c\x1c-\x1f\x85\u2028\u2029]", str(value)), f"{name}: {value!r}"
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text part (LF line ends, as a mail client shows it) and the HTML part."""
    text, html_part = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html_part is not None
    return str(text.get_content()).replace("\r\n", "\n"), str(html_part.get_content())


def digest_cells(html_part: str) -> list[dict[str, str]]:
    """Each article's cell in the digest's HTML: title, meta line and body text."""
    doc = lxml.html.document_fromstring(html_part)
    cells = []
    for cell in doc.xpath("//td[contains(concat(' ', @class, ' '), ' article ')][.//h2]"):
        [title] = cell.xpath(".//h2/a")
        [meta] = cell.xpath(".//p[contains(@class, 'meta')]")
        body = cell.xpath(".//div[contains(@class, 'body')]")
        cells.append(
            {"title": title.text_content(), "meta": meta.text_content(), "body": body[0].text_content() if body else ""}
        )
    return cells


def html_text(fragment: str | None) -> str:
    return str(lxml.html.fragment_fromstring(fragment or "", create_parent="div").text_content())


def words(text: str) -> str:
    return " ".join(text.split())


def literal(header_value: str) -> str:
    """A header's text as the title it came from (without header_text's word joiners)."""
    return header_value.replace(JOINER, "")


# -- (a) any bytes ------------------------------------------------------------------------------

# How files start: front matter, a heading, an HTML page, byte order marks, an XML declaration.
PREFIXES = [
    b"",
    b"---\ntitle: ",
    b"---\n",
    b"# ",
    b"Plain title line\n\n",
    b"<html><head><title>",
    b"<html><body><article><h1>Headline</h1><p>",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xfe\xff",
    b"\x00\x00\xfe\xff",
    b"<?xml version='1.0' encoding='utf-16'?>",
    b'<meta charset="shift_jis">',
    b"<!DOCTYPE html>",
]
CODECS = ["utf-8", "utf-16", "utf-16-be", "utf-32", "cp1252", "latin-1", "shift_jis", "koi8-r", "gb18030", "utf-7"]
# YAML values that have broken front matter readers: impossible dates, huge numbers, tags,
# anchors, nesting, binary, floats that are not numbers.
YAML_VALUES = [
    "2001-02-30",
    "0000-01-01",
    "2020-01-01 25:61:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "2024-03-05",
    "2024-03-05T10:00:00Z",
    ".inf",
    "-.nan",
    "!!binary aGVsbG8=",
    "!!python/object/apply:os.system ['true']",
    "!!set {a, b}",
    "&anchor [x, *anchor]",
    "*undefined",
    "[" * 500,  # nested too deeply for PyYAML's recursive parser
    "[" * 500 + "]" * 500,
    "9" * 5000,
    "0x" + "f" * 3000,
    "1e999",
    "[[a]]",
    "{a: 1}",
    "|\n  block\n  text",
    "'unclosed",
    "\t tab",
    "~",
    "yes",
]
yaml_value = st.one_of(
    st.sampled_from(YAML_VALUES),
    st.text(max_size=40).map(lambda text: json.dumps(text, ensure_ascii=False)),
    st.integers().map(str),
    st.floats().map(lambda number: json.dumps(number)),
)
front_matter = st.builds(
    lambda fields, body: (
        "---\n" + "".join(f"{key}: {value}\n" for key, value in fields.items()) + "---\n" + body
    ).encode("utf-8", "surrogatepass"),
    st.dictionaries(st.sampled_from(["title", "date", "author", "tags", "summary", "slug", "layout"]), yaml_value),
    st.text(max_size=300),
)
hostile = st.one_of(
    st.binary(max_size=2000),
    st.builds(bytes.__add__, st.sampled_from(PREFIXES), st.binary(max_size=2000)),
    st.builds(
        lambda prefix, text, codec: prefix + text.encode(codec, "replace"),
        st.sampled_from(PREFIXES),
        st.text(max_size=800),
        st.sampled_from(CODECS),
    ),
    front_matter,
)
_ERROR_LINE = re.compile(r"publisher: error: (?P<path>.+?\.(?:txt|md|html)): (?P<reason>\S.*)")


@settings(FAST, max_examples=50)
@given(st.lists(st.tuples(st.sampled_from(["txt", "md", "html"]), hostile), min_size=1, max_size=4))
def test_any_bytes_as_articles_give_one_line_errors_or_valid_feeds_and_a_valid_message(
    files: list[tuple[str, bytes]],
) -> None:
    with fresh_project(digest={"subject": SUBJECT}) as project:
        paths = {str(project.add_article(f"h{i}.{suffix}", data)): f"h{i}" for i, (suffix, data) in enumerate(files)}

        result = project.cli("run")

        assert "Traceback" not in result.stderr
        failed: dict[str, str] = {}
        for line in result.stderr.splitlines():
            match = _ERROR_LINE.fullmatch(line)
            if line.startswith("publisher: error:"):
                assert match and match["path"] in paths, f"not a one-line error naming an article: {line!r}"
                assert match["path"] not in failed, f"two errors for one file: {line!r}"
                failed[match["path"]] = match["reason"]
        assert result.exit_code == (1 if failed else 0), result.output
        everything, mailed = stored(project)
        assert sorted(a.key for a in everything) == sorted(
            [SAMPLE.stem, *(key for path, key in paths.items() if path not in failed)]
        ), "a file that failed is stored, or one that did not fail is missing"

        feeds = check_feed_folder(project.root / "feeds")
        entries = read_back(feeds["atom.xml"]).entries
        assert len(entries) == len(everything)

        [raw] = messages(project)
        message = check_message(raw)
        text, html_part = parts(message)
        assert SAMPLE_TITLE in {a.title for a in mailed}
        assert sorted(cell["title"] for cell in digest_cells(html_part)) == sorted(a.title for a in mailed)
        lines = set(text.split("\n"))
        assert all(a.title in lines for a in mailed), "a title is not a line of the text part"
        subject = literal(str(message["Subject"]))
        assert all(a.title in subject for a in mailed)


@pytest.mark.parametrize(
    ("front", "error"),
    [
        ("date: 2001-02-30", "broken front matter: invalid YAML at line 3: '2001-02-30' is not a real date (day is"),
        ("date: 2020-01-01 25:61:00", "at line 3: '2020-01-01 25:61:00' is not a real date (hour must be in 0..23)"),
        ("date: 0000-01-01", "at line 3: '0000-01-01' is not a real date (year 0 is out of range)"),
        ("date: '0001-01-01T00:00:00+14:00'", "front matter: date is out of range: '0001-01-01T00:00:00+14:00'"),
        ("date: 9999-12-31T23:59:59-14:00", "front matter: date is out of range: '9999-12-31T23:59:59-14:00'"),
        ("date: 24 March", "front matter: date is not a date: '24 March'"),
        ("slug: " + "9" * 5000, "at line 3: '" + "9" * 40 + "…' is not a usable int"),
        ("tags: " + "[" * 500 + "]" * 500, "broken front matter: nested too deeply"),
    ],
    ids=[
        "february-30",
        "hour-25",
        "year-0",
        "before-year-1-in-utc",
        "after-year-9999-in-utc",
        "text",
        "huge-int",
        "nesting",
    ],
)
def test_impossible_front_matter_values_are_one_clear_error_and_the_rest_goes_on(
    project: Project, front: str, error: str
) -> None:
    """PyYAML raises bare ValueErrors ("day is out of range for month") or RecursionError, and a
    date outside what UTC can hold broke the store's write for the whole run."""
    path = project.add_article("bad.md", f"---\ntitle: A title\n{front}\n---\nSome text.\n")

    result = project.cli("run")

    assert result.exit_code == 1
    [line] = [line for line in result.stderr.splitlines() if line.startswith("publisher: error:")]
    assert line.startswith(f"publisher: error: {path}: ") and error in line, line
    everything, mailed = stored(project)
    assert [a.title for a in everything] == [a.title for a in mailed] == [SAMPLE_TITLE]


# -- (b) template syntax stays text ----------------------------------------------------------------

JINJA = [
    "{{ 7*7 }}",
    "{{7*'7'}}",
    "{% for x in range(3) %}x{% endfor %}",
    "{{ config }}",
    "{{ config.items() }}",
    "{# a comment #}",
    "{{ site.title }}",
    "{{ unsubscribe_url }}",
    "{{ articles|length }}",
    "{% raw %}",
    "{% endraw %}",
    "{%- if true -%}yes{%- endif %}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self }}",
    "{{ lipsum.__globals__ }}",
    "{% include 'digest.txt.j2' %}",
    "${7*7}",
    "#{7*7}",
    "{{",
    "}}",
    "{%",
    "%}",
]
# Letters, digits, punctuation and a few other scripts: all NFC, none a control.
ALPHABET = "abcdefXYZ 0123456789.,;:!?'\"()[]{}%#*_-+=/\\<>&@$^~|`éüß東京😀"
filler = st.text(ALPHABET, max_size=12)


def jinja_text(prefix: str) -> st.SearchStrategy[str]:
    """``prefix`` (so that no value is mistaken for page chrome) and Jinja among other text."""
    return st.builds(lambda *pieces: words(prefix + " " + " ".join(pieces)), filler, st.sampled_from(JINJA), filler)


def md_escape(text: str) -> str:
    """Markdown that renders as ``text``: every ASCII punctuation mark backslash-escaped."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", text)


@settings(FAST, max_examples=30)
@given(
    titles=st.tuples(jinja_text("Story one"), jinja_text("Story two"), jinja_text("Story three")),
    author=jinja_text("Writer"),
    tag=jinja_text("Topic").map(lambda tag: words(tag.replace(",", " "))),
    summary=jinja_text("In short"),
    body=jinja_text("Paragraph text says"),
)
def test_template_syntax_in_articles_comes_out_literally(
    titles: tuple[str, str, str], author: str, tag: str, summary: str, body: str
) -> None:
    md_title, txt_title, html_title = titles
    meta = {"title": md_title, "author": author, "tags": [tag], "summary": summary}
    front = "".join(f"{key}: {json.dumps(value, ensure_ascii=False)}\n" for key, value in meta.items())
    paragraph = f"{body} and the end of the paragraph."
    page = (
        f'<html><head><meta name="author" content="{html.escape(author)}">'
        f'<meta name="keywords" content="{html.escape(tag)}"><meta name="description" content="{html.escape(summary)}">'
        f"</head><body><article><h1>{html.escape(html_title)}</h1><p>{html.escape(paragraph)}</p></article></body></html>"
    )
    with fresh_project(digest={"subject": SUBJECT}) as project:
        project.add_article("one.md", f"---\n{front}---\n{md_escape(paragraph)}\n")
        project.add_article("two.txt", f"{txt_title}\n\n{paragraph}\n")
        project.add_article("three.html", page)

        result = project.cli("run")

        assert result.exit_code == 0, result.output
        everything, mailed = stored(project)
        by_title = {a.title: a for a in everything}
        assert set(titles) <= set(by_title), f"titles changed on the way in: {sorted(by_title)}"
        assert len(mailed) == 4
        for title in titles:
            article = by_title[title]
            assert paragraph in article.body_text
            if article.format != "txt":
                assert (article.author, article.tags, article.summary) == (author, [tag], summary)

        [raw] = messages(project)
        message = check_message(raw)
        subject = literal(str(message["Subject"]))
        for title in titles:
            assert f"{title} | " in subject
        assert f" | {author} | {tag} | {summary} / " in subject
        text, html_part = parts(message)
        cells = {cell["title"]: cell for cell in digest_cells(html_part)}
        lines = text.split("\n")
        for title in titles:
            assert words(paragraph) in words(cells[title]["body"])
            assert title in lines
        assert cells[md_title]["meta"].startswith(f"{author} · ")
        assert f"{author} · " in text
        assert words(paragraph) in words(text)

        _check_feeds_say(project, {title: by_title[title] for title in titles}, paragraph)


def _check_feeds_say(project: Project, articles: dict[str, Article], paragraph: str) -> None:
    """Atom, RSS, JSON Feed and the tag feed hold each title, author, tag and summary as written."""
    feeds = check_feed_folder(project.root / "feeds")
    atom = {e.findtext(f"{A}title"): e for e in etree.fromstring(feeds["atom.xml"]).iter(f"{A}entry")}
    rss = {i.findtext("title"): i for i in etree.fromstring(feeds["rss.xml"]).iter("item")}
    items = {item["title"]: item for item in json.loads(feeds["feed.json"])["items"]}
    for title, article in articles.items():
        entry, item, json_item = atom[title], rss[title], items[title]
        for content in (entry.findtext(f"{A}content"), json_item["content_html"]):
            assert words(paragraph) in words(html_text(content))
        assert entry.findtext(f"{A}summary") == json_item["summary"] == article.summary
        assert [c.get("term") for c in entry.iter(f"{A}category")] == [c.text for c in item.iter("category")]
        assert [c.get("term") for c in entry.iter(f"{A}category")] == json_item["tags"] == article.tags
        if article.author:
            assert entry.findtext(f"{A}author/{A}name") == json_item["authors"][0]["name"] == article.author
    tag_feeds = [name for name in feeds if name.startswith("tags/") and name.endswith(".xml")]
    assert tag_feeds, "no tag feed"
    for name in tag_feeds:
        root = etree.fromstring(feeds[name])
        assert {e.findtext(f"{A}title") for e in root.iter(f"{A}entry")} <= set(articles)


# -- (c) line breaks and encoded words never make a header ---------------------------------------------

INJECTIONS = [
    "\r",
    "\n",
    "\r\n",
    "\x85",
    "\u2028",
    "\u2029",
    "\x0b",
    "\x0c",
    "\t",
    "\r\nBcc: victim@evil.example",
    "\nBcc: victim@evil.example",
    "\rBcc: victim@evil.example",
    "\u2028Bcc: victim@evil.example",
    "\x85Bcc: victim@evil.example",
    "\r\n\r\n<p>a body of its own</p>",
    "\r\n X-Folded: continuation",
    "=?utf-8?q?x=0D=0ABcc:_victim@evil.example?=",
    "=?utf-8?b?eA0KQmNjOiB2aWN0aW1AZXZpbC5leGFtcGxl?=",
    "=?iso-8859-1?q?=0D=0ABcc:=20victim@evil.example?=",
    "word=?utf-8?q?=0ABcc:_victim@evil.example?=word",
    "=?utf-8?q?=E2=80=A8Bcc:_victim@evil.example?=",
    ": colon",
    "Subject: a second subject",
    "<victim@evil.example>",
    "é" * 90,  # a long non-ASCII word: folded as encoded words
    "x" * 200,  # a word longer than a line
]
injected = st.builds(lambda before, bad, after: before + bad + after, filler, st.sampled_from(INJECTIONS), filler)


def _md_article(title: str, author: str, tags: list[str], summary: str) -> str:
    meta = {"title": title, "author": author, "tags": tags, "summary": summary}
    front = "".join(f"{key}: {json.dumps(value, ensure_ascii=False)}\n" for key, value in meta.items())
    return f"---\n{front}---\nA paragraph of ordinary text.\n"


def _html_article(title: str, author: str, tag: str, summary: str) -> str:
    def attribute(text: str) -> str:  # character references: the page's own way to hold a CR
        return "".join(f"&#{ord(c)};" if not c.isalnum() else c for c in text)

    return (
        f'<html><head><title>{attribute(title)}</title><meta name="author" content="{attribute(author)}">'
        f'<meta name="keywords" content="{attribute(tag)}"><meta name="description" content="{attribute(summary)}">'
        f"</head><body><article><h1>{attribute(title)}</h1><p>A paragraph of other text.</p></article></body></html>"
    )


@settings(FAST, max_examples=30)
@given(
    values=st.lists(injected, min_size=8, max_size=8),
    readers=st.booleans(),
)
def test_line_breaks_and_encoded_words_in_any_field_never_add_a_header(values: list[str], readers: bool) -> None:
    md_title, author, tag, summary, html_title, html_author, html_tag, txt_title = values
    with fresh_project(digest={"subject": SUBJECT}) as project:
        if readers:
            subscribe(project, READERS)
        project.add_article("one.md", _md_article(f"Title {md_title}", author, [tag, "plain"], summary))
        project.add_article("two.html", _html_article(f"Title {html_title}", html_author, html_tag, summary))
        project.add_article("three.txt", f"Title {txt_title}\n\nA paragraph of its own text.\n".encode())

        result = project.cli("run", env={"PUBLISHER_UNSUBSCRIBE_SECRET": SECRET})

        assert result.exit_code == 0, result.output
        _, mailed = stored(project)
        assert len(mailed) == 4
        copies = messages(project)
        assert len(copies) == (len(READERS) if readers else 1)
        for raw in copies:
            message = check_message(raw)
            for article in mailed:
                assert not re.search(r"[\r\n\x85\u2028\u2029]", article.title + (article.author or "")), article
            if not readers:  # a reader's copy changes the subject: see test_each_readers_copy_has_the_digests_subject
                subject = literal(str(message["Subject"]))
                assert all(article.title in subject for article in mailed)
            _, html_part = parts(message)
            assert sorted(cell["title"] for cell in digest_cells(html_part)) == sorted(a.title for a in mailed)


# -- the same, aimed at the header builder directly --------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "=?utf-8?q?x=0D=0ABcc:_victim@evil.example?=",
        "Long " + "é" * 80 + " =?utf-8?q?=0ABcc:_victim@evil.example?=",
        "Site\r\nBcc: victim@evil.example",
        "Site\u2028Bcc: victim@evil.example",
    ],
)
def test_a_site_title_or_subject_that_looks_like_a_header_stays_in_its_own(project: Project, title: str) -> None:
    """Headers come from the config too (List-Id holds the site title): no header from there either."""
    config = project.configure(digest={"subject": "{{ site.title }}"})
    config = replace(config, site=replace(config.site, title=title))
    store = project.open_store()
    try:
        project.cli("ingest", str(project.articles))
        rendered = digest.render(config, digest.next_articles(config, store, NOW), digest_id="x", now=NOW)
    finally:
        store.close()

    message = check_message(rendered.message)
    assert literal(str(message["Subject"])) == words(title)
    assert literal(str(message["List-Id"])) == f"{words(title)} <digest.news.example.org>"


def test_a_long_unsubscribe_url_is_written_as_a_url_not_as_encoded_words(project: Project) -> None:
    """List-Unsubscribe (RFC 2369) is <URL>: encoded as RFC 2047 text, no mail client could use it."""
    url = "https://news.example.org/newsletters/weekly-digest/unsubscribe?list=weekly&source=email&lang=en-GB"
    project.configure(digest={"unsubscribe_url": url})

    result = project.cli("run")

    assert result.exit_code == 0, result.output
    [raw] = messages(project)
    check_message(raw)
    assert f"\r\nList-Unsubscribe: <{url}>\r\n".encode() in raw


def test_each_readers_copy_has_the_digests_subject(project: Project) -> None:
    """The copy keeps the subject exactly (Python's own folding doubles a space or drops one
    between encoded words), and its personal link (?s=TOKEN&t=SIGNATURE), always longer than a
    header line has room for, is written as a URL, not as encoded words."""
    project.configure(digest={"subject": "{{ articles[0].title }}"})  # folds into encoded words
    subscribe(project, READERS)

    result = project.cli("run", env={"PUBLISHER_UNSUBSCRIBE_SECRET": SECRET})

    assert result.exit_code == 0, result.output
    copies = messages(project)
    assert len(copies) == len(READERS)
    for raw in copies:
        message = check_message(raw)
        assert str(message["Subject"]) == SAMPLE_TITLE
        url = str(message["List-Unsubscribe"])
        assert url.startswith("<https://news.example.org/unsubscribe?s=") and len(url) > 78
        assert f"\r\nList-Unsubscribe: {url}\r\n".encode() in raw


def test_the_digest_keeps_a_subject_that_python_folds_badly(project: Project) -> None:
    """Python's folder ends a line with a space and starts the next with one before an encoded
    word, so the sample title reads back with two spaces before its opening quote. The digest's
    subject must read back exactly."""
    project.configure(digest={"subject": "{{ articles[0].title }}"})

    result = project.cli("run")

    assert result.exit_code == 0, result.output
    [raw] = messages(project)
    assert str(check_message(raw)["Subject"]) == SAMPLE_TITLE
