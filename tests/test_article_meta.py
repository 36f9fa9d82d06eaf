"""Front matter metadata beyond the columns: language, direction, lead image, audio, canonical.

Stored with the article (ArticleMeta) and read back as the feeds and the digest see it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from publisher.feed.model import own_date
from publisher.ingest import ingest
from publisher.store import Store

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def _ingest(tmp_path: Path, front: str) -> tuple[Store, list[str]]:
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "a.md").write_text(f"---\ntitle: A\n{front}---\nBody text of the article.\n", encoding="utf-8")
    store = Store.open(f"sqlite:///{tmp_path / 'p.db'}")
    result = ingest(store, [folder], articles_dir=folder, tz=ZoneInfo("UTC"), now=NOW)
    return store, [str(error) for error in result.errors]


def test_front_matter_metadata_is_stored(tmp_path: Path) -> None:
    store, failed = _ingest(
        tmp_path,
        "lang: ar\ndir: RTL\nimage: {url: /media/lead.jpg, alt: A lead}\n"
        "audio: {url: 'https://cdn.example.org/ep1.mp3', length: 1234, duration: '00:31:02'}\n"
        "canonical: https://blog.example.org/a\n",
    )
    assert failed == []
    (article,) = store.newest_articles()
    assert article.meta == {
        "language": "ar",
        "direction": "rtl",
        "image": "/media/lead.jpg",
        "image_alt": "A lead",
        "audio": {
            "url": "https://cdn.example.org/ep1.mp3",
            "type": "audio/mpeg",
            "length": 1234,
            "duration": "00:31:02",
        },
        "canonical": "https://blog.example.org/a",
    }


@pytest.mark.parametrize("key", ["modified", "lastmod", "updated"])
def test_front_matter_modified_date_is_the_feed_entrys_updated(tmp_path: Path, key: str) -> None:
    store, failed = _ingest(tmp_path, f"date: 2024-03-01\n{key}: 2024-05-02T10:30:00+02:00\n")
    assert failed == []
    (article,) = store.newest_articles()
    assert article.meta == {"modified": "2024-05-02T08:30:00+00:00"}
    assert own_date(article) == datetime(2024, 5, 2, 8, 30, tzinfo=UTC)


def test_article_without_metadata_has_an_empty_mapping(tmp_path: Path) -> None:
    store, failed = _ingest(tmp_path, "")
    assert failed == []
    assert store.newest_articles()[0].meta == {}


@pytest.mark.parametrize(
    ("front", "reason"),
    [
        ("image: 'javascript:alert(1)'\n", "image must be an http(s) URL"),
        ("lang: 'english please'\n", "lang must be a language tag"),
        ("dir: up\n", "dir must be ltr or rtl"),
        ("modified: soon\n", "modified is not a date"),
        ("audio: {length: 3}\n", "audio needs a url"),
        ("audio: {url: /a.mp3, length: many}\n", "audio length must be a number of bytes"),
    ],
)
def test_bad_metadata_names_the_key(tmp_path: Path, front: str, reason: str) -> None:
    store, failed = _ingest(tmp_path, front)
    assert len(failed) == 1 and reason in failed[0] and "a.md" in failed[0]
    assert store.newest_articles() == []
