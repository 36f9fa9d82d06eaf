"""Ingest does work in proportion to what changed, and loses nothing on the way.

- A file at the recorded path, size and mtime is unchanged without being read (rsync's and
  make's rule: an edit that keeps both is not seen, by design); a touched file is read and
  hashed but, same bytes, not parsed or stored again.
- A file modified in the seconds before the scan (here: an mtime in the future) is never
  trusted by its stat.
- Articles are committed in batches; an article the store refuses fails alone, and a process
  that dies mid-run loses at most the batch in flight, which the next run ingests.

On SQLite and PostgreSQL (``PUBLISHER_TEST_POSTGRES_URL``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from publisher.ingest import IngestResult, ingest
from publisher.store import Store
from tests.conftest import NOW, REPO, Project

LATER = NOW + timedelta(hours=5)
MUCH_LATER = NOW + timedelta(days=3)
# Fixed file times: long before any run of these tests, and long after.
OLD = int(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()) * 10**9
OLDER = OLD - 86_400 * 10**9
FUTURE = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp()) * 10**9


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, project: Project) -> Iterator[Store]:
    url = project.config().store_url if request.param == "sqlite" else request.getfixturevalue("pg_url")
    with closing(Store.open(url)) as opened:
        yield opened


def _ingest(project: Project, store: Store, now: datetime = NOW, batch: int = 200) -> IngestResult:
    return ingest(store, [project.articles], articles_dir=project.articles, tz=ZoneInfo("UTC"), now=now, batch=batch)


def _write(path: Path, content: str, mtime_ns: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))


def _article(project: Project, name: str, text: str, mtime_ns: int = OLD) -> Path:
    path = project.articles / name
    _write(path, text, mtime_ns)
    return path


def _only(result: IngestResult, **expected: list[str]) -> None:
    """The result's lists, leaving out the sample article that every project holds."""
    got = {status: [k for k in getattr(result, status) if not k.startswith("000_")] for status in expected}
    assert got == expected, result.errors


# -- the unchanged check -----------------------------------------------------------------------


def test_a_touched_file_with_the_same_bytes_is_unchanged_and_stored_once(project: Project, store: Store) -> None:
    path = _article(project, "harbour.txt", "Harbour Reopens\n\nThe harbour reopened on Monday.\n")
    _only(_ingest(project, store), new=["harbour"])
    before = store.article("harbour")

    os.utime(path, ns=(OLD + 10**9, OLD + 10**9))  # touch: new mtime, same bytes
    again = _ingest(project, store, LATER)

    _only(again, new=[], updated=[], unchanged=["harbour"])
    assert again.errors == []
    assert store.article("harbour") == before  # same updated time: nothing was stored again
    assert store.source_versions("harbour") == [path.read_bytes()]


def test_an_edit_that_keeps_size_and_mtime_is_trusted_as_unchanged_until_the_mtime_moves(
    project: Project, store: Store
) -> None:
    """rsync and make semantics, as the README says: same path, size and mtime is unchanged."""
    path = _article(project, "bridge.txt", "Bridge Opens\n\nThe bridge opened today.\n")
    _ingest(project, store)

    _write(path, "Bridge Shuts\n\nThe bridge closed today.\n", OLD)  # same length, mtime set back
    trusted = _ingest(project, store, LATER)

    _only(trusted, unchanged=["bridge"], updated=[])
    article = store.article("bridge")
    assert article is not None and article.title == "Bridge Opens"

    os.utime(path, ns=(OLDER, OLDER))  # any other mtime (even an older one): read again
    seen = _ingest(project, store, MUCH_LATER)

    _only(seen, updated=["bridge"], unchanged=[])
    article = store.article("bridge")
    assert article is not None and (article.title, article.updated) == ("Bridge Shuts", MUCH_LATER)


def test_a_touched_file_is_then_known_by_its_new_stat(project: Project, store: Store) -> None:
    path = _article(project, "ferry.txt", "Ferry Sails\n\nThe ferry sails at nine.\n")
    _ingest(project, store)
    os.utime(path, ns=(OLDER, OLDER))
    _ingest(project, store, LATER)  # read, same bytes: the new stat is recorded

    _write(path, "Ferry Waits\n\nThe ferry waits at nine.\n", OLDER)  # same size, the recorded mtime
    result = _ingest(project, store, MUCH_LATER)

    _only(result, unchanged=["ferry"])
    article = store.article("ferry")
    assert article is not None and article.title == "Ferry Sails"


def test_a_file_modified_around_the_scan_is_not_trusted_by_its_stat(project: Project, store: Store) -> None:
    """Its mtime may not move with an edit in the same clock tick (git's "racily clean")."""
    path = _article(project, "tide.txt", "Tide Turns\n\nThe tide turned early.\n", FUTURE)
    _ingest(project, store)

    _write(path, "Tide Rises\n\nThe tide turned early.\n", FUTURE)  # same size and mtime
    result = _ingest(project, store, LATER)

    _only(result, updated=["tide"])
    article = store.article("tide")
    assert article is not None and article.title == "Tide Rises"


def test_the_same_file_named_by_another_path_is_read_and_found_unchanged(project: Project, store: Store) -> None:
    path = _article(project, "notes/quay.md", "# Quay\n\nThe quay is open.\n")
    _ingest(project, store)
    path.write_text("# Quay\n\nThe quay is shut.\n", encoding="utf-8")  # same size
    os.utime(path, ns=(OLD, OLD))
    linked = project.root / "elsewhere"
    linked.symlink_to(project.articles, target_is_directory=True)

    result = ingest(store, [linked / "notes"], articles_dir=project.articles, tz=ZoneInfo("UTC"), now=LATER)

    assert (result.updated, result.errors) == (["notes/quay"], [])  # another path: the stat is not used


def test_keys_are_paths_under_the_articles_folder_however_it_is_reached(project: Project, store: Store) -> None:
    _article(project, "notes/quay.md", "# Quay\n\nThe quay is open.\n")
    alias = project.root / "alias"
    alias.symlink_to(project.articles, target_is_directory=True)
    everything = ["000_b518ed41a9e9a454", "notes/quay"]

    for paths, keys in [
        ([project.root], everything),  # a folder above it (the symlinked alias is not entered)
        ([alias], everything),
        ([alias / "notes"], ["notes/quay"]),
        ([alias / "notes" / "quay.md"], ["notes/quay"]),
    ]:
        result = ingest(store, paths, articles_dir=project.articles, tz=ZoneInfo("UTC"), now=NOW)
        assert (sorted(result.new + result.unchanged), result.errors) == (keys, []), paths
    assert store.article_count() == 2


# -- batches -----------------------------------------------------------------------------------


def _reject_key(store: Store, key: str) -> None:
    """Make the database refuse to insert the article ``key`` (as a constraint or a bug would)."""
    with store.transaction() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(
                text(
                    f"CREATE TRIGGER reject BEFORE INSERT ON articles WHEN NEW.key = '{key}' "
                    "BEGIN SELECT RAISE(ABORT, 'rejected by test'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION reject() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    f"IF NEW.key = '{key}' THEN RAISE EXCEPTION 'rejected by test'; END IF; RETURN NEW; END $$"
                )
            )
            conn.execute(text("CREATE TRIGGER reject BEFORE INSERT ON articles FOR EACH ROW EXECUTE FUNCTION reject()"))


def _allow_all(store: Store) -> None:
    with store.transaction() as conn:
        conn.execute(text("DROP TRIGGER reject" + (" ON articles" if conn.dialect.name == "postgresql" else "")))


def _stories(project: Project, count: int) -> list[str]:
    for n in range(count):
        _article(project, f"s{n:02}.txt", f"Story {n}\n\nThe text of story number {n}.\n")
    return [f"s{n:02}" for n in range(count)]


def test_an_article_the_store_refuses_fails_alone_and_comes_in_on_the_next_run(project: Project, store: Store) -> None:
    keys = _stories(project, 7)
    _reject_key(store, "s03")

    result = _ingest(project, store, batch=2)

    _only(result, new=[k for k in keys if k != "s03"])
    [error] = result.errors
    assert error.path == str(project.articles / "s03.txt")
    assert "rejected by test" in str(error)
    assert store.article("s03") is None

    _allow_all(store)
    again = _ingest(project, store, LATER, batch=2)

    _only(again, new=["s03"], unchanged=[k for k in keys if k != "s03"])
    assert again.errors == []
    assert {k: len(store.source_versions(k)) for k in keys} == dict.fromkeys(keys, 1)


def test_new_articles_in_one_batch_get_distinct_slugs_in_file_order(project: Project, store: Store) -> None:
    _article(project, "a.txt", "Same Title\n\nText.\n")
    _article(project, "b.md", "# Same Title\n\nText.\n")
    _article(project, "c.html", "<html><body><h1>Same Title</h1><p>Text.</p></body></html>")
    _article(project, "d.md", "---\ntitle: Other\nslug: same-title\n---\nText.\n")

    assert _ingest(project, store).errors == []

    stored = {key: store.article(key) for key in ("a", "b", "c", "d")}
    slugs = {key: article.slug for key, article in stored.items() if article is not None}
    assert slugs == {"a": "same-title", "b": "same-title-2", "c": "same-title-3", "d": "same-title-4"}


_CRASHING_INGEST = """
import os, sys
from pathlib import Path
from zoneinfo import ZoneInfo
from datetime import datetime
import publisher.ingest as ingest_module
from publisher.store import Store

real_read = ingest_module.read

def read(path, raw, tz):
    if path.stem == sys.argv[3]:
        os._exit(9)  # the process dies here: no cleanup, no commit
    return real_read(path, raw, tz)

ingest_module.read = read
folder = Path(sys.argv[2])
ingest_module.ingest(Store.open(sys.argv[1]), [folder], articles_dir=folder, tz=ZoneInfo("UTC"),
                     now=datetime.fromisoformat(sys.argv[4]), batch=3)
"""


def test_a_process_that_dies_mid_run_loses_only_the_batch_in_flight(project: Project, store: Store) -> None:
    keys = _stories(project, 10)
    (project.articles / "000_b518ed41a9e9a454.txt").unlink()

    died = subprocess.run(
        [sys.executable, "-c", _CRASHING_INGEST, store.url, str(project.articles), "s07", NOW.isoformat()],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
    )

    assert died.returncode == 9, died.stderr
    stored = [k for k in keys if store.article(k) is not None]
    assert stored == keys[:6]  # two batches of three committed; s06 was in the batch in flight
    result = _ingest(project, store, LATER)
    assert (result.new, result.unchanged, result.errors) == (keys[6:], keys[:6], [])
