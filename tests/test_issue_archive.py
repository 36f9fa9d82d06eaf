"""The issue archive (publisher.archive): every sent digest as a web page, an index and an Atom feed.

Driven by the real CLI (outbox and webhook against a server on 127.0.0.1), read back with lxml
and feedparser, and served by the real `publisher serve`.
"""

from __future__ import annotations

import email
import email.policy
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import feedparser
import httpx
import lxml.etree
import lxml.html
import pytest

from publisher import archive, clock
from tests.conftest import NOW, SAMPLE_TITLE, Project, child_process, markdown_article, readline_within
from tests.delivery_helpers import UNSUBSCRIBE_SECRET, last_digest, subscribe, tokens
from tests.endpoint import Endpoint

READERS = ["ada@example.org", "grace+news@example.net"]
ENV = {"PUBLISHER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET}


@pytest.fixture(autouse=True)
def _clock(at_now: object) -> None:
    """Every command reads the one clock (NOW)."""


def _files(project: Project) -> dict[str, bytes]:
    root = project.root / "feeds"
    found = {p.relative_to(root).as_posix(): p.read_bytes() for p in (root / "issues").rglob("*") if p.is_file()}
    if (root / archive.FEED).exists():
        found[archive.FEED] = (root / archive.FEED).read_bytes()
    return found


def _run(project: Project) -> None:
    result = project.cli("run", env=ENV)
    assert result.exit_code == 0, result.output


def test_a_sent_digest_becomes_a_page_an_index_entry_and_a_feed_entry(project: Project) -> None:
    subscribe(project, READERS)

    _run(project)

    sent = last_digest(project)
    assert sent.state == "sent"
    files = _files(project)
    assert sorted(files) == sorted([archive.FEED, "issues/index.html", f"issues/{sent.id}.html"])
    page = lxml.html.document_fromstring(files[f"issues/{sent.id}.html"])
    assert page.findtext(".//title") == sent.subject
    assert SAMPLE_TITLE in page.text_content()
    assert page.find(".//head/meta").get("charset") == "utf-8"  # first, where a browser looks for it
    assert page.xpath("//link[@rel='canonical']/@href") == [f"https://news.example.org/feeds/issues/{sent.id}.html"]
    assert not page.find_class("preheader") and not page.find_class("web-hide")
    index = lxml.html.document_fromstring(files["issues/index.html"])
    assert [(a.get("href"), a.text) for a in index.iter("a") if a.get("href") == f"{sent.id}.html"] == [
        (f"{sent.id}.html", sent.subject)
    ]
    lxml.etree.fromstring(files[archive.FEED])  # well-formed XML
    feed = feedparser.parse(files[archive.FEED])
    assert not feed.bozo, feed.bozo_exception
    assert feed.feed.title == "Example News: issues"
    [entry] = feed.entries
    assert entry.id == f"tag:news.example.org,2026-11-24:issue/{sent.id}"
    assert entry.link == f"https://news.example.org/feeds/issues/{sent.id}.html"
    assert entry.title == sent.subject
    assert SAMPLE_TITLE in entry.content[0].value and "The Kremlin has issued" in entry.content[0].value


def test_every_email_links_to_its_web_copy(project: Project) -> None:
    subscribe(project, READERS)

    _run(project)

    sent = last_digest(project)
    url = f"https://news.example.org/feeds/issues/{sent.id}.html"
    for copy in sorted(project.outbox.rglob("*.eml")):
        message = email.message_from_bytes(copy.read_bytes(), policy=email.policy.default)
        html, text = message.get_body(("html",)), message.get_body(("plain",))
        assert html is not None and text is not None
        assert f'href="{url}"' in html.get_content() and url in text.get_content()


def test_no_page_holds_a_readers_address_or_token(project: Project) -> None:
    subscribe(project, READERS)

    _run(project)

    secrets = [*READERS, *tokens(project), UNSUBSCRIBE_SECRET, "unsubscribe.invalid", "?s=", "unsubscribe"]
    files = _files(project)
    assert files
    for name, data in files.items():
        for secret in secrets:
            assert secret.encode() not in data, f"{secret!r} in {name}"
            assert secret.lower().encode() not in data.lower(), f"{secret!r} in {name}"


def test_a_failed_send_publishes_no_page_and_the_retry_that_succeeds_does(project: Project, endpoint: Endpoint) -> None:
    project.configure(mailer={"provider": "webhook", "url": endpoint.url, "retries": 0, "timeout": 5})
    endpoint.handler = lambda request: (503, {"error": "down"}, {})

    project.cli("run", env=ENV)

    assert last_digest(project).state != "sent"
    assert _files(project) == {}

    endpoint.handler = lambda request: (200, {"id": "1"}, {})
    _run(project)

    sent = last_digest(project)
    assert sent.state == "sent"
    assert f"issues/{sent.id}.html" in _files(project)


def test_a_rerun_rewrites_nothing_and_a_new_issue_leaves_the_old_page_alone(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(project)
    first = last_digest(project)
    root = project.root / "feeds"
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}

    _run(project)  # nothing new: no digest, nothing written
    with closing(project.open_store()) as store:
        archive.publish(project.config(), store)  # and publishing again changes no byte

    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before

    project.add_article("second.md", markdown_article("A second story", "2026-11-24 06:00"))
    monkeypatch.setenv(clock.ENV, (NOW + timedelta(days=1)).isoformat())  # the next day's digest
    _run(project)

    second = last_digest(project)
    assert second.id != first.id
    assert (root / f"issues/{first.id}.html").stat().st_mtime_ns == before[root / f"issues/{first.id}.html"]
    feed = feedparser.parse((root / archive.FEED).read_bytes())
    assert [e.link.rsplit("/", 1)[1] for e in feed.entries] == [f"{second.id}.html", f"{first.id}.html"]


def test_no_archive_when_it_is_switched_off(project: Project) -> None:
    project.configure(digest={"archive": False})

    _run(project)

    assert _files(project) == {}
    message = email.message_from_bytes(project.outbox_files()[0].read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",))
    assert text is not None and "View in your browser" not in text.get_content()


@pytest.fixture
def served(project: Project, tmp_path: Path) -> Iterator[str]:
    _run(project)
    command = [sys.executable, "-m", "publisher", "--config", str(project.config_path), "serve", "--port", "0"]
    with child_process(command, cwd=project.root, stderr=tmp_path / "serve-stderr.log") as process:
        assert process.stdout is not None
        line = readline_within(process.stdout, 60, "`publisher serve`")
        assert line.startswith("serve: http://127.0.0.1:"), line
        yield line.split()[1]


def test_publisher_serve_serves_the_pages_and_the_feed(project: Project, served: str) -> None:
    sent = last_digest(project)

    with httpx.Client(timeout=30) as client:
        page = client.get(f"{served}issues/{sent.id}.html")
        index = client.get(f"{served}issues/index.html")
        feed = client.get(f"{served}{archive.FEED}")

    assert page.status_code == index.status_code == feed.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert SAMPLE_TITLE in page.text
    assert f"{sent.id}.html" in index.text
    assert not feedparser.parse(feed.content).bozo
