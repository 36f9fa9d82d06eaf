"""Remote feed sources ([[sources]]): a real feed server on 127.0.0.1 whose feed changes
between runs, a real SQLite store, and each run's articles checked exactly."""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path
from typing import Any

import feedparser
import pytest
import tomli_w

from publisher.config import Config
from publisher.sources import SourcesResult, fetch_sources
from publisher.sources.fetch import Pacer
from publisher.store import Store
from publisher.store import remote as remote_state
from tests.conftest import NOW, Project, run_publisher
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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_feed_that_evolves_over_runs(
    project: Project, server: FeedServer, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "postgresql":
        project.configure(store={"url": request.getfixturevalue("pg_url")})
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
        (Reply(200, b"\0" * 50_000_000, gzip=True), "over max_bytes (10,000,000 bytes); stopped reading"),
    ],
    ids=["truncated", "invalid-xml", "html", "json-not-a-feed", "50MB", "50MB-no-length", "50MB-gzip-bomb"],
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


def test_a_json_feed(project: Project, server: FeedServer) -> None:
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Blog",
        "feed_url": server.url("/feed.json"),
        "authors": [{"name": "Ana"}],
        "items": [
            {
                "id": "1",
                "url": "/posts/one",
                "title": "One",
                "content_html": '<p>First <a href="two">post</a>.</p><script>alert(1)</script>',
                "date_published": "2026-11-23T10:00:00+01:00",
                "tags": ["news"],
            },
            {
                "id": 2,
                "url": "/posts/two",
                "content_text": "Para one.\n\nPara two.",
                "date_published": "2026-11-23T12:00:00Z",
            },
            {"id": "3", "title": "Old", "content_text": "Old.", "date_published": "2026-01-01T00:00:00Z"},
        ],
    }
    server.routes["/feed.json"] = Doc(json.dumps(feed).encode(), content_type="application/feed+json")
    config = with_sources(project, {"name": "jf", "url": server.url("/feed.json")})
    store = project.open_store()
    result = run(config, store, NOW)
    assert titles(store, result.new) == ["One", "Para one. Para two."]
    assert articles(store) == [
        ("Para one. Para two.", "Para one.\n\nPara two.", "2026-11-23T12:00:00+00:00"),
        ("One", "First post.", "2026-11-23T09:00:00+00:00"),
    ]
    one = next(a for a in store.newest_articles() if a.title == "One")
    assert one.body_html == f'<p>First <a href="{server.url("/posts/two")}" rel="noopener noreferrer">post</a>.</p>'
    assert (one.author, one.tags, one.meta.get("canonical")) == ("Ana", ["news"], server.url("/posts/one"))


def test_an_rss_091_feed_without_guids(project: Project, server: FeedServer) -> None:
    """No GUIDs at all: items are known by their links, so an edit updates, and is no new item."""
    items = [{k: v for k, v in ITEMS[name].items() if k != "guid"} for name in ("a", "b")]
    doc = Doc(rss(server, items, version="0.91"))
    server.routes["/feed.xml"] = doc
    config = with_sources(project, {"name": "old", "url": server.url("/feed.xml")})
    store = project.open_store()
    assert titles(store, run(config, store, NOW).new) == ["Alpha", "Bravo"]
    doc.body = rss(server, [{**items[1], "body": "Bravo, edited."}, items[0]], version="0.91")
    again = run(config, store, NOW + timedelta(hours=1))
    assert (again.new, titles(store, again.updated)) == ([], ["Bravo"])
    assert [(title, text) for title, text, _ in articles(store)] == [
        ("Alpha", "Alpha text."),
        ("Bravo", "Bravo, edited."),
    ]


def test_an_atom_feed_with_relative_links_and_xml_base(project: Project, server: FeedServer) -> None:
    atom = f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="{server.url("/blog/")}">
  <title>Blog</title><id>urn:blog</id><updated>2026-11-24T00:00:00Z</updated>
  <entry xml:base="2026/">
    <id>urn:one</id><title type="html">One &amp;lt;b&amp;gt;bold&amp;lt;/b&amp;gt;</title>
    <link href="one.html"/>
    <updated>2026-11-23T08:00:00Z</updated><published>2026-11-23T07:00:00Z</published>
    <author><name>Bo</name></author>
    <summary>A short summary.</summary>
    <content type="html">{escape('<p>See <a href="../about">about</a> <img src="img/x.png" alt="x"></p>')}</content>
  </entry>
  <entry>
    <id>urn:two</id><title>Two</title><link href="/two"/>
    <updated>2026-11-22T08:00:00Z</updated>
    <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Two <a href="three">three</a></p></div></content>
  </entry>
</feed>"""
    server.routes["/atom.xml"] = Doc(atom.encode(), content_type="application/atom+xml")
    config = with_sources(project, {"name": "atom", "url": server.url("/atom.xml")})
    store = project.open_store()
    assert titles(store, run(config, store, NOW).new) == ["One <b>bold</b>", "Two"]
    one, two = store.newest_articles()
    assert one.meta.get("canonical") == server.url("/blog/2026/one.html")
    assert one.body_html == (
        f'<p>See <a href="{server.url("/blog/about")}" rel="noopener noreferrer">about</a> '
        f'<img alt="x" src="{server.url("/blog/2026/img/x.png")}"> </p>'
    )
    assert (one.summary, one.author, one.published.isoformat()) == (
        "A short summary.",
        "Bo",
        "2026-11-23T07:00:00+00:00",
    )
    assert two.meta.get("canonical") == server.url("/two")
    assert two.body_html == f'<p>Two <a href="{server.url("/blog/three")}" rel="noopener noreferrer">three</a></p>'
    assert two.published.isoformat() == "2026-11-22T08:00:00+00:00"  # no published: the updated date


PAGE = """<!doctype html><html lang="en"><head><title>{title} | Blog</title></head><body>
<nav><a href="/">Home</a> <a href="/about">About</a></nav>
<article><h1>{title}</h1><p>{text} It goes on for a while, with enough words in it to be the
article that any extractor would choose over the menu and the footer of the page.</p>
<p>A second paragraph with a <a href="rel">relative link</a>, also long enough to be kept as text.</p></article>
<footer>Copyright Blog</footer></body></html>"""


def test_full_text_fetches_the_page_of_a_summary_only_item_politely(project: Project, server: FeedServer) -> None:
    items = [
        {"guid": "p1", "title": "Page one", "link": "/p/1", "body": "Summary one…", "date": NOW - DAY},
        {"guid": "p2", "title": "Page two", "link": "/p/2", "body": "Summary two…", "date": NOW - DAY},
        {"guid": "p3", "title": "Full", "link": "/p/3", "body": "Sum.", "content": "<p>All here.</p>", "date": NOW},
    ]
    server.routes["/feed.xml"] = Doc(rss(server, items))
    for n in ("1", "2"):
        page = PAGE.format(title=f"Page {'one' if n == '1' else 'two'}", text=f"Text of page {n}.")
        server.routes[f"/p/{n}"] = lambda headers, page=page: Reply(200, page.encode(), {"Content-Type": "text/html"})
    config = with_sources(
        project, {"name": "blog", "url": server.url("/feed.xml"), "full_text": True, "page_delay": 0.3}
    )
    store = project.open_store()
    assert titles(store, run(config, store, NOW).new) == ["Full", "Page one", "Page two"]
    assert server.paths() == ["/feed.xml", "/p/1", "/p/2"]  # a page only where the feed has a summary only
    assert all("publisher/" in headers["user-agent"] for _, headers in server.seen)
    page_one = next(a for a in store.newest_articles() if a.title == "Page one")
    assert page_one.body_text.startswith("Text of page 1. It goes on for a while")
    assert "Home" not in page_one.body_text and "Copyright" not in page_one.body_text
    assert f'href="{server.url("/p/rel")}"' in page_one.body_html
    assert page_one.summary.startswith("Text of page 1.")
    versions = [json.loads(raw) for raw in store.source_versions(page_one.key)]
    assert versions[0]["page"].startswith("<!doctype html>")


def test_pages_from_one_host_are_spaced(server: FeedServer) -> None:
    pacer = Pacer(0.2)
    started = time.monotonic()
    for _ in range(3):
        pacer.wait(server.url("/x"))
    pacer.wait("http://other.example/")  # another host: no wait
    assert time.monotonic() - started >= 0.4


def test_publisher_run_mails_new_items_once_and_names_a_failing_source(
    project: Project, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = Doc(rss(server, [ITEMS["a"], ITEMS["b"]]))
    broken: list[Reply | None] = [None]
    server.routes["/feed.xml"] = lambda headers: broken[0] or doc(headers)
    with_sources(project, {"name": "blog", "url": server.url("/feed.xml")})

    def run_at(when: datetime) -> tuple[int, str, str]:
        monkeypatch.setenv("PUBLISHER_NOW", when.isoformat())
        done = project.cli("run")
        return done.exit_code, done.stdout, done.stderr

    code, out, err = run_at(NOW)
    assert code == 0, err
    assert "ingest: 3 new, 0 updated, 0 unchanged, 0 failed" in out  # the sample file and two items
    (sent,) = project.outbox_files()
    message = email.message_from_bytes(sent.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == "Example News: 3 new"
    text = message.get_body(("plain",)).get_content()
    assert "Alpha" in text and "Bravo" in text and server.url("/a") in text  # linked to the post itself

    doc.body = rss(server, [{**ITEMS["a"], "body": "Alpha, edited."}, ITEMS["b"]])
    code, out, err = run_at(NOW + timedelta(hours=1))
    assert code == 0 and "ingest: 0 new, 1 updated, 2 unchanged, 0 failed" in out
    assert "digest: nothing new since the last digest, no email sent" in out
    assert len(project.outbox_files()) == 1  # an edit is not mailed again

    broken[0] = Reply(500, b"down")
    code, out, err = run_at(NOW + timedelta(hours=2))
    assert code == 0  # failing for less than alert_after (1d): said, not an error yet
    assert err.splitlines() == [
        f"publisher: source blog: HTTP 500 Internal Server Error from {server.url('/feed.xml')} "
        "(failing for 0 min; next try 2026-11-24 08:31 UTC)"
    ]
    code, out, err = run_at(NOW + timedelta(days=2))
    assert code == 1
    assert err.splitlines() == [
        f"publisher: error: [[sources]] blog: failing for 46 h: HTTP 500 Internal Server Error from "
        f"{server.url('/feed.xml')}; next try 2026-11-26 06:32 UTC"
    ]
    assert len(project.outbox_files()) == 1  # no email for a failing source with nothing new

    checked = project.cli("status", "--check")
    assert checked.exit_code == 1
    assert checked.stdout.splitlines()[-1] == (
        "source blog: failing since 2026-11-24 08:30 UTC: HTTP 500 Internal Server Error from "
        + server.url("/feed.xml")
    )

    listing = project.cli("sources", "list")
    assert listing.exit_code == 0
    assert listing.stdout == (
        "blog\t2 items\tlast success 2026-11-24 07:30 UTC\tnext fetch 2026-11-26 06:32 UTC\t"
        f"failing since 2026-11-24 08:30 UTC (2x): HTTP 500 Internal Server Error from {server.url('/feed.xml')}\n"
    )


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        ([{"url": "https://b.example/f"}], "sources[0].name: missing (this key is required)"),
        ([{"name": "a", "url": "https://a.example/f"}, {"name": "b", "url": "ftp://x"}], "sources[1].url: expected an"),
        ([{"name": "a", "url": "https://a.example/f"}] * 2, "sources[1].name: 'a' is the name of another source"),
        ([{"name": "A b", "url": "https://a.example/f"}], "sources[0].name: expected a short name"),
        ([{"name": "a", "url": "https://a.example/f", "interval": "10s"}], "sources[0].interval: must be at least 1m"),
        ([{"name": "a", "url": "https://a.example/f", "backlog": "week"}], "sources[0].backlog: expected a duration"),
        ([{"name": "a", "url": "https://a.example/f", "ful_text": True}], "sources[0].ful_text: unknown key"),
        ([{"name": "a", "url": "https://a.example/f", "timeout": 0}], "sources[0].timeout: expected a positive"),
    ],
)
def test_a_bad_source_setting_is_one_line_naming_it(
    project: Project, sources: list[dict[str, Any]], message: str
) -> None:
    project.config_path.write_text(tomli_w.dumps({**project.settings, "sources": sources}), encoding="utf-8")
    done = project.cli("config", "check")
    assert done.exit_code == 2
    assert message in done.stdout


def test_a_newsletter_from_a_blogs_feed_in_two_commands(tmp_path: Path, server: FeedServer) -> None:
    """The README's quick start, as typed: `publisher init news --source URL`, `publisher run`."""
    server.routes["/index.xml"] = Doc(rss(server, [ITEMS["a"], ITEMS["b"], ITEMS["c"]]))
    env = {"PUBLISHER_NOW": NOW.isoformat()}
    made = run_publisher("init", "news", "--source", server.url("/index.xml"), cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    assert not (tmp_path / "news" / "articles" / "hello.md").exists()
    done = run_publisher("run", cwd=tmp_path / "news", env=env)
    assert done.returncode == 0, done.stderr
    assert "ingest: 2 new, 0 updated, 0 unchanged, 0 failed" in done.stdout
    (sent,) = (tmp_path / "news" / "outbox").glob("*.eml")
    message = email.message_from_bytes(sent.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == "Alpha (+1 more) · My Site"
    feed = feedparser.parse((tmp_path / "news" / "feeds" / "atom.xml").read_bytes())
    assert [(e.title, e.link) for e in feed.entries] == [("Alpha", server.url("/a")), ("Bravo", server.url("/b"))]


def test_init_refuses_a_source_that_is_no_url(tmp_path: Path) -> None:
    done = run_publisher("init", "news", "--source", "blog.example.org/feed", cwd=tmp_path)
    assert done.returncode == 2
    assert (
        done.stderr == "publisher: error: --source: expected the http(s) URL of a feed, got 'blog.example.org/feed'\n"
    )
    assert not (tmp_path / "news").exists()


def test_two_runs_at_once_fetch_a_source_once(project: Project, server: FeedServer) -> None:
    server.routes["/feed.xml"] = Doc(rss(server, [ITEMS["a"]]))
    config = with_sources(project, {"name": "blog", "url": server.url("/feed.xml")})
    store = project.open_store()
    seen = remote_state.source(store, "blog", config.sources[0].url)
    assert remote_state.claim(store, "blog", seen.next_fetch, NOW + timedelta(minutes=15))  # another run's
    assert run(config, store, NOW).fetched == [] and server.seen == []
    assert run(config, store, NOW + timedelta(minutes=15)).fetched == ["blog"]  # its lease ran out


def test_a_new_url_in_the_config_starts_the_source_over(project: Project, server: FeedServer) -> None:
    server.routes["/one.xml"] = Doc(rss(server, [ITEMS["a"]]))
    server.routes["/two.xml"] = Doc(rss(server, [ITEMS["a"], ITEMS["b"], ITEMS["c"]]))
    store = project.open_store()
    config = with_sources(project, {"name": "blog", "url": server.url("/one.xml")})
    assert titles(store, run(config, store, NOW).new) == ["Alpha"]
    config = with_sources(project, {"name": "blog", "url": server.url("/two.xml")})
    again = run(config, store, NOW + timedelta(minutes=1))  # due at once, without the old validators
    assert titles(store, again.new) == ["Bravo"] and "if-none-match" not in server.seen[-1][1]


def test_items_that_all_link_to_the_home_page_are_told_apart_by_guid(project: Project, server: FeedServer) -> None:
    """A feed showing only its latest post, linked to the home page: each new post is new."""
    doc = Doc(rss(server, [{"guid": "g1", "title": "One", "link": "/", "body": "One.", "date": NOW}]))
    server.routes["/feed.xml"] = doc
    config = with_sources(project, {"name": "latest", "url": server.url("/feed.xml")})
    store = project.open_store()
    assert titles(store, run(config, store, NOW).new) == ["One"]
    doc.body = rss(server, [{"guid": "g2", "title": "Two", "link": "/", "body": "Two.", "date": NOW}])
    later = run(config, store, NOW + timedelta(hours=1))
    assert titles(store, later.new) == ["Two"] and later.updated == []
    assert [title for title, _, _ in articles(store)] == ["Two", "One"]


def test_a_surprise_in_one_source_leaves_the_others(
    project: Project, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the parser raising what it never should, on one feed only."""
    import publisher.sources

    real = publisher.sources.parse

    def parse(body: bytes, url: str, content_type: str = "") -> list[Any]:
        if url.endswith("/odd.xml"):
            raise KeyError("boom")
        return real(body, url, content_type)

    monkeypatch.setattr(publisher.sources, "parse", parse)
    server.routes["/odd.xml"] = Doc(rss(server, [ITEMS["a"]]))
    server.routes["/good.xml"] = Doc(rss(server, [ITEMS["b"]]))
    config = with_sources(
        project, {"name": "odd", "url": server.url("/odd.xml")}, {"name": "good", "url": server.url("/good.xml")}
    )
    store = project.open_store()
    result = run(config, store, NOW)
    assert [str(e) for e in result.errors] == ["[[sources]] odd: cannot read it (KeyError: 'boom'); tried again later"]
    assert titles(store, result.new) == ["Bravo"]


def test_the_migration_adds_the_source_tables_to_an_older_store(project: Project, server: FeedServer) -> None:
    """The migration step itself, wherever it sits in MIGRATIONS once other branches add theirs."""
    from sqlalchemy import inspect, text

    from publisher.store import _remote_sources

    store = project.open_store()
    with store.transaction() as conn:  # as a store from before sources was
        conn.execute(text("DROP TABLE remote_items"))
        conn.execute(text("DROP TABLE remote_sources"))
    with store.transaction() as conn:
        _remote_sources(conn)
        assert {"remote_sources", "remote_items"} <= set(inspect(conn).get_table_names())
    server.routes["/feed.xml"] = Doc(rss(server, [ITEMS["a"]]))
    config = with_sources(project, {"name": "blog", "url": server.url("/feed.xml")})
    assert titles(store, run(config, store, NOW).new) == ["Alpha"]
