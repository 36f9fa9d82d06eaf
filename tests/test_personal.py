"""One reader's copy of a digest (publisher/delivery/personal.py), read with the stdlib email parser."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from lxml import html as lxml_html

from publisher import digest
from publisher.delivery import Envelope, Recipient, personal
from publisher.ingest import ingest
from tests.conftest import NOW, Project

LINK = "https://news.example.org/unsubscribe?s=TOKEN_abc&t=SIG-xyz"


def _envelope(project: Project) -> Envelope:
    project.configure(digest={"recipients": "subscribers"})
    config = project.config()
    store = project.open_store()
    try:
        ingest(store, [config.articles_dir], articles_dir=config.articles_dir, tz=config.site.timezone, now=NOW)
        shown = digest.preview(config, store, NOW, sample_link=False)
    finally:
        store.close()
    assert shown is not None
    return Envelope(digest=shown, key=f"{shown.id}-0001", recipients=())


def _read(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_a_copy_is_addressed_to_the_reader_alone_with_their_link_everywhere(project: Project) -> None:
    envelope = _envelope(project)

    copy = _read(personal.message(envelope, Recipient("Ann@Example.net", LINK)))

    assert copy["To"] == "Ann@Example.net"
    assert copy["List-Unsubscribe"] == f"<{LINK}>"
    assert copy["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert copy["Subject"] == envelope.digest.subject
    html_part, text_part = copy.get_body(("html",)), copy.get_body(("plain",))
    assert html_part is not None and text_part is not None
    raw_html = html_part.get_content()
    assert "s=TOKEN_abc&amp;t=SIG-xyz" in raw_html  # escaped in the attribute, as HTML wants
    hrefs = lxml_html.fromstring(raw_html).xpath("//a/@href")
    assert LINK in hrefs  # and a mail client reads the link itself back
    assert LINK in text_part.get_content()
    assert digest.UNSUBSCRIBE_PLACEHOLDER not in copy.as_string()


def test_each_reader_has_a_message_id_of_their_own_that_a_resend_repeats(project: Project) -> None:
    envelope = _envelope(project)

    ann = personal.message(envelope, Recipient("ann@example.net", LINK))
    bob = personal.message(envelope, Recipient("bob@example.net", LINK))

    assert _read(ann)["Message-ID"] != _read(bob)["Message-ID"]
    assert personal.message(envelope, Recipient("ann@example.net", LINK)) == ann  # same bytes every time
    assert _read(ann)["Message-ID"].endswith("@example.org>")


def test_braces_are_guarded_for_providers_that_render_templates() -> None:
    assert (
        personal.guard_braces_html("<p>{{ x }} {% y %}</p>") == "<p>&#123;&#123; x &#125;&#125; &#123;% y %&#125;</p>"
    )
    text = personal.guard_braces_text("a {{ x }} b {% y %} c {# z #}")
    for pair in ("{{", "}}", "{%", "%}", "{#", "#}"):
        assert pair not in text
    assert text.replace("\u200b", "") == "a {{ x }} b {% y %} c {# z #}"
