"""A realistic site, whole: 150 Markdown articles over eight months (issue 12).

Awkward tags (``a/b``, ``a b``, ``A-B``, ``C++``, ``c-plus-plus``, ``Café``, ``cafe``, ``<b>``,
``b``, ``..``, ``...``, ``🚀``), articles dated only by day (several on one day), lead images
from front matter and from the body, podcast episodes, articles in another language, titles
with markup characters. Every document is checked against the schema and the W3C validator's
rules that matter (tests/feedcheck.py), every tag gets its own feed with its own id, the
RFC 5005 archive walk finds every article once, and the same files in a store built on
another day give the same bytes.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from publisher import clock
from publisher.feed import FeedResult, write_feeds
from publisher.store import Store
from tests.conftest import NOW, Project, ingest_folder
from tests.feedcheck import MEDIA_NS, A, check_feed_folder, check_json_feed, check_page, check_w3c_rules

# Tags as articles write them, and the feeds they must end in: tags equal but for case are
# one tag; any other two are two.
AWKWARD = ["a/b", "a b", "A-B", "a-b", "C++", "c-plus-plus", "Café", "cafe", "<b>", "b", "..", "...", "🚀"]
COMMON = ["Economy", "economy", "Machine Learning", "Science"]
DISTINCT_TAGS = 12 + 3  # AWKWARD less "a-b" (= "A-B"), plus economy, machine learning, science
COUNT = 150
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SITE = "https://news.example.org/"
FEEDS = SITE + "feeds/"


def _article(i: int) -> str:
    when = START + timedelta(hours=37 * i)
    # every seventh article is dated by its day only, and shares it with the one before
    date = f"{(START + timedelta(hours=37 * (i - 1))).date()}" if i % 7 == 0 else when.isoformat()
    tags = [AWKWARD[i % len(AWKWARD)], COMMON[i % len(COMMON)]]
    title = f"Story {i}" + (" — R&D <lab> results" if i % 11 == 0 else "")
    front = [f"title: {json.dumps(title)}", f"date: {date}", f"tags: {json.dumps(tags, ensure_ascii=False)}"]
    body = f"The text of story {i}, with *some* markup."
    if i % 10 == 0:
        front += ["image:", f"  url: /img/café-{i}.jpg", '  alt: "A <b>bold</b> & bright photo"']
    elif i % 5 == 0:
        front.append(f"image: /img/lead-{i}.jpg")
    elif i % 5 == 1:
        body += f"\n\n![A photo](img/body-{i}.png)"
    if i % 15 == 0:
        front += ["audio:", f"  url: /audio/episode-{i}.mp3", "  length: 1234567", '  duration: "00:21:09"']
    if i % 20 == 0:
        front.append("lang: fr")
    return "---\n" + "\n".join(front) + f"\n---\n{body}\n"


def _site(project: Project, **feed: object) -> None:
    shutil.rmtree(project.articles)
    project.articles.mkdir()
    for i in range(COUNT):
        (project.articles / f"story-{i:03d}.md").write_text(_article(i), encoding="utf-8")
    project.configure(
        feed={
            "max_entries": 20,
            "icon": "/favicon.png",
            "logo": "/logo.png",
            "subtitle": "News & views <daily>",
            "rights": "© 2026 Example News",
            "podcast": True,
            "podcast_category": "News",
            "podcast_email": "podcast@example.org",
            **feed,
        }
    )


def _build(project: Project, store: Store, when: datetime) -> FeedResult:
    ingest_folder(project, store, when)
    with clock.frozen(when):
        return write_feeds(project.config(), store)


@pytest.fixture
def site(project: Project) -> Project:
    _site(project)
    return project


def test_every_document_of_the_site_is_valid_and_clean_for_the_w3c_validator(site: Project) -> None:
    store = site.open_store()
    result = _build(site, store, NOW)
    assert not result.left_out

    docs = check_feed_folder(site.feed.parent)
    check_w3c_rules(docs)
    feed = check_json_feed(docs["feed.json"])
    assert feed["author"] == {"name": "Example Newsroom"} and feed["authors"] == [feed["author"]]
    assert feed["description"] == "News & views <daily>"
    assert (feed["icon"], feed["favicon"]) == (SITE + "logo.png", SITE + "favicon.png")
    for item in feed["items"]:
        assert item["author"] == item["authors"][0]
        assert "image" in item or int(item["title"].split()[1]) % 5 > 1
    episodes = [item for item in feed["items"] if "attachments" in item]
    assert episodes and all(
        item["attachments"] == [{"url": item["attachments"][0]["url"], "mime_type": "audio/mpeg",
                                 "size_in_bytes": 1234567, "duration_in_seconds": 1269}]
        for item in episodes
    )  # fmt: skip
    atom = etree.fromstring(docs["atom.xml"])
    assert atom.findtext(f"{A}subtitle") == "News & views <daily>"
    assert (atom.findtext(f"{A}icon"), atom.findtext(f"{A}logo")) == (SITE + "favicon.png", SITE + "logo.png")
    assert atom.findtext(f"{A}rights") == "© 2026 Example News"
    images = atom.findall(f"{A}entry/{{{MEDIA_NS}}}content")
    assert images and all(image.get("medium") == "image" for image in images)
    assert any(entry.get("{http://www.w3.org/XML/1998/namespace}lang") == "fr" for entry in atom.iter(f"{A}entry"))
    rss = etree.fromstring(docs["rss.xml"])
    itunes = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"
    enclosures = [item.find("enclosure") for item in rss.iter("item") if item.find(f"{itunes}duration") is not None]
    assert enclosures and all(e is not None and e.get("type") == "audio/mpeg" for e in enclosures)
    assert b"<description>News &#x26; views &#x3C;daily&gt;</description>" in docs["rss.xml"]
    # the human pages
    page = check_page(docs["index.html"], [FEEDS + "atom.xml", FEEDS + "rss.xml", FEEDS + "feed.json"])
    assert len(page.xpath("//article")) == 20
    assert b"&lt;lab&gt;" in docs["index.html"] or b"Story" in docs["index.html"]


def test_every_tag_has_its_own_feed_with_its_own_id(site: Project) -> None:
    store = site.open_store()
    _build(site, store, NOW)
    docs = check_feed_folder(site.feed.parent)

    tag_feeds = {name: data for name, data in docs.items() if name.startswith("tags/") and name.endswith(".xml")}
    assert len(tag_feeds) == DISTINCT_TAGS, sorted(tag_feeds)
    seen: dict[str, str] = {}
    for name, data in tag_feeds.items():
        root = etree.fromstring(data)
        assert root.findtext(f"{A}id") == FEEDS + name  # its own id: its URL
        terms = [{c.get("term").casefold() for c in entry.iter(f"{A}category")} for entry in root.iter(f"{A}entry")]
        common = set.intersection(*terms)  # the tag every entry of the feed has
        awkward = common - {tag.casefold() for tag in COMMON} or common
        [tag] = awkward if len(awkward) == 1 else [min(awkward, key=len)]
        assert tag not in seen, f"{name} and {seen[tag]} are both the feed of {tag!r}"
        seen[tag] = name
        check_page(docs[name.removesuffix(".xml") + ".html"], [FEEDS + name])
    # plain tags keep their plain URL; colliding and empty ones get a digest
    assert {"tags/economy.xml", "tags/machine-learning.xml", "tags/science.xml", "tags/a-b.xml"} <= set(tag_feeds)
    assert "tags/b.xml" in tag_feeds and "tags/cafe.xml" in tag_feeds and "tags/c-plus-plus.xml" in tag_feeds
    assert seen["a-b"] == "tags/a-b.xml" and seen["b"] == "tags/b.xml" and seen["cafe"] == "tags/cafe.xml"
    assert seen["c-plus-plus"] == "tags/c-plus-plus.xml"
    assert all(seen[tag].startswith("tags/tag-") for tag in ("..", "...", "🚀"))


def test_the_archive_walk_finds_every_article_once(site: Project) -> None:
    store = site.open_store()
    _build(site, store, NOW)
    folder = site.feed.parent
    url: str | None = FEEDS + "atom.xml"
    ids: list[str] = []
    archive_ids: set[str] = set()
    while url is not None:
        data = (folder / url.removeprefix(FEEDS)).read_bytes()
        root = etree.fromstring(data)
        if "archive/" in url:
            assert root.findtext(f"{A}id") not in archive_ids, "two archive documents with one id"
            archive_ids.add(root.findtext(f"{A}id") or "")
        ids += [entry.id for entry in feedparser.parse(data).entries]
        prev = root.find(f"{A}link[@rel='prev-archive']")
        url = prev.get("href") if prev is not None else None
    assert len(ids) == len(set(ids)) == COUNT


def test_a_store_rebuilt_on_another_day_gives_the_same_ids_and_bytes(site: Project, tmp_path: Path) -> None:
    first = site.open_store()
    _build(site, first, NOW)
    before = check_feed_folder(site.feed.parent)

    # the same files into a new store, months later, into another feeds folder
    site.configure(store={"url": f"sqlite:///{tmp_path / 'moved.db'}"}, feed={"dir": str(tmp_path / "moved")})
    later = NOW + timedelta(days=100)
    second = site.open_store()
    _build(site, second, later)
    after = check_feed_folder(tmp_path / "moved")

    assert set(after) == set(before)
    for name in before:
        assert after[name] == before[name], f"{name} differs from the first store's"

    again = write_feeds(site.config(), second)  # and an unchanged run writes nothing
    assert not again.changed


def test_summary_only_feeds_carry_no_bodies(site: Project) -> None:
    site.configure(feed={"content": "summary"})
    store = site.open_store()
    _build(site, store, NOW)
    docs = check_feed_folder(site.feed.parent)
    check_w3c_rules(docs)
    assert b"<content" not in docs["atom.xml"] and b"content:encoded" not in docs["rss.xml"]
    items = json.loads(docs["feed.json"])["items"]
    assert all("content_html" not in item and item["content_text"] == item["summary"] for item in items)


def test_a_move_to_postgresql_keeps_every_id_and_byte(site: Project, pg_url: str, tmp_path: Path) -> None:
    """The same site from SQLite, then from PostgreSQL on another day, into the same feeds
    folder: not a file changes (the ids, tag feed names and dates do not depend on the store)."""
    first = site.open_store()
    _build(site, first, NOW)
    before = check_feed_folder(site.feed.parent)
    first.close()

    site.configure(store={"url": pg_url})
    moved = site.open_store()
    try:
        with clock.frozen(NOW + timedelta(days=3)):
            ingest_folder(site, moved, NOW + timedelta(days=3))
            result = write_feeds(site.config(), moved)
        assert result.written == () and result.removed == () and result.pages_written == ()
        assert check_feed_folder(site.feed.parent) == before
    finally:
        moved.close()
