"""The feeds' pages in headless Chromium (issue 12): the static index.html that `publisher
serve` answers ``/`` with (no XSLT), a tag feed's page, and the RSS page feed.xsl builds,
which shows a summary's markup characters as the Atom page does, not escaped twice.
Screenshots are kept under the test's tmp folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_TITLE, Project
from tests.test_browser import _browse, served

__all__ = ["served"]  # the fixture, from the browser tests: `publisher serve` on a free port

MARKUP = "Use <em>markup</em> & entities"


@pytest.fixture
def project_with_markup(project: Project) -> Project:
    project.add_article(
        "markup.md",
        "---\ntitle: Markup in a summary\ndate: 2026-11-20T08:00:00Z\ntags: [HTML & CSS]\n---\n"
        "Use &lt;em&gt;markup&lt;/em&gt; &amp; entities.\n",
    )
    return project


@pytest.mark.parametrize("path", ["", "feeds/index.html"])
def test_the_feeds_page_is_a_static_page_with_subscribe_links(
    project_with_markup: Project, served: str, tmp_path: Path, path: str
) -> None:
    url = served + path
    dom = _browse(url, tmp_path / "profile-dom", "--dump-dom").stdout
    shot = tmp_path / "index.png"
    _browse(url, tmp_path / "profile-shot", "--window-size=900,900", f"--screenshot={shot}")

    assert "This is a web feed." in dom
    assert SAMPLE_TITLE in dom
    assert 'rel="alternate" type="application/atom+xml"' in dom
    assert 'href="https://news.example.org/feeds/rss.xml"' in dom
    assert "&lt;em&gt;markup&lt;/em&gt;" in dom  # the article's text, as text
    assert 'href="tags/' in dom  # the tag feeds, each with its own page
    assert shot.stat().st_size > 10_000, f"no real screenshot at {shot}"


def test_a_tag_feed_has_a_page_of_its_own(project_with_markup: Project, served: str, tmp_path: Path) -> None:
    tags = project_with_markup.feed.parent / "tags"
    [page] = [p for p in tags.glob("*.html") if "html" in p.stem]
    dom = _browse(f"{served}tags/{page.name}", tmp_path / "profile-dom", "--dump-dom").stdout
    assert "Markup in a summary" in dom and SAMPLE_TITLE not in dom
    assert f'href="https://news.example.org/feeds/tags/{page.stem}.xml"' in dom
    assert 'href="../index.html"' in dom  # back to every feed


@pytest.mark.parametrize("document", ["atom.xml", "rss.xml"])
def test_the_xsl_page_shows_a_summary_s_markup_characters_once(
    project_with_markup: Project, served: str, tmp_path: Path, document: str
) -> None:
    dom = _browse(served + document, tmp_path / "profile-dom", "--dump-dom").stdout
    shot = tmp_path / f"{document}.png"
    _browse(served + document, tmp_path / "profile-shot", "--window-size=900,900", f"--screenshot={shot}")

    assert "<html" in dom and "This is a web feed." in dom, dom[:500]
    summaries = re.findall(r'<p class="summary">(.*?)</p>', dom, re.DOTALL)
    markup = [s for s in summaries if "markup" in s]
    assert markup == ["Use &lt;em&gt;markup&lt;/em&gt; &amp; entities."], summaries
    assert "All feeds" in dom
    assert shot.stat().st_size > 10_000, f"no real screenshot at {shot}"
