"""RFC 5005 monthly archives and per-tag feeds, read back as a feed reader would.

The archive tests store two articles a month from June to October 2026 with a small
``max_entries``, so atom.xml holds the newest three and the rest sit in archive/YYYY-MM.xml.
Feeds are read with lxml (links, fh:archive, categories) and feedparser (entries); a
"reader" walks from atom.xml along prev-archive links, mapping each URL to its file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from publisher.config import Config
from publisher.feed import FeedResult, ids, write_feeds
from publisher.store import Store
from tests.conftest import NOW, SAMPLE, Project, ingest_folder, markdown_article

ATOM = "{http://www.w3.org/2005/Atom}"
HISTORY = "http://purl.org/syndication/history/1.0"
MONTHS = ("2026-06", "2026-07", "2026-08", "2026-09", "2026-10")
OLD_MTIME_NS = 1_000_000_000_000_000_000  # 2001: any rewrite of a file moves its mtime off this


@pytest.fixture
def store(project: Project) -> Iterator[Store]:
    (project.articles / SAMPLE.name).unlink()  # undated: it would sit among the dated ones at "now"
    opened = project.open_store()
    yield opened
    opened.close()


def _monthly(project: Project, store: Store) -> FeedResult:
    """Ten articles, days 5 and 20 of June..October 2026, max_entries 3; feeds written."""
    project.configure(feed={"max_entries": 3})
    for month in MONTHS:
        for day in (5, 20):
            project.add_article(
                f"{month}-{day:02d}.md", markdown_article(f"Story {month}-{day:02d}", f"{month}-{day:02d}T12:00:00Z")
            )
    ingest_folder(project, store)
    return write_feeds(project.config(), store)


def _tree(path: Path) -> etree._Element:
    return etree.fromstring(path.read_bytes())


def _links(root: etree._Element) -> dict[str, str]:
    """The feed's own links (not its entries'), rel -> href; a rel given twice fails."""
    links: dict[str, str] = {}
    for link in root.findall(f"{ATOM}link"):
        rel = link.get("rel", "alternate")
        assert rel not in links, f"two {rel} links"
        links[rel] = link.get("href", "")
    return links


def _titles(path: Path) -> list[str]:
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.bozo_exception
    return [e.title for e in parsed.entries]


def _file(config: Config, url: str) -> Path:
    """Where a published feed URL lives on disk."""
    base = config.feed.base_url
    assert url.startswith(base), url
    return config.feed.dir / url[len(base) :]


def _archives(config: Config) -> dict[str, Path]:
    folder = config.feed.dir / "archive"
    return {p.stem: p for p in sorted(folder.glob("*.xml"))} if folder.is_dir() else {}


def _snapshot(paths: dict[str, Path]) -> dict[str, bytes]:
    """Bytes of each file, whose mtime is then set far back so that any rewrite shows."""
    for path in paths.values():
        os.utime(path, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    return {name: path.read_bytes() for name, path in paths.items()}


def _untouched(path: Path, before: bytes) -> bool:
    return path.read_bytes() == before and path.stat().st_mtime_ns == OLD_MTIME_NS


# -- archives -------------------------------------------------------------------------------------


def test_main_feed_holds_the_newest_and_links_the_newest_archive(project: Project, store: Store) -> None:
    _monthly(project, store)
    config = project.config()

    assert _titles(config.feed.dir / "atom.xml") == ["Story 2026-10-20", "Story 2026-10-05", "Story 2026-09-20"]
    root = _tree(config.feed.dir / "atom.xml")
    links = _links(root)
    assert links["prev-archive"] == config.feed.base_url + "archive/2026-09.xml"
    assert "next-archive" not in links and "current" not in links
    assert root.find(f"{{{HISTORY}}}archive") is None  # the subscription document is not an archive
    assert list(_archives(config)) == ["2026-06", "2026-07", "2026-08", "2026-09"]
    assert _titles(_archives(config)["2026-09"]) == ["Story 2026-09-05"]  # its newer half is in atom.xml
    # RSS and JSON Feed carry the same newest entries, and no archive.
    rss = feedparser.parse((config.feed.dir / "rss.xml").read_bytes())
    assert [e.title for e in rss.entries] == ["Story 2026-10-20", "Story 2026-10-05", "Story 2026-09-20"]
    items = json.loads((config.feed.dir / "feed.json").read_bytes())["items"]
    assert [i["title"] for i in items] == ["Story 2026-10-20", "Story 2026-10-05", "Story 2026-09-20"]


def test_each_archive_is_marked_and_chained_to_its_neighbours(project: Project, store: Store) -> None:
    _monthly(project, store)
    config = project.config()
    archives = _archives(config)
    names = list(archives)
    assert names == ["2026-06", "2026-07", "2026-08", "2026-09"]

    for i, name in enumerate(names):
        root = _tree(archives[name])
        markers = root.findall(f"{{{HISTORY}}}archive")
        assert len(markers) == 1, name
        assert root.nsmap.get("fh") == HISTORY
        links = _links(root)
        assert links["self"] == config.feed.base_url + f"archive/{name}.xml"
        assert links["current"] == config.feed.url == config.feed.base_url + "atom.xml"
        if i == 0:
            assert "prev-archive" not in links
        else:
            assert links["prev-archive"] == config.feed.base_url + f"archive/{names[i - 1]}.xml"
        if i == len(names) - 1:
            assert "next-archive" not in links
        else:
            assert links["next-archive"] == config.feed.base_url + f"archive/{names[i + 1]}.xml"
        titles = _titles(archives[name])
        assert titles and all(title.startswith(f"Story {name}-") for title in titles), (name, titles)


def test_a_reader_walking_prev_archive_links_gets_every_live_article_once(project: Project, store: Store) -> None:
    _monthly(project, store)
    assert store.remove_article("2026-07-05", NOW)  # removed articles are in no document
    config = project.config()
    write_feeds(config, store)

    seen_ids: list[str] = []
    published: list[str] = []
    visited: list[str] = []
    url: str | None = config.feed.url
    while url is not None:
        assert url not in visited, f"prev-archive loop at {url}"
        visited.append(url)
        data = _file(config, url).read_bytes()
        parsed = feedparser.parse(data)
        assert not parsed.bozo, parsed.bozo_exception
        seen_ids += [e.id for e in parsed.entries]
        published += [e.published for e in parsed.entries]
        url = _links(etree.fromstring(data)).get("prev-archive")

    live = store.newest_articles()
    assert len(live) == 9
    assert len(seen_ids) == len(set(seen_ids)) == 9
    assert set(seen_ids) == {ids.new_id(config.site, article.key) for article in live}
    assert published == sorted(published, reverse=True)  # newest to oldest along the walk
    assert len(visited) == 1 + len(_archives(config))


def test_archive_months_are_those_of_the_site_time_zone(project: Project, store: Store) -> None:
    project.configure(site={"timezone": "Pacific/Auckland"}, feed={"max_entries": 1})
    # 20:00 UTC on 31 October is 09:00 on 1 November in Auckland (NZDT, UTC+13).
    project.add_article("evening.md", markdown_article("Evening", "2026-10-31T20:00:00Z"))
    project.add_article("morning.md", markdown_article("Morning", "2026-10-31T10:00:00Z"))  # 23:00, 31 October there
    project.add_article("newest.md", markdown_article("Newest", "2026-11-20T00:00:00Z"))
    ingest_folder(project, store)

    write_feeds(project.config(), store)

    archives = _archives(project.config())
    assert list(archives) == ["2026-10", "2026-11"]
    assert _titles(archives["2026-10"]) == ["Morning"]
    assert _titles(archives["2026-11"]) == ["Evening"]


def test_closed_months_stay_byte_identical_as_newer_articles_arrive(project: Project, store: Store) -> None:
    _monthly(project, store)
    config = project.config()
    before = _snapshot(_archives(config))
    closed = ["2026-06", "2026-07", "2026-08"]  # 2026-09 is the newest archive month: it may still fill up

    for day in (3, 10, 17):
        project.add_article(
            f"2026-11-{day:02d}.md", markdown_article(f"Story 2026-11-{day:02d}", f"2026-11-{day:02d}T12:00:00Z")
        )
    ingest_folder(project, store, when=NOW + timedelta(days=1))
    result = write_feeds(config, store)

    archives = _archives(config)
    assert list(archives) == ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10"]
    for name in closed:
        assert _untouched(archives[name], before[name]), f"closed month {name} was rewritten"
        assert f"archive/{name}.xml" not in result.written
    # The newest archive month filled up with the entry that left atom.xml, and got a successor.
    assert _titles(archives["2026-09"]) == ["Story 2026-09-20", "Story 2026-09-05"]
    assert _links(_tree(archives["2026-09"]))["next-archive"] == config.feed.base_url + "archive/2026-10.xml"
    assert _titles(archives["2026-10"]) == ["Story 2026-10-20", "Story 2026-10-05"]
    assert _links(_tree(config.feed.dir / "atom.xml"))["prev-archive"] == config.feed.base_url + "archive/2026-10.xml"

    # Nothing new: nothing at all is rewritten.
    assert not write_feeds(config, store).changed


def test_editing_an_article_in_a_closed_month_rewrites_only_that_month(project: Project, store: Store) -> None:
    _monthly(project, store)
    config = project.config()
    archives = _archives(config)
    before = _snapshot(archives)
    old_entry = feedparser.parse(archives["2026-07"].read_bytes()).entries[1]
    assert old_entry.title == "Story 2026-07-05"

    project.add_article(
        "2026-07-05.md", markdown_article("Story 2026-07-05", "2026-07-05T12:00:00Z", body="A corrected text.")
    )
    ingest_folder(project, store, when=NOW + timedelta(days=1))
    result = write_feeds(config, store)

    assert result.written == ("archive/2026-07.xml",) and result.removed == ()
    for name in ("2026-06", "2026-08", "2026-09"):
        assert _untouched(archives[name], before[name]), f"{name} was rewritten by an edit in 2026-07"
    new_entry = {e.title: e for e in feedparser.parse(archives["2026-07"].read_bytes()).entries}["Story 2026-07-05"]
    assert new_entry.id == old_entry.id
    assert new_entry.updated == old_entry.updated == "2026-07-05T12:00:00+00:00"  # its own date (issue 12)
    assert "A corrected text." in new_entry.content[0].value


def test_archives_off_writes_none_and_deletes_the_old_ones(project: Project, store: Store) -> None:
    _monthly(project, store)
    assert len(_archives(project.config())) == 4

    config = project.configure(feed={"archives": False})
    result = write_feeds(config, store)

    assert _archives(config) == {}
    assert sorted(result.removed) == [f"archive/{m}.xml" for m in MONTHS[:4]]
    assert "prev-archive" not in _links(_tree(config.feed.dir / "atom.xml"))
    assert len(_titles(config.feed.dir / "atom.xml")) == 3


def test_archives_go_when_max_entries_grows_past_every_article(project: Project, store: Store) -> None:
    _monthly(project, store)

    config = project.configure(feed={"max_entries": 10})
    result = write_feeds(config, store)

    assert _archives(config) == {}
    assert len(result.removed) == 4
    assert "prev-archive" not in _links(_tree(config.feed.dir / "atom.xml"))
    assert len(_titles(config.feed.dir / "atom.xml")) == 10


# -- per-tag feeds --------------------------------------------------------------------------------


def _tagged(project: Project, store: Store) -> Config:
    """Tags from front matter (a list, a comma string) and from an HTML page's meta keywords."""
    project.add_article("rates.md", markdown_article("Rates rise", "2026-11-01T09:00:00Z", ["Economy", "Politics"]))
    project.add_article(
        "budget.html",
        "<html><head><title>Budget day</title>"
        '<meta name="keywords" content="economy, Science">'
        '<meta property="article:published_time" content="2026-11-10T09:00:00Z">'
        "</head><body><article><h1>Budget day</h1>"
        "<p>The budget was read out in parliament today, with a long list of measures.</p>"
        "</article></body></html>",
    )
    project.add_article(
        "comet.md", "---\ntitle: Comet seen\ndate: 2026-11-05T09:00:00Z\ntags: Science, Space\n---\nA comet.\n"
    )
    project.add_article("weather.md", markdown_article("Weather", "2026-11-12T09:00:00Z"))
    ingest_folder(project, store)
    config = project.config()
    write_feeds(config, store)
    return config


def _tag_feeds(config: Config) -> dict[str, Path]:
    folder = config.feed.dir / "tags"
    return {p.stem: p for p in sorted(folder.glob("*.xml"))} if folder.is_dir() else {}


def test_each_tag_gets_a_feed_of_only_its_entries_newest_first(project: Project, store: Store) -> None:
    config = _tagged(project, store)

    feeds = _tag_feeds(config)
    assert list(feeds) == ["economy", "politics", "science", "space"]  # Economy and economy share one
    assert _titles(feeds["economy"]) == ["Budget day", "Rates rise"]
    assert _titles(feeds["politics"]) == ["Rates rise"]
    assert _titles(feeds["science"]) == ["Budget day", "Comet seen"]
    assert _titles(feeds["space"]) == ["Comet seen"]
    for slug, path in feeds.items():
        parsed = feedparser.parse(path.read_bytes())
        assert parsed.feed.title.casefold() == f"example news: {slug}", parsed.feed.title
        links = _links(_tree(path))
        assert links["self"] == config.feed.base_url + f"tags/{slug}.xml"
        assert _tree(path).find(f"{{{HISTORY}}}archive") is None
    assert feedparser.parse(feeds["politics"].read_bytes()).feed.title == "Example News: Politics"


def test_entries_carry_their_tags_in_every_format(project: Project, store: Store) -> None:
    project.configure(feed={"max_entries": 2})  # Rates rise and Comet seen go to archive/2026-11.xml
    config = _tagged(project, store)
    expected = {
        "Budget day": ["economy", "Science"],
        "Rates rise": ["Economy", "Politics"],
        "Comet seen": ["Science", "Space"],
        "Weather": [],
    }

    atom_documents = [config.feed.dir / "atom.xml", *_archives(config).values(), *_tag_feeds(config).values()]
    seen: set[str] = set()
    for path in atom_documents:
        for element in _tree(path).findall(f"{ATOM}entry"):
            title = element.findtext(f"{ATOM}title")
            assert title is not None
            terms = [c.get("term") for c in element.findall(f"{ATOM}category")]
            assert terms == expected[title], (path.name, title)
            seen.add(title)
    assert seen == set(expected)

    rss = etree.fromstring((config.feed.dir / "rss.xml").read_bytes())
    rss_tags = {item.findtext("title"): [c.text for c in item.findall("category")] for item in rss.iter("item")}
    assert rss_tags == {"Weather": [], "Budget day": ["economy", "Science"]}
    items = json.loads((config.feed.dir / "feed.json").read_bytes())["items"]
    assert {i["title"]: i["tags"] for i in items} == {"Weather": [], "Budget day": ["economy", "Science"]}


def test_a_tag_feed_goes_when_its_last_article_is_removed_or_untagged(project: Project, store: Store) -> None:
    config = _tagged(project, store)
    assert {"politics", "space"} <= set(_tag_feeds(config))

    assert store.remove_article("rates", NOW)
    removed = write_feeds(config, store)
    assert removed.removed == ("tags/politics.xml",)
    assert _titles(_tag_feeds(config)["economy"]) == ["Budget day"]

    project.add_article("comet.md", markdown_article("Comet seen", "2026-11-05T09:00:00Z", ["Science"]))
    ingest_folder(project, store, when=NOW + timedelta(days=1))
    untagged = write_feeds(config, store)
    assert untagged.removed == ("tags/space.xml",)
    assert list(_tag_feeds(config)) == ["economy", "science"]


def test_tags_that_differ_only_in_symbols_get_feeds_of_their_own(project: Project) -> None:
    project.add_article("cpp.md", "---\ntitle: Templates\ndate: 2026-11-01T00:00:00Z\ntags: [C++]\n---\nOn C++.\n")
    project.add_article("c.md", "---\ntitle: Pointers\ndate: 2026-11-02T00:00:00Z\ntags: [C]\n---\nOn C.\n")
    project.add_article("cs.md", "---\ntitle: Delegates\ndate: 2026-11-03T00:00:00Z\ntags: [C#]\n---\nOn C#.\n")

    assert project.cli("run").exit_code == 0

    feeds = project.feed.parent / "tags"
    titles = {p.name: [e.title for e in feedparser.parse(p.read_bytes()).entries] for p in feeds.glob("*.xml")}
    assert titles == {"c-plus-plus.xml": ["Templates"], "c.xml": ["Pointers"], "c-sharp.xml": ["Delegates"]}
