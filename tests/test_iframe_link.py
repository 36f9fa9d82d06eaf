"""An embedded video (an <iframe>) leaves a link in the feed and in both parts of the email.

The article goes through ``publisher run`` with the outbox mailer; the email is read back with
the stdlib parser, the Atom feed with feedparser.
"""

from __future__ import annotations

import email
import email.policy
from datetime import datetime
from email.message import EmailMessage

import feedparser

from tests.conftest import Project

VIDEO = "https://www.youtube.com/embed/dQw4w9WgXcQ"
ARTICLE = f"""# Harbour Festival Opens With Tall Ships

The harbour festival opened on Friday with eleven tall ships moored along the old quay.

<iframe width="560" height="315" src="{VIDEO}" allowfullscreen></iframe>

Visitors can board three of the ships every afternoon until Sunday.
"""


def test_a_video_frame_is_a_link_in_the_feed_and_in_both_parts_of_the_email(project: Project, at_now: datetime) -> None:
    project.add_article("harbour.md", ARTICLE)

    result = project.cli("run")

    assert result.exit_code == 0, result.output
    [eml] = project.outbox_files()
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    text_part, html_part = message.get_body(("plain",)), message.get_body(("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    # The text part: the label where the frame was, its address in the list of links.
    assert "Video: youtube.com" in text
    assert VIDEO in text
    assert text.index("eleven tall ships") < text.index("Video: youtube.com") < text.index("Visitors can board")
    assert f'href="{VIDEO}"' in html and "Video: youtube.com" in html
    assert "<iframe" not in html and "<iframe" not in text

    feed = feedparser.parse(project.feed.read_bytes())
    [entry] = [e for e in feed.entries if e.title == "Harbour Festival Opens With Tall Ships"]
    content = entry.content[0].value
    assert f'href="{VIDEO}"' in content and "Video: youtube.com" in content
    assert "<iframe" not in content
