"""The store on a real SQLite file and on real PostgreSQL (URL from PUBLISHER_TEST_POSTGRES_URL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import feedparser
import pytest
from sqlalchemy import insert

from publisher import digest
from publisher.errors import StoreError
from publisher.ingest import ingest
from publisher.schema import schema_version
from publisher.store import SCHEMA_VERSION, Store
from tests.conftest import NOW, SAMPLE_TITLE, Project


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, project: Project) -> str:
    if request.param == "sqlite":
        return project.config().store_url
    url: str = request.getfixturevalue("pg_url")
    return url


def test_new_store_is_created_at_the_newest_schema_and_reopens(store_url: str) -> None:
    store = Store.open(store_url)
    assert store.schema_version() == SCHEMA_VERSION
    store.close()

    again = Store.open(store_url)  # migrating an up-to-date store changes nothing
    assert again.schema_version() == SCHEMA_VERSION
    assert again.setting("created_at") is not None


def test_store_from_a_newer_publisher_is_refused(store_url: str) -> None:
    store = Store.open(store_url)
    with store.engine.begin() as conn:
        conn.execute(insert(schema_version), {"version": SCHEMA_VERSION + 1, "applied_at": NOW})

    with pytest.raises(StoreError, match="newer than this publisher knows"):
        Store.open(store_url)


def test_datetimes_come_back_aware_and_in_utc(project: Project, store_url: str) -> None:
    store = Store.open(store_url)
    project.add_article("dated.md", "---\ntitle: Dated\ndate: 2026-11-20T09:15:00+05:30\n---\nText.\n")
    local_now = NOW.astimezone(timezone(timedelta(hours=-8)))
    ingest(store, [project.articles], articles_dir=project.articles, tz=project.config().site.timezone, now=local_now)

    article = store.article("dated")

    assert article is not None
    assert article.published == datetime(2026, 11, 20, 3, 45, tzinfo=UTC)
    assert article.published.utcoffset() == timedelta(0)
    assert article.first_seen == NOW and article.first_seen.tzinfo is not None


def test_an_article_goes_out_in_one_digest_only_even_when_two_publishers_race(project: Project, store_url: str) -> None:
    config = project.config()
    first, second = Store.open(store_url), Store.open(store_url)
    ingest(first, [project.articles], articles_dir=project.articles, tz=config.site.timezone, now=NOW)
    ids = [a.id for a in digest.next_articles(config, first, NOW)]

    assert first.create_digest("d-one", NOW, "s", b"m", ids) is True
    assert second.create_digest("d-two", NOW, "s", b"m", ids) is False
    assert first.digest("d-two") is None


def test_only_one_process_can_claim_a_digest(project: Project, store_url: str) -> None:
    config = project.config()
    first, second = Store.open(store_url), Store.open(store_url)
    ingest(first, [project.articles], articles_dir=project.articles, tz=config.site.timezone, now=NOW)
    created = digest.create_next(config, first, NOW)
    assert created is not None
    seen_by_second = second.digest(created.id)
    assert seen_by_second is not None

    assert first.claim_digest(created, NOW) is True
    assert second.claim_digest(seen_by_second, NOW) is False


def test_whole_run_on_postgresql(project: Project, pg_url: str) -> None:
    project.configure(store={"url": pg_url})

    first = project.cli("run")
    second = project.cli("run")

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0 and "nothing new" in second.stdout
    assert len(project.outbox_files()) == 1
    parsed = feedparser.parse(project.feed.read_bytes())
    assert [e.title for e in parsed.entries] == [SAMPLE_TITLE]
    store = Store.open(pg_url)
    last = store.last_digest()
    assert last is not None and last.state == "sent" and last.article_count == 1


def test_unreachable_database_is_one_clear_error(project: Project) -> None:
    project.configure(store={"url": "postgresql+psycopg://nobody:s3cret-pw@127.0.0.1:1/none"})

    result = project.cli("run")

    assert result.exit_code == 1
    assert result.stderr.startswith("publisher: error: store postgresql+psycopg://nobody:***@127.0.0.1:1/none")
    assert result.stderr.count("\n") == 1
    assert "s3cret-pw" not in result.output
