"""The [feed] settings of issue 12, each refused in one line naming the key before any work."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Project
from tests.test_config import assert_refused, write_settings

CASES = [
    ({"content": "excerpt"}, "[feed] content", "expected one of full, summary"),
    ({"icon": "javascript:alert(1)"}, "[feed] icon", "expected an http(s) URL or a path on the site"),
    ({"logo": 'https://x.example/"a.png'}, "[feed] logo", "expected an http(s) URL"),
    ({"generator_uri": "not a url"}, "[feed] generator_uri", "expected an http(s):// URL"),
    ({"podcast": True, "podcast_email": "a@example.org"}, "[feed] podcast_category", "needs a category"),
    ({"podcast": True, "podcast_category": "News"}, "[feed] podcast_email", "needs the owner's email"),
    ({"podcast_category": "Gossip"}, "[feed] podcast_category", "not an Apple Podcasts category"),
    ({"podcast_email": "nobody"}, "[feed] podcast_email", "not an email address"),
    ({"rights": 2026}, "[feed] rights", "expected a string"),
]


@pytest.mark.parametrize(("feed", "key", "problem"), CASES)
def test_bad_feed_settings_are_refused_before_any_work(
    project: Project, feed: dict[str, Any], key: str, problem: str
) -> None:
    write_settings(project, {"feed": feed})
    assert_refused(project, ("run",), f"{project.config_path}: {key}", problem)


def test_good_feed_settings_load(project: Project) -> None:
    config = project.configure(
        feed={
            "content": "summary",
            "icon": "/favicon.png",
            "logo": "https://cdn.example.org/logo.png",
            "subtitle": "  News   and views ",
            "rights": "© 2026 Example News",
            "generator_uri": "https://example.org/publisher",
            "podcast": True,
            "podcast_category": "Health & Fitness",
            "podcast_email": "podcast@example.org",
        }
    )
    feed = config.feed
    assert feed.content == "summary" and feed.icon == "https://news.example.org/favicon.png"
    assert (feed.logo, feed.subtitle) == ("https://cdn.example.org/logo.png", "News and views")
    assert feed.podcast and feed.podcast_category == "Health & Fitness"
