"""An incremental feed rebuild writes what a rebuild from scratch would, and renders no more
than the changes touch.

The oracle is the program itself: the same store written into a fresh, empty feeds folder
(with the tag index thrown away first, so it is rebuilt from the articles too). Renders are
counted by wrapping the renderers, so "renders nothing" is seen, not inferred from timings.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select

from publisher import feed as feed_module
from publisher.config import Config
from publisher.feed import FeedResult, index, model, write_feeds
from publisher.feed.model import Document
from publisher.links import absolute_html
from publisher.schema import feed_builds, feed_content, schema_version, settings
from publisher.store import MIGRATIONS, SCHEMA_VERSION, Store, _feed_index
from tests.conftest import NOW, SAMPLE, Project, ingest_folder, markdown_article

MONTHS = ("2026-06", "2026-07", "2026-08", "2026-09", "2026-10")


@pytest.fixture
def store(project: Project) -> Iterator[Store]:
    (project.articles / SAMPLE.name).unlink()  # undated: it would sit among the dated ones at "now"
    opened = project.open_store()
    yield opened
    opened.close()


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the documents rendered, in order (every format's renderer is wrapped)."""
    seen: list[str] = []
    for kind, render in list(feed_module.RENDER.items()):

        def counting(config: Config, doc: Document, render: feed_module.Renderer = render) -> bytes:
            seen.append(doc.path)
            return render(config, doc)

        monkeypatch.setitem(feed_module.RENDER, kind, counting)
    return seen


def _monthly(project: Project, store: Store) -> FeedResult:
    """Ten articles, days 5 and 20 of June..October 2026 (tagged by month), max_entries 3."""
    project.configure(feed={"max_entries": 3})
    for month in MONTHS:
        for day in (5, 20):
            story = markdown_article(f"Story {month}-{day:02d}", f"{month}-{day:02d}T12:00:00Z", [f"M{month}", "All"])
            project.add_article(f"{month}-{day:02d}.md", story)
    ingest_folder(project, store)
    return write_feeds(project.config(), store)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _oracle(config: Config, store: Store, folder: Path) -> dict[str, bytes]:
    """Every document as a rebuild from scratch writes it: into an empty folder, with the tag
    index and the prepared contents made again from the articles."""
    with store.transaction() as conn:
        conn.execute(delete(settings).where(settings.c.name == index.TAGS_REV))
        conn.execute(delete(feed_content))
    shutil.rmtree(folder, ignore_errors=True)
    fresh = dataclasses.replace(config, feed=dataclasses.replace(config.feed, dir=folder))
    write_feeds(fresh, store)
    return _files(folder)


def _assert_as_from_scratch(project: Project, store: Store, tmp_path: Path) -> None:
    config = project.config()
    assert _files(config.feed.dir) == _oracle(config, store, tmp_path / "oracle")


def _build_serial(store: Store, config: Config) -> int | None:
    with store.transaction() as conn:
        query = select(feed_builds.c.serial).where(feed_builds.c.dir == str(config.feed.dir.resolve()))
        return conn.execute(query).scalar_one_or_none()


# -- what a rebuild renders -------------------------------------------------------------------------


def test_nothing_changed_renders_nothing_and_writes_nothing(
    project: Project, store: Store, rendered: list[str]
) -> None:
    _monthly(project, store)
    config = project.config()
    serial = _build_serial(store, config)
    rendered.clear()

    again = write_feeds(config, store)

    assert rendered == []
    assert again.written == () and again.removed == ()
    assert again.documents == 3 + 4 + 6 + 1  # main feeds, 4 archive months, 6 tag feeds, feed.xsl
    assert again.entries == 3
    assert _build_serial(store, config) == serial  # not even the build record is saved again


def test_one_new_article_renders_only_the_documents_it_changes(
    project: Project, store: Store, rendered: list[str], tmp_path: Path
) -> None:
    _monthly(project, store)
    rendered.clear()
    project.add_article("2026-10-25.md", markdown_article("Story 2026-10-25", "2026-10-25T12:00:00Z", ["Fresh"]))
    ingest_folder(project, store, NOW + timedelta(hours=1))

    result = write_feeds(project.config(), store)

    # Story 2026-09-20 leaves atom.xml for the 2026-09 archive; the new tag gets its feed.
    assert sorted(rendered) == ["archive/2026-09.xml", "atom.xml", "feed.json", "rss.xml", "tags/fresh.xml"]
    assert result.written == ("atom.xml", "rss.xml", "feed.json", "archive/2026-09.xml", "tags/fresh.xml")
    _assert_as_from_scratch(project, store, tmp_path)


def test_content_is_prepared_once_per_article_version(
    project: Project, store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Links are made absolute when an article is first shown, and again only when its body
    or URL changes; other rebuilds take the stored result."""
    _monthly(project, store)
    parsed: list[str] = []

    def counting(html: str, base: str) -> str:
        parsed.append(base)
        return absolute_html(html, base)

    monkeypatch.setattr(model, "absolute_html", counting)
    project.add_article("2026-10-25.md", markdown_article("Story 2026-10-25", "2026-10-25T12:00:00Z", ["All"]))
    ingest_folder(project, store, NOW + timedelta(hours=1))
    write_feeds(project.config(), store)
    assert parsed == ["https://news.example.org/story-2026-10-25/"]

    parsed.clear()  # a new URL for every article: every document shown is prepared again
    project.configure(site={"url": "https://other.example.org/"})
    write_feeds(project.config(), store)
    assert len(parsed) == 11 and all(url.startswith("https://other.example.org/") for url in parsed)
    _assert_as_from_scratch(project, store, tmp_path)


def test_an_edit_in_a_closed_month_rewrites_that_month_and_its_tag_feeds_only(
    project: Project, store: Store, rendered: list[str], tmp_path: Path
) -> None:
    _monthly(project, store)
    rendered.clear()
    project.add_article(
        "2026-07-05.md",
        markdown_article("Story 2026-07-05", "2026-07-05T12:00:00Z", ["M2026-07", "All"], "An edited text."),
    )
    ingest_folder(project, store, NOW + timedelta(hours=1))

    result = write_feeds(project.config(), store)

    # "All" holds only the newest three, so its feed does not change, but it is looked at again.
    assert sorted(rendered) == ["archive/2026-07.xml", "tags/all.xml", "tags/m2026-07.xml"]
    assert result.written == ("archive/2026-07.xml", "tags/m2026-07.xml")
    assert result.changed_urls == tuple(project.config().feed.base_url + path for path in result.written)
    _assert_as_from_scratch(project, store, tmp_path)


def test_moving_an_article_to_another_month_relinks_the_archive(project: Project, store: Store, tmp_path: Path) -> None:
    """2026-06 empties (both its stories move to May): 2026-07's prev-archive now points at May."""
    _monthly(project, store)
    for day in (5, 20):
        name = f"2026-06-{day:02d}.md"
        project.add_article(
            name, markdown_article(f"Story 2026-06-{day:02d}", f"2026-05-{day:02d}T12:00:00Z", ["M2026-06", "All"])
        )
    ingest_folder(project, store, NOW + timedelta(hours=1))

    result = write_feeds(project.config(), store)

    assert result.removed == ("archive/2026-06.xml",)
    assert "archive/2026-05.xml" in result.written and "archive/2026-07.xml" in result.written
    _assert_as_from_scratch(project, store, tmp_path)


def test_a_removed_article_leaves_every_document_that_held_it(project: Project, store: Store, tmp_path: Path) -> None:
    _monthly(project, store)
    newest = store.newest_articles(1)[0]
    assert store.remove_article(newest.key, NOW + timedelta(hours=1))

    result = write_feeds(project.config(), store)

    # Story 2026-09-05 comes back from the archive into atom.xml, which empties 2026-09.
    assert {"atom.xml", "tags/m2026-10.xml", "tags/all.xml", "archive/2026-08.xml"} <= set(result.written)
    assert result.removed == ("archive/2026-09.xml",)
    _assert_as_from_scratch(project, store, tmp_path)


# -- the folder changed by hand -------------------------------------------------------------------


def test_a_document_deleted_or_edited_by_hand_is_written_again(
    project: Project, store: Store, rendered: list[str], tmp_path: Path
) -> None:
    _monthly(project, store)
    feeds = project.config().feed.dir
    (feeds / "archive" / "2026-07.xml").unlink()
    (feeds / "feed.xsl").unlink()
    with (feeds / "tags" / "all.xml").open("ab") as handle:
        handle.write(b"<!-- edited -->")
    (feeds / "archive" / "1999-01.xml").write_bytes(b"<feed/>")  # not one of ours: removed
    (feeds / "notes.txt").write_text("left alone")
    rendered.clear()

    result = write_feeds(project.config(), store)

    assert sorted(rendered) == ["archive/2026-07.xml", "tags/all.xml"]
    assert result.written == ("archive/2026-07.xml", "tags/all.xml", "feed.xsl")
    assert result.removed == ("archive/1999-01.xml",)
    (feeds / "notes.txt").unlink()
    _assert_as_from_scratch(project, store, tmp_path)


def test_a_deleted_feeds_folder_comes_back_whole(project: Project, store: Store, tmp_path: Path) -> None:
    first = _monthly(project, store)
    shutil.rmtree(project.config().feed.dir)

    again = write_feeds(project.config(), store)

    assert again.written == first.written
    _assert_as_from_scratch(project, store, tmp_path)


# -- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"max_entries": 4},
        {"max_entries": 50},
        {"formats": ["atom", "json"]},
        {"formats": ["rss"]},
        {"tag_feeds": False},
        {"archives": False},
        {"stylesheet": False},
        {"hubs": ["https://hub.example.org/"]},
    ],
)
def test_a_changed_setting_rebuilds_what_it_affects(
    project: Project, store: Store, tmp_path: Path, change: dict[str, object]
) -> None:
    _monthly(project, store)
    project.configure(feed=change)
    write_feeds(project.config(), store)
    _assert_as_from_scratch(project, store, tmp_path)


def test_a_changed_site_title_rewrites_every_document(project: Project, store: Store, tmp_path: Path) -> None:
    first = _monthly(project, store)
    project.configure(site={"title": "Another title"})

    again = write_feeds(project.config(), store)

    assert set(again.written) == set(first.written) - {"feed.xsl"}
    _assert_as_from_scratch(project, store, tmp_path)


# -- histories -------------------------------------------------------------------------------------


TAGS = ["Economy", "economy", "C++", "Science", "Sport", "sport", "Tech"]


def _random_history(project: Project, store: Store, other: Store, tmp_path: Path, steps: int) -> None:
    """Adds, edits, re-dates, re-tags, removals and revivals, by two store connections (as two
    processes would), with a rebuild after each step that must equal one from scratch."""
    rng = random.Random(5005)
    project.configure(feed={"max_entries": 4})
    files: dict[str, tuple[str, list[str], int]] = {}  # name -> (date, tags, edits)
    removed: set[str] = set()
    for step in range(steps):
        when = NOW + timedelta(minutes=step + 1)
        writer = rng.choice([store, other])
        action = rng.choice(["add", "add", "add", "edit", "redate", "retag", "remove", "revive"]) if files else "add"
        name = rng.choice(sorted(files)) if files else ""
        if action == "add":
            name = f"story-{step}.md"
            day = datetime(2026, 1, 1, 12) + timedelta(days=rng.randrange(300), hours=rng.randrange(24))
            files[name] = (day.strftime("%Y-%m-%dT%H:%M:%SZ"), rng.sample(TAGS, rng.randrange(3)), 0)
        elif action == "edit":
            date, tags, edits = files[name]
            files[name] = (date, tags, edits + 1)
        elif action == "redate":
            day = datetime(2026, 1, 1, 12) + timedelta(days=rng.randrange(300))
            files[name] = (day.strftime("%Y-%m-%dT%H:%M:%SZ"), files[name][1], files[name][2] + 1)
        elif action == "retag":
            files[name] = (files[name][0], rng.sample(TAGS, rng.randrange(3)), files[name][2] + 1)
        elif action == "remove":
            keys = {article.title: article.key for article in writer.newest_articles()}
            if name not in removed and writer.remove_article(keys[name.removesuffix(".md")], when):
                removed.add(name)
        elif action == "revive" and removed:
            name = rng.choice(sorted(removed))
            removed.discard(name)
            files[name] = (files[name][0], files[name][1], files[name][2] + 1)
        if action != "remove":
            date, tags, edits = files[name]
            text = f"The text of {name}" + " and more" * edits  # longer each time: seen as changed
            project.add_article(name, markdown_article(name.removesuffix(".md"), date, tags, text))
            ingest_folder(project, writer, when)
        write_feeds(project.config(), store)
        _assert_as_from_scratch(project, store, tmp_path)


def test_a_random_history_always_matches_a_rebuild_from_scratch(project: Project, store: Store, tmp_path: Path) -> None:
    other = project.open_store()
    try:
        _random_history(project, store, other, tmp_path, steps=40)
    finally:
        other.close()


def test_a_random_history_on_postgresql(project: Project, pg_url: str, tmp_path: Path) -> None:
    (project.articles / SAMPLE.name).unlink()
    project.configure(store={"url": pg_url})
    store, other = project.open_store(), project.open_store()
    try:
        _random_history(project, store, other, tmp_path, steps=25)
    finally:
        store.close()
        other.close()


def test_more_changes_than_an_incremental_rebuild_takes_rebuild_everything(
    project: Project, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _monthly(project, store)
    monkeypatch.setattr(feed_module, "FULL_AFTER", 2)
    for day in (1, 2, 3):
        project.add_article(
            f"2026-08-0{day}.md", markdown_article(f"Extra 2026-08-0{day}", f"2026-08-0{day}T12:00:00Z", ["All"])
        )
    ingest_folder(project, store, NOW + timedelta(hours=1))
    write_feeds(project.config(), store)
    _assert_as_from_scratch(project, store, tmp_path)


_OLD_STORE = {
    "sqlite": [
        "DROP TRIGGER article_changes_insert",
        "DROP TRIGGER article_changes_update",
        "DROP TRIGGER article_changes_delete",
    ],
    "postgresql": [
        "DROP TRIGGER article_changes_lock ON articles",
        "DROP TRIGGER article_changes_log ON articles",
        "DROP FUNCTION article_changes_lock",
        "DROP FUNCTION article_changes_log",
    ],
}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_store_from_before_the_feed_index_is_migrated(
    project: Project, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """A store made by an older publisher: no change log, no tag index; after the upgrade the
    first rebuild writes everything right, and later ones follow the changes."""
    (project.articles / SAMPLE.name).unlink()
    if backend == "postgresql":
        project.configure(store={"url": request.getfixturevalue("pg_url")})
    store = project.open_store()
    _monthly(project, store)
    with store.transaction() as conn:
        for statement in _OLD_STORE[backend]:
            conn.exec_driver_sql(statement)
        for table in ("article_changes", "article_tags", "feed_builds", "feed_content"):
            conn.exec_driver_sql(f"DROP TABLE {table}")
        conn.exec_driver_sql("DROP INDEX ix_articles_published")
        conn.execute(delete(settings).where(settings.c.name == index.TAGS_REV))
        conn.execute(delete(schema_version))  # stamped as the version before the feed index
        conn.execute(insert(schema_version), {"version": 1 + MIGRATIONS.index(_feed_index), "applied_at": NOW})
    store.close()
    upgraded = project.open_store()
    try:
        assert upgraded.schema_version() == SCHEMA_VERSION
        write_feeds(project.config(), upgraded)
        _assert_as_from_scratch(project, upgraded, tmp_path)
        project.add_article("2026-10-25.md", markdown_article("Story 2026-10-25", "2026-10-25T12:00:00Z", ["All"]))
        ingest_folder(project, upgraded, NOW + timedelta(hours=1))
        result = write_feeds(project.config(), upgraded)
        assert {"atom.xml", "tags/all.xml"} <= set(result.written)
        _assert_as_from_scratch(project, upgraded, tmp_path)
    finally:
        upgraded.close()


def test_two_rebuilds_of_one_folder_at_once_leave_the_next_to_start_from_scratch(
    project: Project, store: Store, tmp_path: Path
) -> None:
    """A rebuild saves what it wrote only if no other rebuild of the folder saved since it
    read; otherwise the record is dropped, so the next rebuild trusts nothing and checks all."""
    _monthly(project, store)
    config = project.config()
    folder = str(config.feed.dir.resolve())
    with store.transaction() as conn:
        seen = index.load_build(conn, folder)
    assert seen is not None
    project.add_article("2026-10-25.md", markdown_article("Story 2026-10-25", "2026-10-25T12:00:00Z", ["All"]))
    ingest_folder(project, store, NOW + timedelta(hours=1))
    write_feeds(config, store)  # the other rebuild, which saves first

    assert not index.save_build(store, folder, seen[0], seen[1])
    assert _build_serial(store, config) is None
    # The slower rebuild's bytes, as it left them: size and mtime as the faster one recorded.
    target = config.feed.dir / "archive" / "2026-09.xml"
    recorded = target.stat()
    target.write_bytes(target.read_bytes().replace(b"Story 2026-09-05", b"Story 2026-09-XX"))
    os.utime(target, ns=(recorded.st_atime_ns, recorded.st_mtime_ns))
    rebuilt = write_feeds(config, store)
    assert "archive/2026-09.xml" in rebuilt.written
    _assert_as_from_scratch(project, store, tmp_path)
