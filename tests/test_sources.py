"""Remote feed sources ([[sources]]): a real feed server on 127.0.0.1 whose feed changes
between runs, a real SQLite store, and each run's articles checked exactly."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.utils import format_datetime
from html import escape
from typing import Any

import pytest

from publisher.config import Config
from publisher.sources import SourcesResult, fetch_sources
from publisher.store import Store
from publisher.store import remote as remote_state
from tests.conftest import NOW, Project
from tests.feedserver import Doc, FeedServer, Reply, feed_server

DAY = timedelta(days=1)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with feed_server() as running:
        yield running


def with_sources(project: Project, *sources: dict[str, Any]) -> Config:
    project.settings["sources"] = [{"interval": "10m", **source} for source in sources]
    return project.configure()


def rss(server: FeedServer, items: list[dict[str, Any]], *, version: str = "2.0") -> bytes:
    """An RSS document; each item: title, link (a path), body, and optionally guid, date, content."""
    entries = []
    for item in items:
        parts = [f"<title>{escape(item['title'])}</title>", f"<link>{server.url(item['link'])}</link>"]
        if "guid" in item:
            parts.append(f'<guid isPermaLink="false">{item["guid"]}</guid>')
        if "date" in item:
            parts.append(f"<pubDate>{format_datetime(item['date'])}</pubDate>")
        parts.append(f"<description>{escape(item['body'])}</description>")
        if "content" in item:
            parts.append(f"<content:encoded><![CDATA[{item['content']}]]></content:encoded>")
        entries.append(f"<item>{''.join(parts)}</item>")
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<rss version="{version}" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>Blog</title><link>{server.url('/')}</link><description>A blog</description>"
        f"{''.join(entries)}</channel></rss>"
    ).encode()


def articles(store: Store) -> list[tuple[str, str, str]]:
    """Every article from a source: (title, body text, published), newest first."""
    return [
        (a.title, a.body_text, a.published.isoformat()) for a in store.newest_articles() if a.key.startswith("feed:")
    ]


def titles(store: Store, keys: list[str]) -> list[str]:
    found = [store.article(key) for key in keys]
    return sorted(a.title for a in found if a is not None)


def run(config: Config, store: Store, when: datetime) -> SourcesResult:
    return fetch_sources(config, store, when)


ITEMS = {
    "a": {"guid": "id-a", "title": "Alpha", "link": "/a", "body": "Alpha text.", "date": NOW - DAY},
    "b": {"guid": "id-b", "title": "Bravo", "link": "/b", "body": "Bravo text.", "date": NOW - 2 * DAY},
    "c": {"guid": "id-c", "title": "Charlie", "link": "/c", "body": "Charlie text.", "date": NOW - 30 * DAY},
    "d": {"guid": "id-d", "title": "Delta", "link": "/d", "body": "Delta has no date."},
}


def test_a_feed_that_evolves_over_runs(project: Project, server: FeedServer) -> None:
    doc = Doc(rss(server, [ITEMS["a"], ITEMS["b"], ITEMS["c"], ITEMS["d"]]))
    server.routes["/feed.xml"] = doc
    config = with_sources(project, {"name": "blog", "url": server.url("/feed.xml"), "backlog": "7d"})
    store = project.open_store()

    # 1. First fetch: only the items newer than the backlog (Charlie is 30 days old, Delta undated).
    first = run(config, store, NOW)
    assert titles(store, first.new) == ["Alpha", "Bravo"] and not first.updated and not first.errors
    assert articles(store) == [
        ("Alpha", "Alpha text.", (NOW - DAY).isoformat()),
        ("Bravo", "Bravo text.", (NOW - 2 * DAY).isoformat()),
    ]
    assert "publisher/" in server.seen[-1][1]["user-agent"]

    # 2. Nothing changed: a conditional GET answered 304, nothing stored.
    second = run(config, store, NOW + timedelta(hours=1))
    sent = server.seen[-1][1]
    assert sent["if-none-match"].startswith('"') and sent["if-modified-since"] == doc.last_modified
    assert (second.new, second.updated, second.unchanged) == ([], [], [])
    assert len(articles(store)) == 2

    # 3. A new item, an edited one, all reordered: one new, one updated, the old ones still not taken.
    edited = {**ITEMS["a"], "body": "Alpha text, corrected."}
    echo = {"guid": "id-e", "title": "Echo", "link": "/e", "body": "Echo text.", "date": NOW + timedelta(minutes=30)}
    doc.body = rss(server, [ITEMS["d"], ITEMS["c"], ITEMS["b"], edited, echo])
    third = run(config, store, NOW + timedelta(hours=2))
    assert titles(store, third.new) == ["Echo"] and titles(store, third.updated) == ["Alpha"]
    assert titles(store, third.unchanged) == ["Bravo"]
    assert articles(store) == [
        ("Echo", "Echo text.", (NOW + timedelta(minutes=30)).isoformat()),
        ("Alpha", "Alpha text, corrected.", (NOW - DAY).isoformat()),
        ("Bravo", "Bravo text.", (NOW - 2 * DAY).isoformat()),
    ]
    alpha = store.article(third.updated[0])
    assert alpha is not None and alpha.first_seen == NOW
    versions = [json.loads(raw)["item"]["summary_html"] for raw in store.source_versions(alpha.key)]
    assert versions == ["Alpha text.", "Alpha text, corrected."]

    # 4. Every GUID rewritten at once (a new blog engine): matched by link, nothing new.
    renamed = [{**item, "guid": "new-" + item["guid"]} for item in (edited, ITEMS["b"], echo, ITEMS["c"])]
    doc.body = rss(server, renamed)
    fourth = run(config, store, NOW + timedelta(hours=3))
    assert (fourth.new, fourth.updated) == ([], []) and titles(store, fourth.unchanged) == ["Alpha", "Bravo", "Echo"]

    # 5. GUIDs and links rewritten (a domain move): matched by content, their links updated (no new
    # article, so no email); a truly new item still comes in.
    moved = [{**item, "guid": "v3-" + item["guid"], "link": "/posts" + item["link"]} for item in renamed]
    foxtrot = {"guid": "id-f", "title": "Foxtrot", "link": "/f", "body": "Foxtrot text.", "date": NOW}
    doc.body = rss(server, [foxtrot, *moved])
    fifth = run(config, store, NOW + timedelta(hours=4))
    assert titles(store, fifth.new) == ["Foxtrot"] and titles(store, fifth.updated) == ["Alpha", "Bravo", "Echo"]
    echo_now = store.article(fifth.updated[0])
    assert echo_now is not None and echo_now.meta.get("canonical", "").startswith(server.url("/posts/"))
    assert [title for title, _, _ in articles(store)] == ["Echo", "Foxtrot", "Alpha", "Bravo"]
    (source,) = remote_state.sources(store)
    assert source.items == 4 and source.failures == 0 and source.last_success == NOW + timedelta(hours=4)


def test_etag_without_last_modified(project: Project, server: FeedServer) -> None:
    server.routes["/feed.xml"] = Doc(rss(server, [ITEMS["a"]]), last_modified=None)
    config = with_sources(project, {"name": "blog", "url": server.url("/feed.xml")})
    store = project.open_store()
    assert len(run(config, store, NOW).new) == 1
    assert run(config, store, NOW + timedelta(hours=1)).fetched == ["blog"]
    asked = server.seen[-1][1]
    assert "if-none-match" in asked and "if-modified-since" not in asked
    assert remote_state.sources(store)[0].last_modified is None


def test_gzip(project: Project, server: FeedServer) -> None:
    server.routes["/feed.xml"] = Doc(rss(server, [ITEMS["a"], ITEMS["b"]]), gzip=True)
    config = with_sources(project, {"name": "blog", "url": server.url("/feed.xml")})
    store = project.open_store()
    assert titles(store, run(config, store, NOW).new) == ["Alpha", "Bravo"]
    assert "gzip" in server.seen[-1][1]["accept-encoding"]


@pytest.mark.parametrize(("status", "remembered"), [(301, "/feed.xml"), (308, "/feed.xml"), (302, "/old.xml")])
def test_redirects(project: Project, server: FeedServer, status: int, remembered: str) -> None:
    """A permanent redirect moves the source; a temporary one does not."""
    server.routes["/feed.xml"] = Doc(rss(server, [ITEMS["a"]]))
    server.redirect("/old.xml", status, "/feed.xml")
    config = with_sources(project, {"name": "blog", "url": server.url("/old.xml")})
    store = project.open_store()
    assert titles(store, run(config, store, NOW).new) == ["Alpha"]
    assert remote_state.sources(store)[0].url == server.url(remembered)
    server.seen.clear()
    assert run(config, store, NOW + timedelta(hours=1)).errors == []
    assert server.paths()[0] == remembered


def test_a_failing_source_is_retried_and_reported_only_after_alert_after(project: Project, server: FeedServer) -> None:
    server.routes["/good.xml"] = Doc(rss(server, [ITEMS["a"]]))
    broken: list[Reply] = [Reply(500, b"oops")]
    server.routes["/bad.xml"] = lambda headers: broken[0]
    config = with_sources(
        project,
        {"name": "bad", "url": server.url("/bad.xml"), "alert_after": "2h"},
        {"name": "good", "url": server.url("/good.xml")},
    )
    store = project.open_store()
    first = run(config, store, NOW)
    assert titles(store, first.new) == ["Alpha"]  # the other source goes on
    assert first.errors == []
    (line,) = first.failing
    assert line.startswith("source bad: HTTP 500 Internal Server Error from http://127.0.0.1:")
    assert "next try 2026-11-24 06:31 UTC" in line

    server.seen.clear()
    assert run(config, store, NOW + timedelta(seconds=30)).errors == []  # not due: not asked
    assert "/bad.xml" not in server.paths()
    run(config, store, NOW + timedelta(minutes=1))  # backoff: 1 min, then 2
    assert remote_state.sources(store)[0].next_fetch == NOW + timedelta(minutes=3)

    late = run(config, store, NOW + timedelta(hours=2))
    (error,) = late.errors
    assert str(error).startswith("[[sources]] bad: failing for 2 h: HTTP 500 Internal Server Error from ")
    assert late.failing == []

    broken[0] = Reply(200, rss(server, [ITEMS["b"]]))  # it works again
    healed = run(config, store, NOW + timedelta(hours=3))
    assert healed.errors == [] and healed.failing == [] and healed.fetched == ["bad", "good"]
    assert titles(store, healed.new) == ["Bravo"]
    bad = remote_state.sources(store)[0]
    assert (bad.failures, bad.failing_since, bad.last_success) == (0, None, NOW + timedelta(hours=3))


def test_a_hang_past_the_timeout(project: Project, server: FeedServer) -> None:
    gate = threading.Event()
    server.routes["/feed.xml"] = lambda headers: Reply(200, rss(server, [ITEMS["a"]]), gate=gate)
    config = with_sources(project, {"name": "slow", "url": server.url("/feed.xml"), "timeout": 0.5})
    store = project.open_store()
    try:
        result = run(config, store, NOW)
    finally:
        gate.set()  # the server's handler goes on, to a client long gone
    (line,) = result.failing
    assert line.startswith("source slow: no answer within 0.5 s from http://127.0.0.1:")
    assert articles(store) == []


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(200, b"", cut_at=0), "peer closed connection without sending complete message body"),
        (Reply(200, b"<?xml version='1.0'?><rss version='2.0'><channel><title>x</title></channel"), "not well-formed"),
        (Reply(200, b"<html><body>Not a feed</body></html>", {"Content-Type": "text/html"}), "not an RSS, Atom"),
        (Reply(200, b'{"items": []}', {"Content-Type": "application/json"}), "JSON without a JSON Feed version"),
        (Reply(200, b"x" * 50_000_000), "50,000,000 bytes, over max_bytes (10,000,000)"),
        (Reply(200, endless=50_000_000), "over max_bytes (10,000,000 bytes); stopped reading"),
    ],
    ids=["truncated", "invalid-xml", "html", "json-not-a-feed", "50MB", "50MB-no-length"],
)
def test_a_broken_answer_fails_the_fetch_in_one_line(
    project: Project, server: FeedServer, reply: Reply, reason: str
) -> None:
    if reply.cut_at == 0:
        reply.body = rss(server, [ITEMS["a"], ITEMS["b"]])
        reply.cut_at = len(reply.body) // 2
    server.routes["/feed.xml"] = lambda headers: reply
    config = with_sources(project, {"name": "blog", "url": server.url("/feed.xml")})
    store = project.open_store()
    result = run(config, store, NOW)
    (line,) = result.failing
    assert line.startswith("source blog: ") and reason in line and "\n" not in line
    assert articles(store) == []
    assert remote_state.sources(store)[0].failures == 1
