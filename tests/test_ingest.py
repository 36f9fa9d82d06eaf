"""Ingest through the store and the CLI: the sample article, raw sources, identity, bad files.

Per-format reading and cleaning is tested file by file in test_ingest_cases.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from publisher.ingest import IngestResult, ingest
from publisher.links import entry_id
from publisher.store import Store
from tests.conftest import NOW, SAMPLE, SAMPLE_TITLE, Project

UTC = ZoneInfo("UTC")
LATER = NOW + timedelta(hours=5)
MUCH_LATER = NOW + timedelta(days=3)
CHROME = ("Leave a Comment", "Your email address will not be published", "Scroll to Top")
# How each of the sample's five paragraphs starts and ends, in order.
SAMPLE_PARAGRAPHS = [
    ("The Kremlin has issued a scathing rebuke", "of US involvement in this conflict.\u201d"),
    ("This condemnation echoes President Vladimir Putin\u2019s", "President Recep Tayyip Erdo\u011fan."),
    ("The initial reports of the Biden administration\u2019s", "alter the conflict\u2019s trajectory."),
    ("This incident marks a significant escalation.", "inherent risks of pushing a nuclear power to its limits."),
    ("Russian officials have repeatedly warned the West", "with the potential for significant further escalation."),
]


@pytest.fixture
def store(project: Project) -> Iterator[Store]:
    with closing(project.open_store()) as opened:
        yield opened


def _ingest(project: Project, store: Store, *paths: Path, now: datetime = NOW) -> IngestResult:
    return ingest(store, list(paths), articles_dir=project.articles, tz=UTC, now=now)


# -- the sample article ----------------------------------------------------------------------


def test_sample_article_is_stored_with_its_title_and_five_paragraphs_once_each(project: Project, store: Store) -> None:
    result = _ingest(project, store, project.articles / SAMPLE.name)

    assert (result.new, result.errors) == ([SAMPLE.stem], [])
    article = store.article(SAMPLE.stem)
    assert article is not None
    assert article.title == SAMPLE_TITLE
    paragraphs = article.body_text.split("\n\n")
    assert len(paragraphs) == 5
    for paragraph, (start, end) in zip(paragraphs, SAMPLE_PARAGRAPHS, strict=True):
        assert paragraph.startswith(start) and paragraph.endswith(end)
        assert article.body_text.count(start) == 1
        assert article.body_html.count(start) == 1
    assert article.body_html.count("<p>") == 5
    for chrome in CHROME:
        for stored in (article.body_html, article.body_text, article.summary):
            assert chrome not in stored
    assert article.summary.startswith("The Kremlin has issued a scathing rebuke")
    assert article.format == "txt"


def test_the_raw_source_bytes_of_each_version_are_stored(project: Project, store: Store) -> None:
    path = project.articles / SAMPLE.name
    original = path.read_bytes()
    _ingest(project, store, path)
    assert store.source_versions(SAMPLE.stem) == [original]

    _ingest(project, store, path, now=LATER)  # unchanged: no second copy
    assert store.source_versions(SAMPLE.stem) == [original]

    edited = original.replace(b"Scroll to Top", b"An added closing line, long enough to be kept.")
    path.write_bytes(edited)
    _ingest(project, store, path, now=MUCH_LATER)
    assert store.source_versions(SAMPLE.stem) == [original, edited]


# -- identity --------------------------------------------------------------------------------


def test_ingesting_the_same_file_again_changes_nothing(project: Project, store: Store) -> None:
    path = project.articles / SAMPLE.name
    _ingest(project, store, path)
    before = store.article(SAMPLE.stem)

    again = _ingest(project, store, path, now=LATER)

    assert (again.new, again.updated, again.unchanged, again.errors) == ([], [], [SAMPLE.stem], [])
    assert store.article(SAMPLE.stem) == before
    assert store.article_count() == 1


def test_a_changed_file_updates_the_same_article_and_keeps_its_feed_id(project: Project, store: Store) -> None:
    site = project.config().site
    path = project.add_article("notes/harbour.txt", "Harbour Reopens\n\nThe harbour reopened on Monday.\n")
    _ingest(project, store, path)
    before = store.article("notes/harbour")
    assert before is not None

    path.write_text("Harbour Reopens After Repairs\n\nThe harbour reopened on Monday after repairs.\n")
    result = _ingest(project, store, path, now=LATER)

    assert (result.new, result.updated, result.errors) == ([], ["notes/harbour"], [])
    after = store.article("notes/harbour")
    assert after is not None
    assert (after.id, after.key, after.first_seen) == (before.id, before.key, NOW)
    assert entry_id(site, after) == entry_id(site, before)
    assert after.title == "Harbour Reopens After Repairs"
    assert after.body_text == "The harbour reopened on Monday after repairs."
    assert (before.updated, after.updated) == (NOW, LATER)
    assert store.article_count() == 1


def test_an_undated_article_is_dated_when_first_seen_and_keeps_that_date(project: Project, store: Store) -> None:
    path = project.add_article("undated.md", "# Undated\n\nFirst version of the text.\n")
    _ingest(project, store, path)
    path.write_text("# Undated\n\nSecond version of the text.\n")
    _ingest(project, store, path, now=LATER)
    path.write_text("# Undated, Retitled\n\nThird version of the text.\n")
    _ingest(project, store, path, now=MUCH_LATER)

    article = store.article("undated")
    assert article is not None
    assert article.body_text == "Third version of the text."
    assert (article.published, article.first_seen, article.updated) == (NOW, NOW, MUCH_LATER)


def test_a_dated_article_takes_its_date_from_front_matter_on_every_version(project: Project, store: Store) -> None:
    path = project.add_article("dated.md", "---\ndate: 2024-05-01T10:00:00Z\n---\n# Dated\n\nText.\n")
    _ingest(project, store, path)
    first = store.article("dated")
    path.write_text("---\ndate: 2024-05-02T10:00:00Z\n---\n# Dated\n\nCorrected text.\n")
    _ingest(project, store, path, now=LATER)
    second = store.article("dated")

    assert first is not None and second is not None
    assert first.published.isoformat() == "2024-05-01T10:00:00+00:00"
    assert second.published.isoformat() == "2024-05-02T10:00:00+00:00"
    assert second.id == first.id


# -- bad files, through the CLI --------------------------------------------------------------


def test_bad_files_are_reported_one_line_each_and_the_good_ones_stored(project: Project) -> None:
    good_md = project.add_article("good.md", "---\ntitle: Good One\n---\nA body worth keeping.\n")
    empty = project.add_article("empty.txt", b"")
    broken = project.add_article("broken.md", "---\ntitle: [unclosed\n---\nBody.\n")
    sample = project.articles / SAMPLE.name

    result = project.cli("ingest", str(empty), str(good_md), str(broken), str(sample))

    assert result.exit_code == 1
    empty_line, broken_line = result.stderr.splitlines()
    assert empty_line == f"publisher: error: {empty}: empty file"
    assert broken_line.startswith(f"publisher: error: {broken}: broken front matter: invalid YAML at line 2: ")
    assert result.stdout.strip() == "ingest: 2 new, 0 updated, 0 unchanged, 2 failed"
    with closing(project.open_store()) as store:
        assert store.article_count() == 2
        good = store.article("good")
        assert good is not None and good.title == "Good One"
        sample_article = store.article(SAMPLE.stem)
        assert sample_article is not None and sample_article.title == SAMPLE_TITLE


def test_a_folder_argument_ingests_its_article_files_and_names_each_bad_one(project: Project) -> None:
    project.add_article("2024/bridge.md", "# Bridge Opens\n\nThe bridge opened.\n")
    project.add_article("2024/old/ferry.html", "<html><body><h1>Ferry</h1><p>The ferry sails.</p></body></html>")
    project.add_article("2024/.drafts/secret.txt", "Secret\n\nNot ready yet.\n")  # hidden: skipped
    project.add_article("2024/photo.jpg", b"\xff\xd8\xff\xe0 not an article")  # not an article type: skipped
    blank = project.add_article("2024/blank.txt", "   \n\n  \n")

    result = project.cli("ingest", str(project.articles))

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"publisher: error: {blank}: empty file (only whitespace)"]
    assert result.stdout.strip() == "ingest: 3 new, 0 updated, 0 unchanged, 1 failed"
    with closing(project.open_store()) as store:
        keys = sorted(a.key for a in store.newest_articles(10))
        assert keys == ["000_b518ed41a9e9a454", "2024/bridge", "2024/old/ferry"]
        # The same file named on its own is the same article: nothing changes.
        again = _ingest(project, store, project.articles / "2024" / "bridge.md", now=LATER)
        assert again.unchanged == ["2024/bridge"]


def test_a_dangling_symlink_is_reported_whether_named_or_found_in_a_folder(project: Project) -> None:
    dangling = project.articles / "moved-away.txt"
    dangling.symlink_to(project.root / "no-such-file.txt")

    named = project.cli("ingest", str(dangling), str(project.articles / SAMPLE.name))
    assert named.exit_code == 1
    [line] = named.stderr.splitlines()
    assert line.startswith(f"publisher: error: {dangling}: cannot read the file")
    assert "no-such-file.txt" in line

    found = project.cli("ingest", str(project.articles))
    assert found.exit_code == 1
    [line] = found.stderr.splitlines()
    assert line.startswith(f"publisher: error: {dangling}: cannot read the file")
    assert found.stdout.strip() == "ingest: 0 new, 0 updated, 1 unchanged, 1 failed"
    with closing(project.open_store()) as store:
        assert store.article_count() == 1


def test_a_path_that_does_not_exist_is_reported(project: Project) -> None:
    missing = project.articles / "nowhere.txt"

    result = project.cli("ingest", str(missing), str(project.articles / SAMPLE.name))

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"publisher: error: {missing}: no such file or folder"]
    assert "1 new" in result.stdout


def test_all_files_good_exits_0(project: Project) -> None:
    result = project.cli("ingest", str(project.articles))

    assert result.exit_code == 0
    assert result.stderr == ""
    assert result.stdout.strip() == "ingest: 1 new, 0 updated, 0 unchanged, 0 failed"
