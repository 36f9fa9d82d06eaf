"""One small sample file per case, each picked up as a test of its own (feedparser's model).

Good cases: ``tests/cases/ingest/<name>.<txt|md|html|htm>`` with ``<name>.expected.json``::

    {"title": "...", "paragraphs": ["...", ...],      # exact Body.paragraphs
     "author": ..., "tags": [...],                     # optional; default none / []
     "published": "2024-03-05T09:30:00+01:00",         # optional; default: when first seen
     "summary": ..., "slug": ...,                      # optional
     "absent": [...],                                  # must not be in the body (any case)
     "present": [...]}                                 # in the body HTML once, as written

Bad cases: ``tests/cases/bad/<name>.<ext>`` with ``<name>.error.txt`` holding a piece of the
one-line error ``publisher ingest`` must print for it.

Every case goes through the real path: the file is copied into a project's articles folder and
ingested into the project's SQLite store at ``NOW``; naive dates are read in Europe/Berlin,
not UTC, so a date read in the wrong zone shows.
"""

from __future__ import annotations

import json
import re
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from publisher.ingest import ingest
from tests.conftest import NOW, SAMPLE, SAMPLE_TITLE, Project

CASES = Path(__file__).parent / "cases"
TZ = "Europe/Berlin"
SIDECARS = (".expected.json", ".error.txt")
# XML 1.0 forbids these (tab and newline aside); C1 controls and U+FFFD mean a wrong decoding.
BAD_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")


def _cases(folder: str) -> list[Path]:
    return sorted(
        path
        for path in (CASES / folder).iterdir()
        if path.is_file() and not path.name.startswith(".") and not path.name.endswith(SIDECARS)
    )


def _sidecar(case: Path, suffix: str) -> Path:
    return case.with_name(case.stem + suffix)


GOOD = _cases("ingest")
BAD = _cases("bad")


def test_the_case_folders_are_complete() -> None:
    assert len(GOOD) >= 15 and len(BAD) >= 10
    missing = [case.name for case in GOOD if not _sidecar(case, ".expected.json").is_file()]
    missing += [case.name for case in BAD if not _sidecar(case, ".error.txt").is_file()]
    assert missing == []
    orphans = {p.name for folder in ("ingest", "bad") for p in (CASES / folder).iterdir() if p.name.endswith(SIDECARS)}
    orphans -= {_sidecar(case, ".expected.json").name for case in GOOD}
    orphans -= {_sidecar(case, ".error.txt").name for case in BAD}
    assert orphans == set()


@pytest.mark.parametrize("case", GOOD, ids=lambda path: path.name)
def test_good_case(project: Project, case: Path) -> None:
    expected: dict[str, Any] = json.loads(_sidecar(case, ".expected.json").read_text(encoding="utf-8"))
    path = project.add_article(case.name, case.read_bytes())

    with closing(project.open_store()) as store:
        result = ingest(store, [path], articles_dir=project.articles, tz=ZoneInfo(TZ), now=NOW)
        assert result.errors == []
        assert result.new == [case.stem]
        article = store.article(case.stem)
    assert article is not None

    assert article.title == expected["title"]
    assert article.body_text.split("\n\n") == expected["paragraphs"]
    assert article.author == expected.get("author")
    assert article.tags == expected.get("tags", [])
    published = datetime.fromisoformat(expected["published"]) if "published" in expected else NOW
    assert article.published == published
    if "summary" in expected:
        assert article.summary == expected["summary"]
    if "slug" in expected:
        assert article.slug == expected["slug"]

    body = f"{article.body_html}\n{article.body_text}".casefold()
    for text in expected.get("absent", []):
        assert text.casefold() not in body, f"{text!r} should not be in the body"
    for markup in expected.get("present", []):
        assert article.body_html.count(markup) == 1, f"{markup!r} should be in the body HTML once"
    for stored in (article.title, article.summary, article.body_html, article.body_text):
        assert BAD_CHARACTERS.findall(stored) == []


@pytest.mark.parametrize("case", BAD, ids=lambda path: path.name)
def test_bad_case(project: Project, case: Path) -> None:
    """One clear line naming the file; the good file of the same call is still stored; exit 1."""
    reason = _sidecar(case, ".error.txt").read_text(encoding="utf-8").strip()
    bad = project.add_article(case.name, case.read_bytes())
    good = project.articles / SAMPLE.name

    result = project.cli("ingest", str(bad), str(good))

    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"publisher: error: {bad}: ")
    assert reason in line
    assert "1 new" in result.stdout and "1 failed" in result.stdout
    with closing(project.open_store()) as store:
        assert store.article_count() == 1
        sample = store.article(SAMPLE.stem)
        assert sample is not None and sample.title == SAMPLE_TITLE
