"""The digest as mail clients show it: HTML built for Gmail, Outlook and Apple Mail, a faithful
plain-text part (publisher.plaintext), and a size that stays under Gmail's clip for every reader.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage

import lxml.html
from hypothesis import given
from hypothesis import strategies as st

from publisher import digest
from publisher.ingest import ingest
from publisher.plaintext import to_text
from publisher.store import Store
from tests.conftest import NOW, Project

GMAIL_CLIP_BYTES = 102_000


def _ingest(project: Project, store: Store) -> None:
    result = ingest(
        store, [project.articles], articles_dir=project.articles, tz=project.config().site.timezone, now=NOW
    )
    assert not result.errors, result.errors


def _parts(project: Project) -> tuple[str, str]:
    """The HTML and text parts of the next digest, read back with the stdlib email parser."""
    store = project.open_store()
    _ingest(project, store)
    config = project.config()
    rendered = digest.render(config, digest.next_articles(config, store, NOW), digest_id="x", now=NOW)
    message = email.message_from_bytes(rendered.message, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    # Quoted-printable keeps the message's CRLF line ends; a mail client shows lines.
    return str(html.get_content()), str(text.get_content()).replace("\r\n", "\n")


# -- plain text -----------------------------------------------------------------------------


def test_links_become_numbered_references_listed_once() -> None:
    plain = to_text(
        '<p>Read <a href="https://example.org/plan.pdf">the plan</a>, <a href="https://example.org/map">the map</a>'
        ' and <a href="https://example.org/plan.pdf">the plan again</a>.</p>'
        '<p>Shown as is: <a href="https://example.org/x/">example.org/x</a>, <a href="mailto:desk@example.org">'
        'desk@example.org</a>; skipped: <a href="#notes">notes</a>; no text: <a href="https://example.org/i">'
        '<img src="https://example.org/i.png"></a>.</p>'
    )

    assert plain.text == (
        "Read the plan [1], the map [2] and the plan again [1].\n\n"
        "Shown as is: example.org/x, desk@example.org; skipped: notes; no text:\n[3]."
    )
    assert plain.links == ("https://example.org/plan.pdf", "https://example.org/map", "https://example.org/i")


def test_headings_lists_quotes_code_and_tables_keep_their_shape() -> None:
    plain = to_text(
        "<h2>What happened</h2><p>First <em>this</em>,<br>then that.</p>"
        "<ul><li>Bonds were steady</li><li>The currency slipped<ul><li>a little</li></ul></li></ul>"
        '<ol start="9"><li>nine</li><li>ten</li></ol>'
        "<blockquote><p>We are patient.</p><blockquote><p>Are you?</p></blockquote></blockquote>"
        "<pre>def f():\n\treturn 1\n</pre>"
        "<table><caption>Votes</caption><tr><th>Yes</th><th>No</th></tr><tr><td>7</td><td><p>2</p></td></tr></table>"
        '<hr><dl><dt>Term</dt><dd>What it means</dd></dl><p><img src="https://e.org/c.png" alt="A chart"></p>'
    )

    assert plain.text == "\n\n".join(
        [
            "What happened\n-------------",
            "First this,\nthen that.",
            "- Bonds were steady\n- The currency slipped\n  - a little",
            "9.  nine\n10. ten",
            "> We are patient.\n>\n> > Are you?",
            "    def f():\n        return 1",
            "Votes\nYes | No\n7 | 2",
            "* * *",
            "Term\n    What it means",
            "[Image: A chart]",
        ]
    )


def test_paragraphs_wrap_at_72_without_breaking_urls_words_or_references() -> None:
    url = "https://example.org/" + "a-very-long-path-segment/" * 5
    words = "word " * 12
    plain = to_text(f'<p>{words}<a href="{url}">{url}</a> well-known {words}<a href="{url}x">linked</a> end</p>')

    lines = plain.text.split("\n")
    assert url in lines  # on a line of its own, whole
    assert all(len(line) <= 72 for line in lines if line != url)
    assert "linked [1]" in plain.text and "well-known" in plain.text
    assert plain.links == (url + "x",)


def test_sloppy_nesting_loses_nothing() -> None:
    plain = to_text(
        "<ul><li>x</li><ul><li>y</li></ul><li>z</li></ul>"  # a list straight inside a list
        "<table><tr><td>a<table><tr><td>inner</td></tr></table></td><td>b</td></tr></table>"
        "<div>loose text<p>then a paragraph</p>and more</div>"
    )

    assert plain.text == "- x\n  - y\n- z\n\na inner | b\n\nloose text\n\nthen a paragraph\n\nand more"


def test_nothing_to_convert_is_empty_text() -> None:
    assert to_text("").text == "" and to_text("   ").links == ()
    assert to_text("<!-- just a comment -->").text == ""


_word = st.text(st.sampled_from("abcdefghij-'é"), min_size=1, max_size=30)


@given(st.lists(st.tuples(_word, st.booleans()), min_size=1, max_size=60))
def test_any_paragraph_keeps_every_word_and_link_in_order(items: list[tuple[str, bool]]) -> None:
    html = "<p>" + " ".join(f'<a href="https://e.org/{i}">{w}</a>' if link else w for i, (w, link) in enumerate(items))
    plain = to_text(html + "</p>")

    expected = [w if not link else f"{w} [{n}]" for n, (w, link) in _numbered(items)]
    assert plain.text.split() == " ".join(expected).split()
    assert plain.links == tuple(f"https://e.org/{i}" for i, (_, link) in enumerate(items) if link)
    assert all(len(line) <= 72 or " " not in line.split(" [")[0] for line in plain.text.split("\n"))


def _numbered(items: list[tuple[str, bool]]) -> list[tuple[int, tuple[str, bool]]]:
    numbered, n = [], 0
    for item in items:
        n += item[1]
        numbered.append((n, item))
    return numbered


def test_text_part_lists_links_under_each_article_and_ends_with_unsubscribe_and_site(project: Project) -> None:
    project.add_article(
        "links.html",
        "<html><head><title>Council approves new park</title></head><body><article>"
        '<p>Work starts in spring. <a href="/plan.pdf">The plan</a> runs to 40 pages.</p>'
        "<blockquote><p>It was close.</p></blockquote></article></body></html>",
    )

    _, text = _parts(project)

    article = text.split("Council approves new park\n", 1)[1].split("=" * 72)[0]
    assert "Work starts in spring. The plan [1] runs to 40 pages.\n\n> It was close.\n" in article
    assert "\nLinks:\n[1] https://news.example.org/plan.pdf\n" in article  # made absolute
    assert text.endswith("Unsubscribe: https://news.example.org/unsubscribe\nExample News: https://news.example.org/\n")


# -- HTML -----------------------------------------------------------------------------------


def test_images_get_alt_text_a_width_that_fits_and_absolute_sources(project: Project) -> None:
    project.add_article(
        "photos.html",
        "<html><head><title>Photos</title></head><body><article><p>Two pictures.</p>"
        '<p><img src="/big.jpg" width="1200" height="800" alt="The new park"></p>'
        '<p><img src="small.png" width="120px"></p><p><img src="/any.png" width="50%"></p></article></body></html>',
    )

    html, _ = _parts(project)

    images = lxml.html.document_fromstring(html).xpath("//img")
    assert [(i.get("src"), i.get("alt"), i.get("width"), i.get("height")) for i in images] == [
        ("https://news.example.org/big.jpg", "The new park", "536", "357"),  # scaled to the column
        ("https://news.example.org/photos/small.png", "", "120", None),  # decorative: empty alt
        ("https://news.example.org/any.png", "", "50%", None),
    ]
    assert all("max-width: 100%" in i.get("style") and "height: auto" in i.get("style") for i in images)


def test_html_is_built_for_outlook_gmail_and_apple_mail(project: Project) -> None:
    html, _ = _parts(project)

    # Outlook on Windows: a 600 px table only it sees holds the column, which is fluid elsewhere.
    assert '<!--[if mso]><table role="presentation" align="center" width="600"' in html
    container = lxml.html.document_fromstring(html).find_class("container")[0]
    assert "width: 100%;max-width: 600px" in container.get("style")
    assert "mso-table-lspace: 0pt" in container.get("style")
    # Gmail: the styles are on the elements; the @media rules stay in <head> for the others.
    head = html.split("</head>", 1)[0]
    assert "@media only screen and (max-width: 620px)" in head and "@media (prefers-color-scheme: dark)" in head
    dark = head.split("@media (prefers-color-scheme: dark)", 1)[1]
    for selector in (".article", ".meta", ".footer a", ".body a", ".intro"):
        assert re.search(rf"{re.escape(selector)}\b[^{{]*{{[^}}]*color:", dark), selector
    # Long words and URLs wrap instead of widening the column.
    assert "overflow-wrap: anywhere" in lxml.html.document_fromstring(html).find_class("article")[0].get("style")
    assert html.count('href="https://news.example.org/unsubscribe"') == 1


def test_a_personal_copy_at_the_size_limit_stays_under_gmails_clip(project: Project) -> None:
    """Each reader's unsubscribe link, longer than the placeholder, still fits under the limit.

    The articles are sized so that the digest with the placeholder is just under the limit:
    without the room kept for personal links, every reader's copy would be clipped.
    """
    project.configure(digest={"recipients": "subscribers", "max_html_bytes": 10_000_000})
    paragraph = "words of a story that fill the email up to its limit. " * 20
    for n in range(11):  # the email's own parts take the room of a twelfth
        body = "\n\n".join(f"Paragraph {n}-{i}: {paragraph}" for i in range(6))  # no repeats: kept whole
        project.add_article(f"story{n:02}.txt", f"Story {n}\n\n{body}")
    project.add_article("filler.txt", "Filler\n\n" + "x" * 1000)
    store = project.open_store()
    _ingest(project, store)
    whole = digest.preview(project.config(), store, NOW, sample_link=False)
    assert whole is not None
    room = GMAIL_CLIP_BYTES - len(whole.html.encode()) - 20
    assert 0 < 1000 + room < 7000, room  # the filler can take up the rest
    project.add_article("filler.txt", "Filler\n\n" + "x" * (1000 + room))
    _ingest(project, store)
    config = project.configure(digest={"max_html_bytes": GMAIL_CLIP_BYTES})
    assert len(
        digest.preview(
            project.configure(digest={"max_html_bytes": 10_000_000}), store, NOW, sample_link=False
        ).html.encode()
    ) == (GMAIL_CLIP_BYTES - 20)

    outgoing = digest.preview(config, store, NOW, sample_link=False)

    assert outgoing is not None and digest.UNSUBSCRIBE_PLACEHOLDER in outgoing.html
    personal_link = "https://news.example.org/unsubscribe?s=" + "t" * 161
    assert len(personal_link) == 200
    personal = outgoing.personal(outgoing.html, personal_link)
    assert personal_link in personal
    assert len(personal.encode()) <= GMAIL_CLIP_BYTES
    assert "Story 10" in personal
