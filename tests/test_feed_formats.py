"""All three feed formats as `publisher run` writes them: valid, and saying the same thing.

Each document is checked with tests/feedcheck.py (the Atom schema of RFC 4287 and its extra
rules, RSS 2.0's and JSON Feed 1.1's required parts) and read back with feedparser; what it
says about each article is compared with the store. The first tests show that each check
rejects a broken document.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree

from publisher.feed import ids
from publisher.feed.model import own_date
from publisher.links import absolute_html, article_url
from publisher.store import Article, NewArticle
from tests import feedcheck
from tests.conftest import Project
from tests.feedcheck import (
    ATOM_NS,
    CONTENT_NS,
    check_atom,
    check_feed_folder,
    check_json_feed,
    check_rss,
    is_issue_archive,
    read_back,
)

A = f"{{{ATOM_NS}}}"
SITE = "https://news.example.org/"
FEEDS = SITE + "feeds/"
TRICKY = "Tom & Jerry <b>bold</b> \"quotes\" 'single'"
CYRILLIC = "Привет, мир: «новости» дня"
ARABIC = "مرحبا بالعالم: أخبار اليوم"
CJK = "東京の天気 🌧️ 予報 😀 and more"
LONG = "A long read about everything"

# -- each check rejects a broken document ----------------------------------------------------

ATOM_OK = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:fh="http://purl.org/syndication/history/1.0">
  <id>https://example.org/feed.xml</id>
  <title>Example</title>
  <updated>2024-01-02T10:00:00Z</updated>
  <author><name>Ed</name></author>
  <link rel="self" href="https://example.org/feed.xml"/>
  <link rel="alternate" type="text/html" href="https://example.org/"/>
  <entry>
    <id>tag:example.org,2024:one</id>
    <title type="text">One &amp; &lt;b&gt;</title>
    <updated>2024-01-02T10:00:00+01:00</updated>
    <published>2024-01-01T10:00:00.250Z</published>
    <link href="https://example.org/one"/>
    <content type="html">&lt;p&gt;One&lt;/p&gt;</content>
  </entry>
  <entry>
    <id>tag:example.org,2024:two</id>
    <title>Two</title>
    <updated>2024-01-01T09:00:00Z</updated>
    <summary>Two, in short</summary>
    <content type="video/mp4" src="https://example.org/two.mp4"/>
  </entry>
</feed>
"""

RSS_OK = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" xmlns:content="http://purl.org/rss/1.0/modules/content/">
  <channel>
    <title>Example</title>
    <link>https://example.org/</link>
    <description>The newest</description>
    <atom:link rel="self" href="https://example.org/rss.xml" type="application/rss+xml"/>
    <lastBuildDate>Tue, 02 Jan 2024 10:00:00 +0000</lastBuildDate>
    <item>
      <title>One</title>
      <link>https://example.org/one</link>
      <guid isPermaLink="false">tag:example.org,2024:one</guid>
      <pubDate>Mon, 01 Jan 2024 10:00:00 +0000</pubDate>
      <content:encoded>&lt;p&gt;One&lt;/p&gt;</content:encoded>
    </item>
    <item>
      <description>Two</description>
      <guid>https://example.org/two</guid>
      <pubDate>1 Jan 2024 09:00 GMT</pubDate>
    </item>
  </channel>
</rss>
"""

JSON_OK = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "Example",
    "home_page_url": "https://example.org/",
    "feed_url": "https://example.org/feed.json",
    "hubs": [{"type": "WebSub", "url": "https://hub.example.org/"}],
    "items": [
        {"id": "tag:example.org,2024:one", "content_html": "<p>One</p>", "date_published": "2024-01-01T10:00:00Z"},
        {"id": "2", "content_text": "Two", "authors": [{"name": "Ed"}], "tags": ["a"]},
    ],
}


def _atom_broken(old: str, new: str) -> bytes:
    assert old in ATOM_OK, old
    return ATOM_OK.replace(old, new, 1).encode()


def _rss_broken(old: str, new: str) -> bytes:
    assert old in RSS_OK, old
    return RSS_OK.replace(old, new, 1).encode()


def test_the_hand_written_documents_pass() -> None:
    """The broken documents below are these with one thing wrong."""
    assert len(check_atom(ATOM_OK.encode()).findall(f"{A}entry")) == 2
    assert len(check_rss(RSS_OK.encode()).findall("channel/item")) == 2
    assert len(check_json_feed(json.dumps(JSON_OK).encode())["items"]) == 2
    assert read_back(ATOM_OK.encode()).entries[0].title == "One & <b>"
    assert read_back(RSS_OK.encode()).entries[0].id == "tag:example.org,2024:one"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("<id>tag:example.org,2024:one</id>", "", "schema"),  # 4.1.2: atom:id is required
        ("2024-01-02T10:00:00+01:00", "2024-01-01 10:00", "schema"),  # not xsd:dateTime
        ("<updated>2024-01-01T09:00:00Z", "<updated>2024-01-01T09:00:00", "RFC 3339"),  # no zone
        ("<author><name>Ed</name></author>", "", "no author"),
        ('<link rel="self" href="https://example.org/feed.xml"/>', "", "rel=self"),
        (
            '<link rel="alternate" type',
            '<link rel="self" href="https://example.org/x"/><link rel="alternate" type',
            "rel=self",
        ),
        (
            '<link rel="alternate" type',
            '<link href="https://example.org/x" type="text/html"/><link rel="alternate" type',
            "two alternate",
        ),
        ("tag:example.org,2024:two", "tag:example.org,2024:one", "repeats"),
        ("tag:example.org,2024:two", "two", "absolute IRI"),
        ("<summary>Two, in short</summary>", "", "has src"),
        ("<entry>", "<fh:archive/><entry>", "rel=current"),
        ("<title>Two</title>", "<title>Two</titel>", "well-formed"),
        ("<title>Two</title>", '<title type="markdown">Two</title>', "schema"),
        ("2024-01-02T10:00:00+01:00", "2024-02-30T10:00:00Z", "schema"),
    ],
)
def test_check_atom_rejects_broken_documents(old: str, new: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_atom(_atom_broken(old, new))


@pytest.mark.parametrize(
    "value",
    ["2024-01-01T10:00:00", "2024-01-01t10:00:00Z", "2024-01-01T10:00:00z", "2024-01-01T10:00:00+0100", "2024-01-01"],
)
def test_check_date_wants_rfc3339_with_upper_case_t_and_an_offset(value: str) -> None:
    with pytest.raises(AssertionError, match="RFC 3339"):
        feedcheck.check_date(value, "test")


def test_check_date_wants_a_real_date() -> None:
    with pytest.raises(AssertionError, match="not a real date-time"):
        feedcheck.check_date("2024-13-01T10:00:00Z", "test")
    assert feedcheck.check_date("2024-01-01T10:00:00.5-08:00", "test").utcoffset() is not None


def test_check_atom_accepts_authors_on_every_entry_instead_of_the_feed() -> None:
    data = ATOM_OK.replace("<author><name>Ed</name></author>", "").replace(
        "<entry>", "<entry><author><name>Ann</name></author>"
    )
    assert check_atom(data.encode()).find(f"{A}author") is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("<description>The newest</description>", "", "no description"),
        ('version="2.0"', 'version="0.91"', "version"),
        ("<link>https://example.org/</link>", "<link>/</link>", "channel link"),
        ('<guid isPermaLink="false">tag:example.org,2024:one</guid>', "", "no guid"),
        (
            '<guid isPermaLink="false">tag:example.org,2024:one</guid>',
            "<guid>tag:example.org,2024:one</guid>",
            "permalink",
        ),
        (
            "<guid>https://example.org/two</guid>",
            '<guid isPermaLink="false">tag:example.org,2024:one</guid>',
            "repeats",
        ),
        ("Mon, 01 Jan 2024 10:00:00 +0000", "2024-01-01 10:00", "RFC 822"),
        ("Mon, 01 Jan 2024 10:00:00 +0000", "Tue, 01 Jan 2024 10:00:00 +0000", "weekday"),
        ("Mon, 01 Jan 2024 10:00:00 +0000", "Mon, 01 Jan 24 10:00:00 +0000", "RFC 822"),
        ("Tue, 02 Jan 2024 10:00:00 +0000", "Tue, 32 Jan 2024 10:00:00 +0000", "not a real date"),
        ('<atom:link rel="self" href="https://example.org/rss.xml" type="application/rss+xml"/>', "", "rel=self"),
        ("<title>One</title>", "", "neither title nor description"),
        ('xmlns:content="http://purl.org/rss/1.0/modules/content/"', "", "well-formed"),
        ('xmlns:content="http://purl.org/rss/1.0/modules/content/"', 'xmlns:content="urn:x"', "content module"),
    ],
)
def test_check_rss_rejects_broken_documents(old: str, new: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_rss(_rss_broken(old, new))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.pop("version"), "version"),
        (lambda f: f.update(version="https://jsonfeed.org/version/1"), "version"),
        (lambda f: f.pop("title"), "title"),
        (lambda f: f.pop("items"), "items"),
        (lambda f: f.update(feed_url="feed.json"), "feed_url"),
        (lambda f: f["items"][0].pop("id"), "id"),
        (lambda f: f["items"][1].update(id=2), "id"),
        (lambda f: f["items"][1].update(id="tag:example.org,2024:one"), "repeats"),
        (lambda f: f["items"][0].pop("content_html"), "content_html"),
        (lambda f: f["items"][0].update(date_published="2024-01-01 10:00"), "RFC 3339"),
        (lambda f: f["items"][0].update(date_published="2024-01-01T10:00:00"), "RFC 3339"),
        (lambda f: f["items"][1].update(authors=[{}]), "no name"),
        (lambda f: f["items"][1].update(tags="a, b"), "tags"),
        (lambda f: f["hubs"][0].pop("type"), "type"),
    ],
)
def test_check_json_feed_rejects_broken_documents(change: Any, message: str) -> None:
    feed = json.loads(json.dumps(JSON_OK))
    change(feed)
    with pytest.raises(AssertionError, match=message):
        check_json_feed(json.dumps(feed).encode())


def test_read_back_rejects_what_feedparser_cannot_read() -> None:
    with pytest.raises(AssertionError, match="feedparser"):
        read_back(RSS_OK.replace("</channel>", "").encode())
    with pytest.raises(AssertionError, match="feedparser"):
        read_back(b'{"version": "https://jsonfeed.org/version/1.1"}')


# -- what `publisher run` writes -------------------------------------------------------------


def _add_articles(project: Project) -> None:
    project.add_article(
        "tricky.md",
        "---\n"
        f"title: {json.dumps(TRICKY)}\n"
        "date: 2024-10-05T09:15:00+02:00\n"
        'author: "Ann O\'Neil & Co"\n'
        'tags: [Cartoons, "R&D <lab>"]\n'
        'summary: "A summary with & and <angle> brackets"\n'
        "---\n"
        "Body with a [relative link](../about/team.html), an ![a photo](img/photo.jpg) and\n"
        "[a root link](/contact/?a=1&b=2).\n",
    )
    project.add_article("ru.txt", CYRILLIC + "\n\n" + "Текст статьи на русском языке." + "\n")
    project.add_article(
        "ar.md",
        f"---\ntitle: {json.dumps(ARABIC, ensure_ascii=False)}\ndate: 2024-09-01T08:00:00Z\ntags: [Cartoons]\n---\n"
        "نص المقال باللغة العربية.\n",
    )
    project.add_article(
        "cjk.html",
        f"<html><head><title>{CJK}</title></head><body><article><h1>{CJK}</h1>"
        '<p>本文です。<a href="next.html">次へ</a> <img src="/img/tokyo.png" alt="東京"></p>'
        "</article></body></html>",
    )
    paragraphs = [f"Paragraph {i}: " + " ".join(f"word{j}" for j in range(400)) for i in range(40)]
    project.add_article("long.txt", LONG + "\n\n" + "\n\n".join(paragraphs) + "\n")


def _run(project: Project) -> None:
    result = project.cli("run")
    assert result.exit_code == 0, result.output


def _stylesheet(data: bytes) -> str | None:
    """The href of the document's xml-stylesheet instruction (text/xsl), if it has one."""
    root = etree.fromstring(data)
    instructions = [
        node for node in root.itersiblings(preceding=True) if isinstance(node, etree._ProcessingInstruction)
    ]
    assert [pi.target for pi in instructions] in ([], ["xml-stylesheet"])
    if not instructions:
        return None
    assert instructions[0].get("type") == "text/xsl"
    return instructions[0].get("href")


def _check_every_document(root: Path) -> dict[str, bytes]:
    docs = check_feed_folder(root)
    for name in docs:
        assert re.fullmatch(
            r"atom\.xml|rss\.xml|feed\.json|feed\.xsl|index\.html|(?:tags|archive)/[^/]+\.xml|tags/[^/]+\.html", name
        ), name
    return docs


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _rfc822(value: str) -> datetime:
    return parsedate_to_datetime(value)


def _expected(project: Project) -> dict[str, tuple[Article, str, str]]:
    """Atom entry id -> (the stored article, its URL, its content with absolute links)."""
    site = project.config().site
    expected = {}
    for article in project.open_store().newest_articles():
        url = article_url(site, article)
        expected[ids.new_id(site, article.key)] = (
            article,
            url,
            absolute_html(article.body_html, url),
        )
    return expected


def test_all_three_formats_say_the_same_about_every_article(project: Project) -> None:
    project.configure(site={"language": "en-GB"})
    _add_articles(project)
    _run(project)

    docs = _check_every_document(project.root / "feeds")
    assert {"atom.xml", "rss.xml", "feed.json", "feed.xsl"} <= set(docs)
    expected = _expected(project)
    assert {a.title for a, _, _ in expected.values()} >= {TRICKY, CYRILLIC, ARABIC, CJK, LONG}
    atom = read_back(docs["atom.xml"])
    rss = read_back(docs["rss.xml"])
    jf = json.loads(docs["feed.json"])

    # the feeds themselves
    assert atom.feed.title == rss.feed.title == jf["title"] == "Example News"
    assert atom.feed.language == rss.feed.language == jf["language"] == "en-GB"
    atom_links = {link.rel: link.href for link in atom.feed.links}
    assert atom_links == {"self": FEEDS + "atom.xml", "alternate": SITE}
    rss_root = etree.fromstring(docs["rss.xml"])
    assert rss_root.findtext("channel/link") == SITE  # the site, not the feed
    assert rss_root.nsmap["content"] == CONTENT_NS
    assert len(rss_root.findall(f"channel/item/{{{CONTENT_NS}}}encoded")) == len(rss_root.findall("channel/item"))
    assert [(link.get("rel"), link.get("href")) for link in rss_root.iterfind(f"channel/{A}link")] == [
        ("self", FEEDS + "rss.xml")
    ]
    assert jf["feed_url"] == FEEDS + "feed.json" and jf["home_page_url"] == SITE
    assert "hubs" not in jf
    # the newest entry's, from the articles' own dates (ties set a second apart: publisher.feed)
    newest_update = max(_dt(e.updated) for e in atom.entries)
    assert _dt(atom.feed.updated) == _rfc822(rss.feed.updated) == newest_update
    assert newest_update >= max(own_date(a) for a, _, _ in expected.values())

    # every article, in each format, newest first
    order = list(expected)
    assert [e.id for e in atom.entries] == [e.id for e in rss.entries] == [i["id"] for i in jf["items"]] == order
    for atom_entry, rss_entry, item in zip(atom.entries, rss.entries, jf["items"], strict=True):
        article, url, content = expected[atom_entry.id]
        author = article.author or "Example Newsroom"
        assert atom_entry.title == rss_entry.title == item["title"] == article.title
        assert atom_entry.link == rss_entry.link == item["url"] == url
        assert url.startswith(SITE)
        assert atom_entry.content[0].value == rss_entry.content[0].value == item["content_html"] == content
        assert atom_entry.summary == item["summary"] == article.summary
        # RSS's description is HTML: the plain-text summary arrives escaped, reads the same.
        assert rss_entry.summary == html.escape(article.summary, quote=False)
        assert atom_entry.author == rss_entry.author == item["authors"][0]["name"] == author
        tags = [tag.term for tag in atom_entry.get("tags", [])]
        assert tags == [tag.term for tag in rss_entry.get("tags", [])] == item["tags"] == article.tags
        published = article.published
        assert _dt(atom_entry.published) == _rfc822(rss_entry.published) == _dt(item["date_published"]) == published
        # the article's own date; articles dated the same instant are set a second apart
        assert _dt(atom_entry.updated) == _dt(item["date_modified"])
        assert timedelta(0) <= _dt(atom_entry.updated) - own_date(article) < timedelta(seconds=len(expected))
        rss_guid = rss_root.xpath("channel/item/guid[.=$id]", id=atom_entry.id)
        assert [guid.get("isPermaLink") for guid in rss_guid] == ["false"]

    # the hard cases, spelled out
    entries = {e.title: e for e in atom.entries}
    tricky = entries[TRICKY]
    assert tricky.author == "Ann O'Neil & Co"
    assert [tag.term for tag in tricky.tags] == ["Cartoons", "R&D <lab>"]
    assert tricky.summary == "A summary with & and <angle> brackets"
    assert _dt(tricky.published) == datetime.fromisoformat("2024-10-05T07:15:00+00:00")
    body = tricky.content[0].value
    assert 'href="https://news.example.org/about/team.html"' in body
    assert f'src="{tricky.link}img/photo.jpg"' in body
    assert 'href="https://news.example.org/contact/?a=1&amp;b=2"' in body
    cjk = entries[CJK].content[0].value
    assert f'href="{entries[CJK].link}next.html"' in cjk and 'src="https://news.example.org/img/tokyo.png"' in cjk
    assert len(entries[LONG].content[0].value) > 100_000
    # escaped once, as the XML needs, not twice; readers with default settings agree
    assert b"<title>Tom &amp; Jerry &lt;b&gt;bold&lt;/b&gt; \"quotes\" 'single'</title>" in docs["atom.xml"]
    assert b"R&amp;D &lt;lab&gt;" in docs["atom.xml"]
    # RSS's plain text carries & and < as character references (the W3C validator's advice)
    assert b"<title>Tom &#x26; Jerry &#x3C;b&gt;bold&#x3C;/b&gt; \"quotes\" 'single'</title>" in docs["rss.xml"]
    assert b"R&#x26;D &#x3C;lab&gt;" in docs["rss.xml"]
    assert TRICKY in {e.title for e in feedparser.parse(docs["rss.xml"]).entries}
    assert TRICKY in {e.title for e in feedparser.parse(docs["atom.xml"]).entries}
    assert json.dumps(TRICKY, ensure_ascii=False).encode() in docs["feed.json"]
    assert CJK.encode() in docs["feed.json"]  # UTF-8, not \\u escapes

    # a tag feed holds that tag's entries, Atom-valid (checked above)
    cartoons = read_back(docs["tags/cartoons.xml"])
    assert [e.title for e in cartoons.entries] == [TRICKY, ARABIC]
    assert cartoons.feed.title == "Example News: Cartoons"


def test_hubs_are_announced_in_every_format(project: Project, endpoint: Any) -> None:
    hubs = [endpoint.url + "/hub-a", endpoint.url + "/hub-b"]
    project.configure(feed={"hubs": hubs})
    _add_articles(project)
    _run(project)

    docs = _check_every_document(project.root / "feeds")
    atom = etree.fromstring(docs["atom.xml"])
    assert [link.get("href") for link in atom.iterfind(f"{A}link[@rel='hub']")] == hubs
    rss = etree.fromstring(docs["rss.xml"])
    assert [link.get("href") for link in rss.iterfind(f"channel/{A}link[@rel='hub']")] == hubs
    assert json.loads(docs["feed.json"])["hubs"] == [{"type": "WebSub", "url": hub} for hub in hubs]
    for name, data in docs.items():
        if name.startswith("tags/") and name.endswith(".xml"):
            assert [link.get("href") for link in etree.fromstring(data).iterfind(f"{A}link[@rel='hub']")] == hubs


def test_stylesheet_instruction_in_every_xml_document(project: Project) -> None:
    project.configure(feed={"max_entries": 2})  # older entries go to archive/
    _add_articles(project)
    _run(project)

    docs = _check_every_document(project.root / "feeds")
    assert any(name.startswith("archive/") for name in docs) and any(name.startswith("tags/") for name in docs)
    assert docs["feed.xsl"] == files("publisher.feed").joinpath("feed.xsl").read_bytes()
    for name, data in docs.items():
        if name in ("atom.xml", "rss.xml"):
            assert _stylesheet(data) == "feed.xsl", name
        elif name.endswith(".xml"):
            assert _stylesheet(data) == "../feed.xsl", name

    project.configure(feed={"stylesheet": False})
    _run(project)

    after = _check_every_document(project.root / "feeds")
    assert "feed.xsl" not in after
    assert set(after) == set(docs) - {"feed.xsl"}
    for name, data in after.items():
        if name.endswith(".xml"):
            assert _stylesheet(data) is None, name
            assert b"xml-stylesheet" not in data


def test_formats_setting_writes_only_those_and_removes_the_others(project: Project) -> None:
    _add_articles(project)
    _run(project)
    root = project.root / "feeds"
    assert {"atom.xml", "rss.xml", "feed.json", "feed.xsl"} <= {p.name for p in root.iterdir()}

    project.configure(feed={"formats": ["atom"]})
    _run(project)

    docs = _check_every_document(root)
    assert {p.name for p in root.iterdir() if p.is_file() and not is_issue_archive(p.name)} == {
        "atom.xml",
        "feed.xsl",
        "index.html",
    }
    assert all(
        re.fullmatch(r"(?:tags|archive)/[^/]+\.xml|tags/[^/]+\.html|atom\.xml|feed\.xsl|index\.html", name)
        for name in docs
    )
    assert len(read_back(docs["atom.xml"]).entries) == 6

    project.configure(feed={"formats": ["json", "rss"]})
    _run(project)

    docs = _check_every_document(root)
    assert set(docs) == {"feed.json", "rss.xml", "feed.xsl", "index.html"}  # tag feeds and archives are Atom only
    rss = etree.fromstring(docs["rss.xml"])
    assert len(rss.findall("channel/item")) == len(json.loads(docs["feed.json"])["items"]) == 6
    assert any(e.tag == f"{{{CONTENT_NS}}}encoded" for e in rss.iter())


def test_stored_control_characters_do_not_reach_the_feeds(project: Project) -> None:
    """Ingest cleans what it stores, but a store written by an older or other publisher may not be."""
    store = project.open_store()
    raw = b"written by another tool"
    store.save_article(
        NewArticle(
            key="ctrl",
            slug="ctrl",
            title="Bell\x07 title",
            summary="s\x1bum",
            body_html="<p>Body text.</p>",
            body_text="Body text.",
            author="Ann\x01 Author",
            tags=["t\x02ag", "\x02"],
            format="md",
            source_path="ctrl.md",
            content_hash=hashlib.sha256(raw).hexdigest(),
            raw=raw,
            published=None,
        ),
        datetime.now(UTC).replace(microsecond=0),
    )
    (project.articles / "000_b518ed41a9e9a454.txt").unlink()
    _run(project)

    docs = _check_every_document(project.root / "feeds")
    [entry] = read_back(docs["atom.xml"]).entries
    assert entry.title == "Bell title"
    assert [tag.term for tag in entry.tags] == ["tag"]
    assert entry.summary == "sum"
    assert entry.author == "Ann Author"
    [item] = json.loads(docs["feed.json"])["items"]
    assert item["tags"] == ["tag"] and item["summary"] == "sum"
