"""Drafts, embargoed articles, the checks made before any work, and weak secrets refused.

- ``draft: true`` in front matter: the article is stored (its raw source too) but is in no feed
  and no digest until the flag goes; then it goes out like a new article.
- An article dated in the future is left out of the feeds and the digest until its date, and
  the feeds' ``updated`` never shows its date; the run after the date publishes it, although
  nothing was written to the store meanwhile (the incremental rebuild must notice the time).
- A broken ``[digest] subject`` or template, a local list without its secret, a missing
  ``[articles] dir``: exit 2 and one line, before anything is ingested, written or mailed.
- A secret that is a common word, or a word of the config, is refused by the name of its
  variable (redacting it would garble every message).
"""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import feedparser
import pytest
from sqlalchemy import text, update

from publisher import clock, schema
from publisher.feed import write_feeds
from publisher.schema import articles, schema_version
from publisher.store import MIGRATIONS, SCHEMA_VERSION, _draft
from tests.conftest import NOW, SAMPLE_TITLE, Project, ingest_folder, markdown_article

SECRET = "drafts-secret-Qx7Lm2Vz9Tb4"  # a strong one, for the local list


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, project: Project) -> Iterator[str]:
    """The project's store on SQLite, or on a fresh PostgreSQL database."""
    if request.param == "postgresql":
        project.configure(store={"url": request.getfixturevalue("pg_url")})
    yield request.param


def run(project: Project, when: datetime, **env: str | None) -> Any:
    return project.cli("run", env={"PUBLISHER_NOW": when.isoformat(), **env})


def feed_titles(project: Project) -> dict[str, list[str]]:
    """The entry titles of atom.xml and rss.xml as feedparser reads them, and of feed.json."""
    found = {}
    for name in ("atom.xml", "rss.xml"):
        parsed = feedparser.parse((project.feed.parent / name).read_bytes())
        assert not parsed.bozo, (name, parsed.bozo_exception)
        found[name] = [item.title for item in parsed.entries]
    items = json.loads((project.feed.parent / "feed.json").read_bytes())["items"]
    found["feed.json"] = [item["title"] for item in items]
    return found


def mailed(project: Project) -> list[EmailMessage]:
    messages = []
    for path in project.outbox_files():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def feed_files(project: Project) -> dict[str, bytes]:
    root = project.feed.parent
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- drafts ----------------------------------------------------------------------------------

DRAFT = "---\ntitle: Plans for next year\ndraft: true\n---\nNot to be read before the board meets.\n"


def test_a_draft_is_stored_but_neither_published_nor_mailed_until_the_flag_goes(project: Project, backend: str) -> None:
    path = project.add_article("plans.md", DRAFT)

    first = run(project, NOW)

    assert first.exit_code == 0, first.output
    assert "2 new" in first.output
    assert all(titles == [SAMPLE_TITLE] for titles in feed_titles(project).values())
    [digest] = mailed(project)
    assert "Plans for next year" not in text_of(digest) and "board meets" not in text_of(digest)
    store = project.open_store()
    try:
        assert store.source_versions("plans") == [DRAFT.encode()]  # kept, as every source is
    finally:
        store.close()

    later = NOW + timedelta(days=2)
    path.write_text(DRAFT.replace("draft: true", "draft: false"), encoding="utf-8")
    second = run(project, later)

    assert second.exit_code == 0, second.output
    for titles in feed_titles(project).values():
        assert titles == ["Plans for next year", SAMPLE_TITLE]  # newest first: dated when published
    atom = feedparser.parse(project.feed.read_bytes())
    assert atom.entries[0].published == later.isoformat()
    assert len(mailed(project)) == 2
    newest = mailed(project)[-1]  # digest ids, and so the file names, start with the time
    assert "Plans for next year" in text_of(newest) and SAMPLE_TITLE not in text_of(newest)


def test_an_article_made_a_draft_again_leaves_the_feeds(project: Project) -> None:
    path = project.add_article("plans.md", DRAFT.replace("draft: true", "draft: false"))
    assert run(project, NOW).exit_code == 0
    assert "Plans for next year" in feed_titles(project)["atom.xml"]

    path.write_text(DRAFT, encoding="utf-8")
    assert run(project, NOW + timedelta(hours=1)).exit_code == 0

    assert all(titles == [SAMPLE_TITLE] for titles in feed_titles(project).values())


def test_a_draft_flag_that_is_not_true_or_false_is_refused_by_file(project: Project, at_now: datetime) -> None:
    project.add_article("plans.md", DRAFT.replace("draft: true", "draft: not yet"))

    result = project.cli("run")

    assert result.exit_code == 1
    [line] = [line for line in result.stderr.splitlines() if "plans.md" in line]
    assert line.endswith("plans.md: front matter: draft must be true or false, got 'not yet'")
    assert all("Plans" not in text_of(message) for message in mailed(project))


def test_a_store_from_before_drafts_is_migrated_and_a_flag_change_alone_rebuilds_the_feeds(
    project: Project, backend: str
) -> None:
    """An older store gets the column, and the change-log triggers watch it: an UPDATE of the
    draft flag alone (no other column) is seen by the incremental rebuild."""
    store = project.open_store()
    with store.transaction() as conn:  # as an older publisher left it: no column, older triggers
        on = " ON articles" if backend == "postgresql" else ""
        for name in schema._TRIGGER_NAMES[backend]:
            conn.execute(text(f"DROP TRIGGER {name}{on}"))
        conn.execute(text("ALTER TABLE articles DROP COLUMN draft"))
        schema._create_triggers(schema.article_changes, conn)
        conn.execute(schema_version.delete())
        conn.execute(schema_version.insert(), {"version": 1 + MIGRATIONS.index(_draft), "applied_at": NOW})
    store.close()

    upgraded = project.open_store()
    try:
        assert upgraded.schema_version() == SCHEMA_VERSION
        project.add_article("plans.md", DRAFT)
        ingest_folder(project, upgraded)
        config = project.config()
        with clock.frozen(NOW):
            write_feeds(config, upgraded)
            assert feed_titles(project)["atom.xml"] == [SAMPLE_TITLE]
            with upgraded.transaction() as conn:
                conn.execute(update(articles).where(articles.c.key == "plans").values(draft=False))
            result = write_feeds(config, upgraded)
    finally:
        upgraded.close()

    assert "atom.xml" in result.written
    assert feed_titles(project)["atom.xml"] == ["Plans for next year", SAMPLE_TITLE]


# -- embargo ---------------------------------------------------------------------------------

DUE = NOW + timedelta(days=3)


def test_an_article_dated_in_the_future_is_published_and_mailed_when_its_date_arrives(
    project: Project, backend: str
) -> None:
    project.add_article("launch.md", markdown_article("Launch day", DUE.isoformat(), ["launch"]))

    assert run(project, NOW).exit_code == 0
    for titles in feed_titles(project).values():
        assert titles == [SAMPLE_TITLE]
    atom = feedparser.parse(project.feed.read_bytes())
    assert atom.feed.updated == NOW.isoformat()  # not pinned to the future date
    assert not (project.feed.parent / "tags" / "launch.xml").exists()
    [digest] = mailed(project)
    assert "Launch day" not in text_of(digest)

    before = feed_files(project)
    just_before = run(project, DUE - timedelta(seconds=1))
    assert just_before.exit_code == 0
    assert "0 written" in just_before.output and feed_files(project) == before
    assert len(mailed(project)) == 1

    due = run(project, DUE)  # nothing was written to the store since: only time passed

    assert due.exit_code == 0, due.output
    for titles in feed_titles(project).values():
        assert titles == ["Launch day", SAMPLE_TITLE]
    atom = feedparser.parse(project.feed.read_bytes())
    assert atom.feed.updated == DUE.isoformat()
    tag = feedparser.parse((project.feed.parent / "tags" / "launch.xml").read_bytes())
    assert [item.title for item in tag.entries] == ["Launch day"]
    assert len(mailed(project)) == 2
    newest = mailed(project)[-1]  # digest ids, and so the file names, start with the time
    assert "Launch day" in text_of(newest)
    store = project.open_store()
    try:
        from_scratch = project.root / "scratch"
        scratch = project.configure(feed={"dir": str(from_scratch)})
        with clock.frozen(DUE):
            write_feeds(scratch, store)  # a full rebuild, for comparison
    finally:
        store.close()
    assert {p.name: p.read_bytes() for p in from_scratch.rglob("*.xml")} == {
        p.name: p.read_bytes() for p in project.feed.parent.rglob("*.xml") if p.name != "issues.xml"
    }  # issues.xml is the archive of sent digests (publisher.archive), which write_feeds does not make


def test_the_next_embargo_is_the_earliest_of_several(project: Project) -> None:
    project.add_article("later.md", markdown_article("Later", (DUE + timedelta(days=1)).isoformat()))
    project.add_article("sooner.md", markdown_article("Sooner", DUE.isoformat()))
    assert run(project, NOW).exit_code == 0

    assert run(project, DUE).exit_code == 0
    assert feed_titles(project)["atom.xml"] == ["Sooner", SAMPLE_TITLE]

    assert run(project, DUE + timedelta(days=1)).exit_code == 0
    assert feed_titles(project)["atom.xml"] == ["Later", "Sooner", SAMPLE_TITLE]


def test_a_clock_set_back_hides_no_article_that_was_not_dated_ahead(project: Project) -> None:
    """Only an article dated after it was first seen waits for its date: a run replayed at an
    earlier moment (PUBLISHER_NOW) does not take the others out of the feeds or the digest."""
    assert project.cli("ingest", str(project.articles), env={"PUBLISHER_NOW": NOW.isoformat()}).exit_code == 0

    assert run(project, NOW - timedelta(days=1)).exit_code == 0

    assert feed_titles(project)["atom.xml"] == [SAMPLE_TITLE]
    [digest] = mailed(project)
    assert SAMPLE_TITLE in text_of(digest)


# -- checks before any work ------------------------------------------------------------------


def assert_refused_before_work(project: Project, result: Any, where: str) -> None:
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"publisher: error: publisher.toml: {where}: "), line
    assert result.stdout == ""
    assert not project.feed.parent.exists()
    assert project.outbox_files() == []
    assert not (project.root / "publisher.db").exists()


@pytest.mark.parametrize(
    ("subject", "why"),
    [("{{ site.title }: news", "unexpected '}'"), ("{{ articles|nosuch }} new", "No filter named 'nosuch'")],
    ids=["syntax", "filter"],
)
def test_a_broken_subject_template_is_refused_before_any_work(
    project: Project, at_now: datetime, subject: str, why: str
) -> None:
    project.configure(digest={"subject": subject})

    result = project.cli("run")

    assert_refused_before_work(project, result, "[digest] subject")
    assert why in result.stderr


def test_a_broken_digest_template_is_refused_before_any_work(project: Project, at_now: datetime) -> None:
    templates = project.root / "templates"
    templates.mkdir()
    (templates / "digest.html.j2").write_text("<p>{% for a in articles %}{{ a.title }}</p>\n", encoding="utf-8")
    (templates / "digest.txt.j2").write_text("{{ subject }}\n", encoding="utf-8")
    project.configure(digest={"templates_dir": "templates"})

    result = project.cli("run")

    assert_refused_before_work(project, result, "[digest] templates_dir")
    assert "digest.html.j2:1:" in result.stderr


def test_a_local_list_without_its_secret_is_refused_before_any_work(project: Project, at_now: datetime) -> None:
    project.configure(digest={"recipients": "subscribers"})

    result = project.cli("run", env={"PUBLISHER_UNSUBSCRIBE_SECRET": None})  # type: ignore[dict-item]

    assert_refused_before_work(project, result, "[digest] secret_env")
    assert "PUBLISHER_UNSUBSCRIBE_SECRET is not set" in result.stderr


def test_an_articles_folder_that_does_not_exist_is_refused_before_any_work(project: Project, at_now: datetime) -> None:
    project.configure(articles={"dir": "artciles"})  # a typo

    result = project.cli("run")

    assert_refused_before_work(project, result, "[articles] dir")
    assert str(project.root / "artciles") in result.stderr


def test_the_commands_that_do_not_need_them_still_run(project: Project, at_now: datetime) -> None:
    project.configure(articles={"dir": "artciles"}, digest={"recipients": "subscribers"})

    assert project.cli("status", env={"PUBLISHER_UNSUBSCRIBE_SECRET": None}).exit_code == 0  # type: ignore[dict-item]
    assert project.cli("subscribers", "add", "ada@example.org").exit_code == 0


# -- weak secrets ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("secret", "too short for a secret (6 characters; use at least 16)"),
        ("PUBLISHER_UNSUBSCRIBE_SECRET", "a word of the configuration"),  # its own name
        ("subscribers@lists.example.org", "a word of the configuration"),  # written in publisher.toml
    ],
    ids=["common-word", "its-name", "in-the-config"],
)
def test_a_weak_secret_is_refused_by_its_variable_in_a_line_left_whole(
    project: Project, at_now: datetime, value: str, why: str
) -> None:
    project.configure(digest={"recipients": "subscribers"})

    result = project.cli("run", env={"PUBLISHER_UNSUBSCRIBE_SECRET": value})

    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("publisher: error: environment variable PUBLISHER_UNSUBSCRIBE_SECRET: "), line
    assert why in line and "[redacted]" not in line
    assert not project.feed.parent.exists() and project.outbox_files() == []


def test_a_weak_key_in_a_variable_the_config_names_is_refused_too(project: Project, at_now: datetime) -> None:
    project.configure(mailer={"api_key_env": "NEWSROOM_KEY"})

    result = project.cli("status", env={"NEWSROOM_KEY": "hunter2"})

    assert result.exit_code == 2
    assert result.stderr.startswith("publisher: error: environment variable NEWSROOM_KEY: too short for a secret")


def test_a_secret_written_in_the_config_is_refused_without_being_repeated(project: Project, at_now: datetime) -> None:
    project.configure(digest={"recipients": "subscribers", "subject": f"{SECRET}: {{{{ articles|length }}}}"})

    result = project.cli("run", env={"PUBLISHER_UNSUBSCRIBE_SECRET": SECRET})

    assert result.exit_code == 2
    assert (
        "environment variable PUBLISHER_UNSUBSCRIBE_SECRET: its value is a word of the configuration" in result.stderr
    )
    assert SECRET not in result.output
