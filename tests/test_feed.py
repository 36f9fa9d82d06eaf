"""feeds/atom.xml as a feed reader sees it: parsed back with feedparser, and as raw XML."""

from __future__ import annotations

from datetime import timedelta

import feedparser
from lxml import etree

from publisher.feed import ids, write_feeds
from publisher.ingest import ingest
from publisher.store import Store
from tests.conftest import NOW, SAMPLE_TITLE, Project

ATOM = "{http://www.w3.org/2005/Atom}"


def _ingest(project: Project, store: Store, when=NOW) -> None:  # type: ignore[no-untyped-def]
    config = project.config()
    result = ingest(store, [project.articles], articles_dir=project.articles, tz=config.site.timezone, now=when)
    assert not result.errors, result.errors


def _feed(project: Project) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(project.feed.read_bytes())
    assert not parsed.bozo, parsed.bozo_exception
    return parsed


def test_feed_has_every_field_a_reader_needs(project: Project) -> None:
    store = project.open_store()
    _ingest(project, store)
    write_feeds(project.config(), store)

    parsed = _feed(project)
    feed = parsed.feed
    assert feed.id == "https://news.example.org/feeds/atom.xml"
    assert feed.title == "Example News"
    assert feed.author == "Example Newsroom"
    assert feed.language == "en"
    assert feed.updated == "2026-11-24T06:30:00+00:00"
    links = {link.rel: link for link in feed.links}
    assert links["self"].href == "https://news.example.org/feeds/atom.xml"
    assert links["self"].type == "application/atom+xml"
    assert links["alternate"].href == "https://news.example.org/"

    [entry] = parsed.entries
    # made from the site and the article's key only (publisher.feed.ids), then remembered
    assert entry.id == ids.new_id(project.config().site, "000_b518ed41a9e9a454")
    assert entry.id.startswith("urn:uuid:")
    assert entry.title == SAMPLE_TITLE
    assert entry.published == entry.updated == "2026-11-24T06:30:00+00:00"
    assert entry.author == "Example Newsroom"
    assert entry.content[0].type == "text/html"
    assert entry.summary.startswith("The Kremlin has issued a scathing rebuke")
    assert entry.summary.endswith("…")


def test_entry_links_keep_rel_and_type(project: Project) -> None:
    """feedgen 1.0.0 drops them; an alternate link must say it is one."""
    store = project.open_store()
    _ingest(project, store)
    write_feeds(project.config(), store)

    root = etree.fromstring(project.feed.read_bytes())
    [link] = root.findall(f"{ATOM}entry/{ATOM}link")
    assert link.get("rel") == "alternate"
    assert link.get("type") == "text/html"
    assert link.get("href", "").startswith("https://news.example.org/kremlin-condemns")


def test_entries_newest_first_and_capped_at_max_entries(project: Project) -> None:
    project.configure(feed={"max_entries": 3})
    for day in range(1, 6):
        project.add_article(
            f"day{day}.md", f"---\ntitle: Day {day}\ndate: 2026-11-{day:02d}T12:00:00Z\n---\nNews of day {day}.\n"
        )
    (project.articles / "000_b518ed41a9e9a454.txt").unlink()
    store = project.open_store()
    _ingest(project, store)

    result = write_feeds(project.config(), store)

    assert result.entries == 3
    parsed = _feed(project)
    assert [e.title for e in parsed.entries] == ["Day 5", "Day 4", "Day 3"]
    assert parsed.feed.updated == parsed.entries[0].updated


def test_unchanged_store_gives_byte_identical_feed(project: Project) -> None:
    store = project.open_store()
    _ingest(project, store)
    first = write_feeds(project.config(), store)
    before = project.feed.read_bytes()
    mtime = project.feed.stat().st_mtime_ns

    _ingest(project, store, when=NOW + timedelta(hours=5))  # same files, later: nothing new
    second = write_feeds(project.config(), store)

    assert first.changed and not second.changed
    assert project.feed.read_bytes() == before
    assert project.feed.stat().st_mtime_ns == mtime


def test_edited_article_keeps_its_id_and_its_own_date(project: Project) -> None:
    path = project.add_article("story.md", "---\ntitle: Story\ndate: 2026-11-20T08:00:00Z\n---\nFirst version.\n")
    store = project.open_store()
    _ingest(project, store)
    write_feeds(project.config(), store)
    before = {e.title: e for e in _feed(project).entries}["Story"]

    path.write_text("---\ntitle: Story, corrected\ndate: 2026-11-20T08:00:00Z\n---\nSecond version.\n")
    later = NOW + timedelta(days=1)
    _ingest(project, store, when=later)
    write_feeds(project.config(), store)

    after = {e.title: e for e in _feed(project).entries}["Story, corrected"]
    assert after.id == before.id
    assert after.link == before.link  # the slug chosen at first sight stays
    assert after.published == before.published == "2026-11-20T08:00:00+00:00"
    # updated is the article's own date (issue 12), never when it was ingested
    assert before.updated == after.updated == "2026-11-20T08:00:00+00:00"
    assert "Second version." in after.content[0].value
    assert _feed(project).feed.updated == "2026-11-24T06:30:00+00:00"  # the newest entry's: the sample's


def test_control_characters_and_markup_in_titles_do_not_break_the_feed(project: Project) -> None:
    title = "Ctrl\x01\x0b chars & <tags> \"quotes\" 'single' \u2014 \u041f\u0440\u0438\u0432\u0435\u0442 \u6771\u4eac"
    project.add_article("weird.txt", f"{title}\n\nBody with a bell\x07 and an escape\x1b character.\n")
    store = project.open_store()
    _ingest(project, store)

    write_feeds(project.config(), store)

    titles = [e.title for e in _feed(project).entries]
    assert "Ctrl chars & <tags> \"quotes\" 'single' \u2014 \u041f\u0440\u0438\u0432\u0435\u0442 \u6771\u4eac" in titles


def test_untrusted_html_cannot_run_in_a_feed_reader(project: Project) -> None:
    project.add_article(
        "xss.html",
        "<html><body><article><h1>Hostile</h1><p>Hello <img src=x onerror=alert(1)>"
        '<a href="javascript:alert(2)">click</a></p><script>alert(3)</script>'
        '<p onclick="alert(4)">More text here.</p></article></body></html>',
    )
    store = project.open_store()
    _ingest(project, store)
    write_feeds(project.config(), store)

    entry = {e.title: e for e in _feed(project).entries}["Hostile"]
    content = entry.content[0].value.lower()
    assert "hello" in content and "more text here." in content
    for payload in ("<script", "onerror", "onclick", "javascript:", "alert("):
        assert payload not in content
    assert b"alert(" not in project.feed.read_bytes()


def test_empty_store_still_gives_a_valid_stable_feed(project: Project) -> None:
    store = project.open_store()

    write_feeds(project.config(), store)
    first = project.feed.read_bytes()
    second = write_feeds(project.config(), store)

    parsed = _feed(project)
    assert parsed.entries == []
    assert parsed.feed.updated  # the store's creation time, not "now"
    assert not second.changed and project.feed.read_bytes() == first
