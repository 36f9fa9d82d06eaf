"""The email digest as a mail client sees it: parsed back with the stdlib email parser."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from publisher import digest
from publisher.errors import RenderError
from publisher.ingest import ingest
from publisher.store import Store
from tests.conftest import NOW, SAMPLE_TITLE, Project


def _ingest(project: Project, store: Store, when=NOW) -> None:  # type: ignore[no-untyped-def]
    result = ingest(
        store, [project.articles], articles_dir=project.articles, tz=project.config().site.timezone, now=when
    )
    assert not result.errors, result.errors


def _parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_digest_is_a_complete_rfc5322_message(project: Project) -> None:
    store = project.open_store()
    _ingest(project, store)

    created = digest.create_next(project.config(), store, NOW)

    assert created is not None and created.state == "pending"
    message = _parse(created.message)
    assert message["Subject"] == "Example News: 1 new"
    assert message["From"] == "Example News <news@example.org>"
    assert message["To"] == "subscribers@lists.example.org"
    assert message["Date"] == "Tue, 24 Nov 2026 06:30:00 +0000"
    assert message["Message-ID"] == f"<{created.id}@example.org>"
    assert message["List-Unsubscribe"] == "<https://news.example.org/unsubscribe>"
    # The link names nobody ([digest] recipients = "to"): no one-click unsubscribe (RFC 8058).
    assert message["List-Unsubscribe-Post"] is None
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message.defects == []
    assert created.message.count(b"\r\n") > 10 and b"\n" not in created.message.replace(b"\r\n", b"")


def test_html_part_has_inlined_css_preheader_and_unsubscribe(project: Project) -> None:
    store = project.open_store()
    _ingest(project, store)

    html = _html(_parse(digest.render(project.config(), store.newest_articles(10), digest_id="x", now=NOW).message))

    # The inbox preview line: what the article is about (the subject has its title), then padding.
    preheader, after = html.split('class="preheader"', 1)[1].split(">", 1)[1].split("</div>", 1)
    assert preheader.startswith("The Kremlin has issued") and preheader.endswith(digest.PREHEADER_PADDING)
    assert 'style="' in html  # css-inline moved the rules onto the elements
    assert "@media only screen and (max-width: 620px)" in html  # ...and kept the media queries
    assert 'href="https://news.example.org/unsubscribe"' in html
    assert after.count("The Kremlin has issued a scathing rebuke") == 1


def test_text_part_lists_title_link_and_whole_article(project: Project) -> None:
    store = project.open_store()
    _ingest(project, store)

    text = _text(_parse(digest.render(project.config(), store.newest_articles(10), digest_id="x", now=NOW).message))

    assert SAMPLE_TITLE in text
    assert (
        "https://news.example.org/kremlin-condemns-us-approval-of-long-range-missile-strikes-on-russia-new-round/"
        in text
    )
    assert "long-range" in text.replace("\n", " ")  # wrapped without breaking at hyphens
    assert "Unsubscribe: https://news.example.org/unsubscribe" in text
    assert "Leave a Comment" not in text


def test_nothing_new_means_no_digest(project: Project) -> None:
    store = project.open_store()
    _ingest(project, store)
    assert digest.create_next(project.config(), store, NOW) is not None

    assert digest.create_next(project.config(), store, NOW + timedelta(hours=1)) is None


def test_first_digest_takes_only_articles_newer_than_the_backlog(project: Project) -> None:
    project.add_article("old.md", "---\ntitle: Old news\ndate: 2026-11-01T00:00:00Z\n---\nFrom weeks ago.\n")
    project.add_article("fresh.md", "---\ntitle: Fresh news\ndate: 2026-11-23T00:00:00Z\n---\nFrom yesterday.\n")
    store = project.open_store()
    _ingest(project, store)

    first = digest.create_next(project.config(), store, NOW)

    assert first is not None
    assert [a.title for a in store.digest_articles(first.id)] == [SAMPLE_TITLE, "Fresh news"]  # newest first
    store.finish_digest(first.id, "sent", NOW)
    # The old article stays out of later digests too: the cutoff is kept in the store.
    assert digest.create_next(project.config(), store, NOW + timedelta(days=30)) is None


def test_html_stays_under_the_clip_limit_however_long_the_articles(project: Project) -> None:
    paragraph = "A long paragraph of reporting that goes on and on about the matter at hand. " * 40
    for n in range(60):
        body = "\n\n".join(f"{n}-{i} {paragraph}" for i in range(12))
        project.add_article(f"long{n:02}.txt", f"Long story number {n}\n\n{body}\n")
    store = project.open_store()
    _ingest(project, store)

    rendered = digest.render(project.config(), store.newest_articles(100), digest_id="x", now=NOW)

    html = _html(_parse(rendered.message))
    assert len(html.encode()) <= 100_000
    assert "Long story number 59" in html  # the newest at least is still listed
    assert "Read the whole article" in html or "more on Example News" in html


def test_long_article_becomes_a_summary_and_a_link(project: Project) -> None:
    body = "\n\n".join(f"Paragraph {i}: " + "words and more words " * 60 for i in range(20))
    project.add_article("long.txt", f"One very long article\n\n{body}\n")
    store = project.open_store()
    _ingest(project, store)

    html = _html(_parse(digest.render(project.config(), store.newest_articles(10), digest_id="x", now=NOW).message))

    assert "One very long article" in html
    assert "Paragraph 19" not in html
    assert "Read the whole article" in html


def test_titles_are_escaped_and_never_evaluated_as_templates(project: Project) -> None:
    project.add_article(
        "tricky.md",
        '---\ntitle: "{{ 7 * 7 }} <script>alert(1)</script> & {% if true %}x{% endif %}"\n---\nBody text.\n',
    )
    (project.articles / "000_b518ed41a9e9a454.txt").unlink()
    project.configure(digest={"subject": "{{ articles[0].title }}"})
    store = project.open_store()
    _ingest(project, store)

    message = _parse(digest.render(project.config(), store.newest_articles(10), digest_id="x", now=NOW).message)

    assert message["Subject"] == "{{ 7 * 7 }} <script>alert(1)</script> & {% if true %}x{% endif %}"
    html = _html(message)
    assert "{{ 7 * 7 }} &lt;script&gt;alert(1)&lt;/script&gt; &amp; {% if true %}x{% endif %}" in html
    assert "<script>" not in html and "49" not in html


def test_line_breaks_in_a_title_never_make_extra_headers(project: Project) -> None:
    project.add_article("inject.md", '---\ntitle: "Hello\\r\\nBcc: victim@example.com"\n---\nBody.\n')
    project.configure(digest={"subject": "{{ articles|map(attribute='title')|join(' / ') }}"})
    store = project.open_store()
    _ingest(project, store)

    created = digest.create_next(project.config(), store, NOW)

    assert created is not None
    message = _parse(created.message)
    assert message["Bcc"] is None
    assert "Hello Bcc: victim@example.com" in message["Subject"]


def test_custom_templates_dir_and_undefined_variables(project: Project, tmp_path: Path, at_now: datetime) -> None:
    templates = project.root / "my-templates"
    templates.mkdir()
    (templates / "digest.html.j2").write_text("<html><body><p>{{ site.title }} custom</p></body></html>")
    (templates / "digest.txt.j2").write_text("{{ site.title }} custom text {{ no_such_variable }}")
    project.configure(digest={"templates_dir": "my-templates"})
    store = project.open_store()
    _ingest(project, store)

    with pytest.raises(RenderError, match="no_such_variable"):
        digest.render(project.config(), store.newest_articles(10), digest_id="x", now=NOW)

    result = project.cli("digest", "send")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "no_such_variable" in result.stderr
    assert store.last_digest() is None  # nothing recorded, nothing marked


def test_hundreds_of_articles_fall_back_to_titles_and_a_count(project: Project) -> None:
    summary = "A summary line that is long enough to matter for the size of the email. " * 4
    for n in range(400):
        project.add_article(f"many/{n:03}.md", f"---\ntitle: Item {n:03}\nsummary: {summary}\n---\nBody {n}.\n")
    store = project.open_store()
    _ingest(project, store)

    rendered = digest.render(project.config(), store.newest_articles(1000), digest_id="x", now=NOW)

    html = _html(_parse(rendered.message))
    assert len(html.encode()) <= 100_000
    assert "401 new articles" in html
    assert "more on Example News" in html
    assert "Item 399" in html  # newest first: the list keeps the newest
