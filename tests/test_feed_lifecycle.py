"""An article's life in the feeds: absolute links, edits, removal, and WebSub pings on the way.

Removal and WebSub go through the command line (``publisher articles remove``, ``publisher
run``) against a real SQLite store; the WebSub hub is the recording ``endpoint`` server.
"""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import lxml.html
import pytest
from lxml import etree

from publisher import digest
from publisher.config import Config
from publisher.feed import write_feeds
from publisher.ingest import ingest
from publisher.store import Store
from tests.conftest import NOW, SAMPLE, Project
from tests.endpoint import Endpoint
from tests.feedcheck import is_issue_archive

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
SITE = "https://news.example.org/"
FEEDS = SITE + "feeds/"


@pytest.fixture
def store(project: Project) -> Iterator[Store]:
    opened = project.open_store()
    yield opened
    opened.close()


def _ingest(project: Project, store: Store, when: datetime = NOW) -> None:
    config = project.config()
    result = ingest(store, [project.articles], articles_dir=project.articles, tz=config.site.timezone, now=when)
    assert not result.errors, result.errors


def _md(title: str, date: datetime | str, tags: list[str] | None = None, body: str = "") -> str:
    when = date.isoformat() if isinstance(date, datetime) else date
    front = f"title: {title}\ndate: {when}\n" + (f"tags: {json.dumps(tags)}\n" if tags else "")
    return f"---\n{front}---\n{body or f'The text of {title}.'}\n"


# -- absolute URLs --------------------------------------------------------------------------------

ALPHA = SITE + "2026/11/alpha-story/"  # article_path {year}/{month}/{slug}/
BETA = SITE + "2026/11/beta-page/"


def _relative_articles(project: Project) -> Config:
    config = project.configure(site={"article_path": "{year}/{month}/{slug}/"})
    project.add_article(
        "alpha.md",
        _md(
            "Alpha story",
            "2026-11-20T08:00:00Z",
            body='See [the about page](/about), ![a chart](pics/a.png) and <a href="#note">the note</a>.',
        ),
    )
    project.add_article(
        "beta.html",
        "<html><head><title>Beta page</title>"
        '<meta property="article:published_time" content="2026-11-21T08:00:00Z"></head>'
        "<body><article><h1>Beta page</h1>"
        '<p>Read <a href="../other/">the other story</a> and look at <img src="img/b.jpg" alt="b"> '
        "which shows what happened in the city this week.</p>"
        '<blockquote cite="sources/c.html"><p>A quotation long enough to be kept as text.</p></blockquote>'
        "</article></body></html>",
    )
    return config


_URL_ATTRIBUTES = ("href", "src", "cite")


def _urls(html: str) -> list[str]:
    """Every href, src and cite in an HTML fragment."""
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    return [value for element in root.iter() for name, value in element.attrib.items() if name in _URL_ATTRIBUTES]


EXPECTED = {
    "Alpha story": {SITE + "about", ALPHA + "pics/a.png", ALPHA + "#note"},
    "Beta page": {SITE + "2026/11/other/", BETA + "img/b.jpg", BETA + "sources/c.html"},
}


def _assert_absolute(title: str, html: str) -> None:
    urls = _urls(html)
    assert set(urls) == EXPECTED[title], (title, urls)
    for url in urls:
        parts = urlsplit(url)
        assert parts.scheme == "https" and parts.netloc == "news.example.org", url


def test_relative_links_and_images_are_absolute_in_every_feed_format(project: Project, store: Store) -> None:
    config = _relative_articles(project)
    _ingest(project, store)
    write_feeds(config, store)
    feeds = config.feed.dir

    # Raw XML, not feedparser: feedparser resolves relative URLs itself and would hide them.
    atom = etree.fromstring((feeds / "atom.xml").read_bytes())
    atom_html = {e.findtext(f"{ATOM}title"): e.findtext(f"{ATOM}content") or "" for e in atom.iter(f"{ATOM}entry")}
    rss = etree.fromstring((feeds / "rss.xml").read_bytes())
    rss_html = {item.findtext("title"): item.findtext(CONTENT) or "" for item in rss.iter("item")}
    items = json.loads((feeds / "feed.json").read_bytes())["items"]
    json_html = {item["title"]: item["content_html"] for item in items}
    links = {e.findtext(f"{ATOM}title"): e.find(f"{ATOM}link") for e in atom.iter(f"{ATOM}entry")}

    for shown in (atom_html, rss_html, json_html):
        for title in EXPECTED:
            _assert_absolute(title, shown[title])
    assert links["Alpha story"] is not None and links["Alpha story"].get("href") == ALPHA
    assert links["Beta page"] is not None and links["Beta page"].get("href") == BETA


def test_relative_links_and_images_are_absolute_in_the_digest_email(project: Project, store: Store) -> None:
    config = _relative_articles(project)
    (project.articles / SAMPLE.name).unlink()
    _ingest(project, store)

    rendered = digest.render(config, store.newest_articles(), digest_id="test", now=NOW)

    message = email.message_from_bytes(rendered.message, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html_part = message.get_body(("html",))
    assert html_part is not None
    page = lxml.html.document_fromstring(html_part.get_content())
    urls = [value for element in page.iter() for name, value in element.attrib.items() if name in ("href", "src")]
    relative = [url for url in urls if not urlsplit(url).scheme]
    assert relative == []
    assert {SITE + "about", ALPHA + "pics/a.png", ALPHA + "#note", BETA + "img/b.jpg"} <= set(urls)


# -- edits ------------------------------------------------------------------------------------------


def test_an_edit_keeps_the_id_in_rss_json_and_tag_feeds(project: Project, store: Store) -> None:
    """test_feed.py checks atom.xml; the other documents must agree with it."""
    path = project.add_article("story.md", _md("Story", "2026-11-20T08:00:00Z", ["Economy"]))
    _ingest(project, store)
    config = project.config()
    write_feeds(config, store)
    feeds = config.feed.dir

    def read() -> tuple[dict[str, str], dict[str, str], feedparser.FeedParserDict]:
        rss = etree.fromstring((feeds / "rss.xml").read_bytes())
        [guid] = [item.findtext("guid") for item in rss.iter("item") if item.findtext("title", "").startswith("Story")]
        [item] = [i for i in json.loads((feeds / "feed.json").read_bytes())["items"] if i["title"].startswith("Story")]
        [tagged] = feedparser.parse((feeds / "tags" / "economy.xml").read_bytes()).entries
        return {"guid": guid or ""}, item, tagged

    rss_before, json_before, tag_before = read()
    path.write_text(_md("Story, corrected", "2026-11-20T08:00:00Z", ["Economy"]), encoding="utf-8")
    _ingest(project, store, when=NOW + timedelta(days=1))
    write_feeds(config, store)
    rss_after, json_after, tag_after = read()

    assert rss_after["guid"] == rss_before["guid"] == json_before["id"] == json_after["id"] == tag_after.id
    assert tag_after.id == tag_before.id
    # the article's own date (issue 12): an edit that does not change it keeps it
    assert json_before["date_modified"] == json_after["date_modified"] == "2026-11-20T08:00:00+00:00"
    assert json_after["date_published"] == json_before["date_published"] == "2026-11-20T08:00:00+00:00"
    assert tag_after.title == "Story, corrected" and tag_after.updated == "2026-11-20T08:00:00+00:00"


# -- publisher articles remove ----------------------------------------------------------------------


def _all_entry_ids(config: Config) -> dict[str, set[str]]:
    """Entry ids per feed document (every Atom document, rss.xml, feed.json)."""
    found: dict[str, set[str]] = {}
    for path in sorted(config.feed.dir.rglob("*.xml")):
        parsed = feedparser.parse(path.read_bytes())
        assert not parsed.bozo, (path, parsed.bozo_exception)
        found[path.relative_to(config.feed.dir).as_posix()] = {e.id for e in parsed.entries}
    items = json.loads((config.feed.dir / "feed.json").read_bytes())["items"]
    found["feed.json"] = {item["id"] for item in items}
    return found


def _listed(project: Project) -> list[str]:
    result = project.cli("articles", "list")
    assert result.exit_code == 0, result.output
    return [line.split("\t")[0] for line in result.stdout.splitlines()]


def test_articles_remove_takes_articles_out_of_every_feed_at_once(project: Project, store: Store) -> None:
    (project.articles / SAMPLE.name).unlink()
    config = project.configure(feed={"max_entries": 2})
    project.add_article("oct.md", _md("October", "2026-10-10T08:00:00Z", ["Solo"]))  # archive/2026-10.xml
    project.add_article("nov1.md", _md("November 1", "2026-11-01T08:00:00Z", ["Economy"]))
    project.add_article("nov2.md", _md("November 2", "2026-11-02T08:00:00Z", ["Economy"]))
    project.add_article("nov3.md", _md("November 3", "2026-11-03T08:00:00Z", ["Economy"]))  # atom.xml
    _ingest(project, store)
    write_feeds(config, store)
    before = _all_entry_ids(config)
    id_of = {
        e.title: e.id for path in config.feed.dir.rglob("*.xml") for e in feedparser.parse(path.read_bytes()).entries
    }
    assert len(id_of) == 4
    [oct_id] = before["tags/solo.xml"]
    assert {"archive/2026-10.xml", "tags/solo.xml"} <= set(before)
    assert id_of["November 3"] in before["atom.xml"] | before["rss.xml"] | before["feed.json"]

    result = project.cli("articles", "remove", "nov3", "oct")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == ["removed nov3", "removed oct"]
    assert result.stderr == ""
    after = _all_entry_ids(config)
    for document, ids in after.items():
        assert id_of["November 3"] not in ids and oct_id not in ids, document
    assert "tags/solo.xml" not in after and "archive/2026-10.xml" not in after
    # The next newest entry moves up from the archive into the main documents.
    for main in ("atom.xml", "rss.xml", "feed.json"):
        assert after[main] == {id_of["November 2"], id_of["November 1"]}, main
    assert _listed(project) == ["nov2", "nov1"]


def test_a_removed_article_stays_out_of_runs_and_digests_until_its_file_changes(project: Project) -> None:
    (project.articles / SAMPLE.name).unlink()
    recent = datetime.now(UTC).replace(microsecond=0)  # the digest takes the last 7 days only
    for n, name in enumerate(("one", "two", "three"), start=1):
        project.add_article(f"{name}.md", _md(f"Story {name}", recent - timedelta(hours=4 - n)))
    assert project.cli("ingest", str(project.articles)).exit_code == 0
    assert project.cli("feed").exit_code == 0
    config = project.config()
    [two_id] = [e.id for e in feedparser.parse(project.feed.read_bytes()).entries if e.title == "Story two"]

    assert project.cli("articles", "remove", "two").exit_code == 0
    first = project.cli("run")

    assert first.exit_code == 0, first.output
    assert "ingest: 0 new, 0 updated, 3 unchanged, 0 failed" in first.stdout
    assert all(two_id not in ids for ids in _all_entry_ids(config).values())
    assert "two" not in _listed(project)
    [eml] = project.outbox_files()
    mailed = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert isinstance(mailed, EmailMessage)
    text = mailed.get_body(("plain",))
    assert text is not None
    assert "Story one" in text.get_content() and "Story three" in text.get_content()
    assert "Story two" not in text.get_content() and "Story two" not in str(mailed["Subject"])

    second = project.cli("run")  # the file is still there, unchanged
    assert second.exit_code == 0, second.output
    assert "ingest: 0 new, 0 updated, 3 unchanged, 0 failed" in second.stdout
    assert len(project.outbox_files()) == 1
    assert "two" not in _listed(project)

    project.add_article("two.md", _md("Story two", recent - timedelta(hours=2), body="Now with a correction."))
    third = project.cli("run")
    assert third.exit_code == 0, third.output
    assert "ingest: 0 new, 1 updated, 2 unchanged, 0 failed" in third.stdout
    back = {e.title: e for e in feedparser.parse(project.feed.read_bytes()).entries}["Story two"]
    assert back.id == two_id
    assert "Now with a correction." in back.content[0].value
    assert "two" in _listed(project)


def test_removing_an_unknown_id_fails_but_removes_the_others(project: Project, store: Store) -> None:
    (project.articles / SAMPLE.name).unlink()
    for n in (1, 2, 3):
        project.add_article(f"a{n}.md", _md(f"Article {n}", f"2026-11-0{n}T08:00:00Z"))
    _ingest(project, store)

    result = project.cli("articles", "remove", "a1", "nope", "a3")

    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["publisher: error: nope: no such article (see `publisher articles list`)"]
    assert result.stdout.splitlines()[:2] == ["removed a1", "removed a3"]
    assert _listed(project) == ["a2"]
    assert [e.title for e in feedparser.parse(project.feed.read_bytes()).entries] == ["Article 2"]

    again = project.cli("articles", "remove", "a1")  # already removed: nothing to remove
    assert again.exit_code == 1
    assert len(again.stderr.splitlines()) == 1 and "a1: no such article" in again.stderr


# -- WebSub in the cycle ----------------------------------------------------------------------------


def _pinged(endpoint: Endpoint, start: int = 0) -> list[str]:
    """The hub.url of each publish ping the hub got, from request ``start`` on."""
    topics = []
    for request in endpoint.requests[start:]:
        assert (request.method, request.path) == ("POST", "/hub")
        form = request.form()
        assert len(form) == 2 and dict(form)["hub.mode"] == "publish", form
        topics.append(dict(form)["hub.url"])
    return topics


def _documents(feeds: Path) -> set[str]:
    """The public URL of every feed document on disk (feed.xsl is not a feed)."""
    return {
        FEEDS + p.relative_to(feeds).as_posix()
        for p in feeds.rglob("*")
        if p.is_file()
        and p.suffix != ".html"
        and p.name != "feed.xsl"
        and not is_issue_archive(p.relative_to(feeds).as_posix())
    }


def test_hubs_hear_of_each_changed_feed_and_a_failed_ping_is_sent_again(
    project: Project, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.configure(feed={"hubs": [endpoint.url + "/hub"]})
    project.add_article("tagged.md", _md("Tagged", datetime.now(UTC).replace(microsecond=0), ["Economy"]))
    feeds = project.feed.parent

    first = project.cli("run")

    assert first.exit_code == 0, first.output
    assert _documents(feeds) == {FEEDS + "atom.xml", FEEDS + "rss.xml", FEEDS + "feed.json", FEEDS + "tags/economy.xml"}
    assert sorted(_pinged(endpoint)) == sorted(_documents(feeds))  # each once, all new

    second = project.cli("run")  # nothing new: no feed changed, nothing to announce
    assert second.exit_code == 0, second.output
    assert len(endpoint.requests) == 4

    project.add_article("untagged.md", _md("Untagged", datetime.now(UTC).replace(microsecond=0)))
    endpoint.reply(500, {"message": "hub is down"})
    third = project.cli("run")

    # The hub is down: one ping found it so, the others wait; the run is not failed for it.
    assert third.exit_code == 0, third.output
    assert len(_pinged(endpoint, start=4)) == 1
    [line] = third.stderr.splitlines()
    assert line.startswith("websub: ") and "is down (HTTP 500: hub is down); 3 feeds to announce" in line

    fourth = project.cli("run")  # within the backoff: the hub is left alone, and told so in a line
    assert fourth.exit_code == 0, fourth.output
    assert len(endpoint.requests) == 5 and "next try after" in fourth.stderr

    monkeypatch.setenv("PUBLISHER_NOW", (datetime.now(UTC) + timedelta(minutes=2)).isoformat())
    fifth = project.cli("run")  # no feed changed, but the pings are owed
    assert fifth.exit_code == 0, fifth.output
    # atom.xml, rss.xml and feed.json changed; the tag feed is as it was.
    assert sorted(_pinged(endpoint, start=5)) == [FEEDS + "atom.xml", FEEDS + "feed.json", FEEDS + "rss.xml"]
    assert f"accepted {FEEDS}atom.xml" in fifth.stdout and fifth.stderr == ""

    sixth = project.cli("run")
    assert sixth.exit_code == 0, sixth.output
    assert len(endpoint.requests) == 8


def test_a_ping_the_hub_refuses_is_reported_once_and_not_sent_again(project: Project, endpoint: Endpoint) -> None:
    project.configure(feed={"hubs": [endpoint.url + "/hub"], "formats": ["atom"], "tag_feeds": False})
    endpoint.reply(400, {"error": "topic not allowed"})

    first = project.cli("run")

    assert first.exit_code == 0  # reported, but a hub never fails the run
    assert _pinged(endpoint) == [FEEDS + "atom.xml"]  # a 4xx is not retried
    assert "HTTP 400: topic not allowed" in first.stderr
    second = project.cli("run")  # nothing changed and nothing is owed: the hub said no
    assert second.exit_code == 0, second.output
    assert len(endpoint.requests) == 1
