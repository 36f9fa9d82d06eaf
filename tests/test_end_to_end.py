"""The sample article through the whole program, read back as a feed reader and a mail client would."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import feedparser

from tests.conftest import SAMPLE_TITLE, Project

CHROME = ("Leave a Comment", "Your email address will not be published", "Scroll to Top")


def _read_eml(project: Project) -> EmailMessage:
    [path] = project.outbox_files()
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_run_publishes_the_sample_article_as_feed_and_digest(project: Project) -> None:
    result = project.cli("run")
    assert result.exit_code == 0, result.output
    assert "1 new" in result.stdout

    feed = feedparser.parse(project.feed.read_bytes())
    assert not feed.bozo, feed.bozo_exception
    [entry] = feed.entries
    assert entry.title == SAMPLE_TITLE
    assert entry.link.startswith("https://news.example.org/kremlin-condemns-us-approval")
    paragraphs = [p for p in entry.content[0].value.split("</p>") if p.strip()]
    assert len(paragraphs) == 5
    assert paragraphs[0].strip().startswith("<p>The Kremlin has issued a scathing rebuke")
    assert paragraphs[4].strip().endswith("potential for significant further escalation.")
    for chrome in CHROME:
        assert chrome not in entry.content[0].value

    message = _read_eml(project)
    assert message["Subject"] == "Example News: 1 new"
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert SAMPLE_TITLE in html.get_content()
    body = " ".join(text.get_content().split())
    assert "The Kremlin has issued a scathing rebuke" in body
    assert body.count("The Kremlin has issued a scathing rebuke") == 1
    for chrome in CHROME:
        assert chrome not in body


def test_second_run_with_nothing_new_changes_nothing(project: Project) -> None:
    assert project.cli("run").exit_code == 0
    feed_bytes = project.feed.read_bytes()
    feed_mtime = project.feed.stat().st_mtime_ns
    [first_email] = project.outbox_files()

    again = project.cli("run")

    assert again.exit_code == 0, again.output
    assert "nothing new" in again.stdout
    assert project.feed.read_bytes() == feed_bytes
    assert project.feed.stat().st_mtime_ns == feed_mtime
    assert project.outbox_files() == [first_email]


def test_new_article_goes_out_in_the_next_digest_only(project: Project) -> None:
    assert project.cli("run").exit_code == 0
    project.add_article("second.md", "---\ntitle: Second story\n---\nA fresh paragraph for the second digest.\n")

    assert project.cli("run").exit_code == 0

    emails = project.outbox_files()
    assert len(emails) == 2
    newest = max(emails, key=lambda p: p.read_bytes().count(b"Second story"))
    message = email.message_from_bytes(newest.read_bytes(), policy=email.policy.default)
    assert message["Subject"] == "Example News: 1 new"
    html = message.get_body(("html",))
    assert html is not None
    assert "Second story" in html.get_content()
    assert "Kremlin" not in html.get_content()
    feed = feedparser.parse(project.feed.read_bytes())
    assert [e.title for e in feed.entries] == ["Second story", SAMPLE_TITLE]
