"""What a reader relies on never changing (issue 12): entry ids, tag feed names; and what
an entry that cannot be written does to its feed (issue 10), and what `publisher serve` says
about each representation of a feed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import feedparser
import pytest
from feedgen.entry import FeedEntry
from sqlalchemy import delete, insert, text

from publisher import clock
from publisher.feed import ids, write_feeds
from publisher.schema import schema_version, settings
from publisher.store import FEED_IDS_LEGACY_BEFORE, MIGRATIONS, SCHEMA_VERSION, Store, _feed_ids
from tests.conftest import NOW, SAMPLE, Project, ingest_folder, markdown_article
from tests.feedcheck import check_feed_folder, check_w3c_rules
from tests.test_feed_incremental import _assert_as_from_scratch
from tests.test_server import Running

FEEDS = "https://news.example.org/feeds/"


def _ids(project: Project, folder: Path | None = None) -> dict[str, str]:
    """Entry title -> id, from atom.xml."""
    data = ((folder or project.feed.parent) / "atom.xml").read_bytes()
    return {entry.title: entry.id for entry in feedparser.parse(data).entries}


@pytest.fixture(params=["sqlite", "postgresql"])
def old_store(project: Project, at_now: object, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A store as a publisher before remembered ids left it, holding two articles, upgraded
    at NOW; on SQLite, and on a fresh PostgreSQL database."""
    if request.param == "postgresql":
        project.configure(store={"url": request.getfixturevalue("pg_url")})
    (project.articles / SAMPLE.name).unlink()  # undated: dated when ingested, a date that moves
    project.add_article("one.md", markdown_article("One", "2026-11-01T08:00:00Z", ["Economy"]))
    project.add_article("two.md", markdown_article("Two", "2026-11-02T08:00:00Z", ["Science"]))
    store = project.open_store()
    ingest_folder(project, store, NOW - timedelta(days=20))
    with store.transaction() as conn:
        conn.execute(text("DROP TABLE feed_ids"))
        conn.execute(text("DROP TABLE feed_tag_slugs"))
        conn.execute(delete(schema_version))
        conn.execute(insert(schema_version), {"version": 1 + MIGRATIONS.index(_feed_ids), "applied_at": NOW})
    store.close()
    upgraded = project.open_store()
    yield upgraded
    upgraded.close()


def test_an_older_store_keeps_the_ids_it_published_and_new_articles_get_date_free_ones(
    project: Project, old_store: Store
) -> None:
    assert old_store.schema_version() == SCHEMA_VERSION
    assert old_store.setting(FEED_IDS_LEGACY_BEFORE) is not None
    with clock.frozen(NOW):
        write_feeds(project.config(), old_store)
    published = _ids(project)
    # the form they were published with: the day the store first saw them
    assert published["One"] == "tag:news.example.org,2026-11-04:one"
    assert published["Two"] == "tag:news.example.org,2026-11-04:two"

    project.add_article("three.md", markdown_article("Three", "2026-11-20T08:00:00Z"))
    ingest_folder(project, old_store, NOW + timedelta(days=1))
    with clock.frozen(NOW + timedelta(days=1)):
        write_feeds(project.config(), old_store)
    after = _ids(project)
    assert after["One"] == published["One"] and after["Two"] == published["Two"]
    assert after["Three"] == ids.new_id(project.config().site, "three")


def test_a_new_store_adopts_the_ids_the_feeds_folder_publishes(
    project: Project, old_store: Store, tmp_path: Path
) -> None:
    with clock.frozen(NOW):
        write_feeds(project.config(), old_store)
    published = _ids(project)
    old_store.close()

    # a move: the same files into a new store (another file, another day), the same feeds folder
    project.configure(store={"url": f"sqlite:///{tmp_path / 'moved.db'}"})
    moved = project.open_store()
    ingest_folder(project, moved, NOW + timedelta(days=40))
    with clock.frozen(NOW + timedelta(days=40)):
        result = write_feeds(project.config(), moved)
    assert _ids(project) == published
    assert "atom.xml" not in result.written  # not a byte changed
    moved.close()


def test_an_id_once_given_never_changes(project: Project) -> None:
    store = project.open_store()
    ingest_folder(project, store)
    with clock.frozen(NOW):
        write_feeds(project.config(), store)
    before = _ids(project)
    with store.transaction() as conn:  # whatever the rules for new ids become, a remembered one stays
        conn.execute(text("UPDATE feed_ids SET entry_id = 'urn:x:kept'"))
        conn.execute(delete(settings).where(settings.c.name == "nothing"))
    project.configure(site={"url": "https://elsewhere.example.net/"})
    with clock.frozen(NOW):
        write_feeds(project.config(), store)
    assert set(_ids(project).values()) == {"urn:x:kept"} != set(before.values())


def test_a_tag_that_slugifies_alike_later_never_takes_a_feed_s_name(project: Project) -> None:
    project.add_article("ml.md", markdown_article("Learning", "2026-11-01T08:00:00Z", ["Machine Learning"]))
    store = project.open_store()
    ingest_folder(project, store)
    with clock.frozen(NOW):
        write_feeds(project.config(), store)
    tags = project.feed.parent / "tags"
    assert (tags / "machine-learning.xml").is_file()  # the plain name, as before names were remembered
    first = (tags / "machine-learning.xml").read_bytes()

    project.add_article("ml2.md", markdown_article("Learning 2", "2026-11-02T08:00:00Z", ["machine-learning"]))
    ingest_folder(project, store, NOW + timedelta(hours=1))
    with clock.frozen(NOW + timedelta(hours=1)):
        write_feeds(project.config(), store)
    assert (tags / "machine-learning.xml").read_bytes() == first  # its feed, untouched
    [other] = [path for path in tags.glob("machine-learning-*.xml")]
    assert [e.title for e in feedparser.parse(other.read_bytes()).entries] == ["Learning 2"]
    check_w3c_rules(check_feed_folder(project.feed.parent))


def test_an_entry_that_cannot_be_written_is_left_out_with_one_line(
    project: Project, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    project.add_article("bad.md", markdown_article("Bad", "2026-11-01T08:00:00Z", ["Economy"], "POISON here."))
    project.add_article("good.md", markdown_article("Good", "2026-11-02T08:00:00Z", ["Economy"]))
    real = FeedEntry.content

    def content(self: FeedEntry, content: str | None = None, **kwargs: object) -> object:
        if content is not None and "POISON" in content:  # as lxml's "Text node too long" did (issue 10)
            raise ValueError("Text node too long, try the option 'huge'")
        return real(self, content, **kwargs)

    monkeypatch.setattr(FeedEntry, "content", content)
    store = project.open_store()
    ingest_folder(project, store)
    with caplog.at_level(logging.WARNING, logger="publisher.feed"), clock.frozen(NOW):
        result = write_feeds(project.config(), store)

    assert {e.title for e in feedparser.parse(project.feed.read_bytes()).entries} >= {"Good"}
    assert "Bad" not in _ids(project)
    assert result.left_out and all("bad.md" in line for line in result.left_out)
    lines = [record.getMessage() for record in caplog.records if "left an entry out" in record.getMessage()]
    assert lines and all("\n" not in line and "bad.md" in line and "Text node too long" in line for line in lines)
    assert "entries left out" in result.summary()


def test_each_representation_has_its_own_etag_and_one_vary(project: Project) -> None:
    for i in range(30):  # enough text for gzip
        project.add_article(f"a{i}.md", markdown_article(f"Article {i}", f"2026-10-{i % 28 + 1:02d}T08:00:00Z"))
    store = project.open_store()
    ingest_folder(project, store)
    with clock.frozen(NOW):
        write_feeds(project.config(), store)
    with Running(project.config()) as server:
        reader = server.get("/feeds/atom.xml", Accept_Encoding="gzip")
        plain = server.get("/feeds/atom.xml", Accept_Encoding="identity")
        browser = server.get("/feeds/atom.xml", Accept="text/html", Accept_Encoding="identity")
        browser_zipped = server.get("/feeds/atom.xml", Accept="text/html", Accept_Encoding="gzip")
        tags = [r.headers["etag"] for r in (reader, plain, browser, browser_zipped)]
        assert len(set(tags)) == 4, tags
        assert browser.headers["content-type"].startswith("application/xml")
        for response in (reader, plain, browser, browser_zipped):
            again = server.get(
                "/feeds/atom.xml",
                Accept=response.request.headers.get("accept", "*/*"),
                Accept_Encoding=response.request.headers["accept-encoding"],
                If_None_Match=response.headers["etag"],
            )
            assert again.status_code == 304
            assert again.headers["etag"] == response.headers["etag"]
            assert again.headers["vary"] == response.headers["vary"] == "Accept, Accept-Encoding"
        page = server.get("/")
        assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.content == (project.feed.parent / "index.html").read_bytes()
        assert "script-src" not in page.headers["content-security-policy"]
        assert server.get("/feeds/").content == page.content


def test_entries_of_one_date_are_a_second_apart_and_stay_right_when_one_goes(project: Project, tmp_path: Path) -> None:
    for name in ("first", "second", "third"):
        project.add_article(f"{name}.md", markdown_article(name.title(), "2026-11-10", [name]))  # a tag feed each
    store = project.open_store()
    ingest_folder(project, store)
    with clock.frozen(NOW):
        write_feeds(project.config(), store)
    updated = {e.title: e.updated for e in feedparser.parse(project.feed.read_bytes()).entries}
    assert [updated[t] for t in ("First", "Second", "Third")] == [
        "2026-11-10T00:00:00+00:00",
        "2026-11-10T00:00:01+00:00",
        "2026-11-10T00:00:02+00:00",
    ]
    check_w3c_rules(check_feed_folder(project.feed.parent))

    assert store.remove_article("first", NOW)
    with clock.frozen(NOW):
        write_feeds(project.config(), store)  # incremental: the other two move up a second
    _assert_as_from_scratch(project, store, tmp_path)
    updated = {e.title: e.updated for e in feedparser.parse(project.feed.read_bytes()).entries}
    assert (updated["Second"], updated["Third"]) == ("2026-11-10T00:00:00+00:00", "2026-11-10T00:00:01+00:00")
