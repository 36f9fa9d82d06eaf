"""Whole-file comparisons of what readers and subscribers receive (Pelican's model).

Inputs: the sample article plus tests/golden/articles/, ingested at a fixed time. Outputs are
compared byte for byte with tests/golden/; only the MIME boundary, which is random, is
normalized. After an intended change, rewrite them with ``pytest --regen-golden`` and review
the diff.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from publisher import digest
from publisher.feed import write_feeds
from publisher.ingest import ingest
from tests.conftest import NOW, Project
from tests.feedcheck import check_json_feed, check_rss

GOLDEN = Path(__file__).parent / "golden"


def _compare(request: pytest.FixtureRequest, name: str, actual: bytes) -> None:
    path = GOLDEN / name
    if request.config.getoption("--regen-golden"):
        path.write_bytes(actual)
        return
    assert path.exists(), f"{path} is missing; create it with pytest --regen-golden"
    assert actual.decode() == path.read_bytes().decode(), f"{name} differs; if intended, run pytest --regen-golden"


@pytest.fixture
def golden_project(project: Project) -> Project:
    for source in sorted((GOLDEN / "articles").iterdir()):
        shutil.copy(source, project.articles / source.name)
    store = project.open_store()
    result = ingest(
        store, [project.articles], articles_dir=project.articles, tz=project.config().site.timezone, now=NOW
    )
    assert not result.errors and len(result.new) == 3
    return project


def test_atom_feed_matches_golden_file(golden_project: Project, request: pytest.FixtureRequest) -> None:
    write_feeds(golden_project.config(), golden_project.open_store())

    _compare(request, "atom.xml", golden_project.feed.read_bytes())


def test_rss_feed_matches_golden_file(golden_project: Project, request: pytest.FixtureRequest) -> None:
    write_feeds(golden_project.config(), golden_project.open_store())

    data = (golden_project.root / "feeds" / "rss.xml").read_bytes()
    check_rss(data)
    _compare(request, "rss.xml", data)


def test_json_feed_matches_golden_file(golden_project: Project, request: pytest.FixtureRequest) -> None:
    write_feeds(golden_project.config(), golden_project.open_store())

    data = (golden_project.root / "feeds" / "feed.json").read_bytes()
    check_json_feed(data)
    _compare(request, "feed.json", data)


def test_digest_email_matches_golden_file(golden_project: Project, request: pytest.FixtureRequest) -> None:
    config = golden_project.config()
    store = golden_project.open_store()
    articles = digest.next_articles(config, store, NOW)

    rendered = digest.render(config, articles, digest_id="20261124-063000-golden", now=NOW)

    boundaries = set(re.findall(rb'boundary="([^"]+)"', rendered.message))
    assert len(boundaries) == 1
    message = rendered.message.replace(boundaries.pop(), b"BOUNDARY")
    _compare(request, "digest.eml", message)
    _compare(request, "digest.html", rendered.html.encode())
    _compare(request, "digest.txt", rendered.text.encode())
