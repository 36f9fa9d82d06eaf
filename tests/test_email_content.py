"""What every kind of digest must be to every mail client and every filter (issue 13).

SpamAssassin (Debian's package, installed by .ci/run) scores each kind with its local rules
only (``-L``: no network test) at 0.0. The rest reads the message back with the stdlib email
parser and lxml: direction and language per article, tables that keep their words and their
alignment, images that Outlook sizes, a preheader that does not repeat the subject, a text part
that keeps struck-out words and is not hard-wrapped, and a footer with the postal address.
"""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import subprocess
from email.message import EmailMessage

import lxml.html
import pytest

from publisher import digest
from publisher.store import Article
from tests.conftest import NOW, SAMPLE_TITLE, Project, missing
from tests.email_kinds import KINDS, make


def _parts(raw: bytes) -> tuple[EmailMessage, str, str]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    return message, str(html.get_content()), str(text.get_content()).replace("\r\n", "\n")


def _spamassassin() -> str:
    found = shutil.which("spamassassin")
    if found:
        return found
    missing(
        "SpamAssassin is not installed",
        under_ci=".ci/run must install Debian's spamassassin",
        elsewhere="apt-get install spamassassin to score the digests",
    )


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_digest_scores_zero_in_spamassassin(project: Project, kind: str) -> None:
    raw = make(project, kind)

    report = subprocess.run(
        [_spamassassin(), "-L", "-t"], input=raw, capture_output=True, timeout=120, check=False
    ).stdout.decode("utf-8", "replace")

    score = re.search(r"Content analysis details:\s+\((-?[\d.]+) points", report)
    assert score is not None, report[-2000:]
    rules = re.findall(r"^\s*(-?\d+\.\d+)\s+([A-Z0-9_]+)\s", report, flags=re.MULTILINE)
    assert float(score.group(1)) <= 0.0, f"{kind}: {rules}"
    assert "HTML_FONT_LOW_CONTRAST" not in report


# -- direction and language -----------------------------------------------------------------------


def _article(title: str, body: str, **meta: str) -> Article:
    return Article(
        id=1,
        key="k",
        slug="s",
        title=title,
        summary="",
        body_html=f"<p>{body}</p>",
        body_text=body,
        author=None,
        tags=[],
        format="md",
        published=NOW,
        updated=NOW,
        first_seen=NOW,
        meta=meta,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("title", "body", "meta", "expected"),
    [
        ("Hello", "Plain English text.", {}, "ltr"),
        ("مرحبا", "هذا نص عربي مع English words قليلة.", {}, "rtl"),
        ("שלום", "טקסט בעברית.", {}, "rtl"),
        ("ދިވެހި", "ދިވެހި ބަސް", {}, "rtl"),  # Thaana
        ("2026", "Numbers 12,304 and ~ marks", {"language": "ar"}, "rtl"),  # the language decides
        ("مرحبا", "نص", {"language": "az-Latn"}, "ltr"),
        ("Quote", "English", {"direction": "rtl"}, "rtl"),  # said outright, it wins
    ],
)
def test_an_articles_direction_comes_from_its_metadata_language_or_letters(
    title: str, body: str, meta: dict[str, str], expected: str
) -> None:
    assert digest.article_direction(_article(title, body, **meta)) == expected


def test_rtl_articles_carry_dir_and_lang_and_keep_their_byline_whole(project: Project) -> None:
    _, html, text = _parts(make(project, "rtl"))

    cells = {cell.findtext(".//h2/a"): cell for cell in lxml.html.document_fromstring(html).find_class("article")}
    arabic, hebrew, english = (
        cells["المجلس البلدي يوافق على حديقة جديدة"],
        cells["מועצת העיר אישרה פארק חדש"],
        cells[SAMPLE_TITLE],
    )
    assert (arabic.get("dir"), arabic.get("lang"), arabic.get("align")) == ("rtl", "ar", "right")
    assert (hebrew.get("dir"), hebrew.get("lang")) == ("rtl", "")  # its letters say rtl; its language unknown
    assert (english.get("dir"), english.get("lang")) == ("ltr", "en")
    assert "direction: rtl" in arabic.get("style") and "text-align: right" in arabic.get("style")
    # The byline's parts are isolated: "Ann Ode" and the date cannot swap places.
    assert [b.text_content() for b in arabic.find_class("meta")[0].iter("bdi")][:2] == ["Ann Ode", "23 Nov 2026"]
    # The text part: each line of an RTL article starts with RIGHT-TO-LEFT MARK; the byline isolated.
    section = text.split("المجلس البلدي يوافق على حديقة جديدة", 1)[1].split("=" * 72)[0]
    lines = [line for line in section.split("\n") if line and not line.startswith(("http", "Read on", "Links", "["))]
    assert lines and all(line.startswith("\u200f") for line in lines), lines
    assert "\u2068Ann Ode\u2069 · \u206823 Nov 2026\u2069" in section


# -- tables, images ---------------------------------------------------------------------------------


def test_tables_keep_their_words_numbers_and_column_alignment(project: Project) -> None:
    _, html, text = _parts(make(project, "tables"))

    page = lxml.html.document_fromstring(html)
    [table] = page.xpath("//div[@class='table-box']/table")  # the article's, not the layout's
    box = table.getparent()
    assert box.get("class") == "table-box" and "overflow-x: auto" in box.get("style")
    assert "table-layout" not in lxml.html.tostring(table, encoding="unicode")  # its columns fit their words
    head = [(th.text_content(), th.get("align"), th.get("scope")) for th in table.iter("th")]
    assert head == [
        ("District", "left", "col"),
        ("Voters", "right", "col"),
        ("Turnout", "center", "col"),
        ("Change since the last election", "right", "col"),
    ]
    for cell in table.iter("td", "th"):
        style = cell.get("style")
        assert "overflow-wrap: normal" in style and "word-break: normal" in style, style
    assert [td.get("align") for td in table.iter("td")][:4] == ["left", "right", "center", "right"]
    assert "Northern Riverside | 12,304 | 61.2% | +3.4" in text


def test_every_image_has_a_width_attribute_for_outlook(project: Project) -> None:
    _, html, _ = _parts(make(project, "tables"))

    [image] = [i for i in lxml.html.document_fromstring(html).iter("img") if "map.png" in i.get("src")]

    assert image.get("width") == str(digest.CONTENT_WIDTH)  # Outlook for Windows reads this alone
    assert "width:auto" in image.get("style").replace(" ", "")  # the others: natural size, at most 100%
    assert image.get("alt") == "The map of the districts"


# -- the head, the preheader, the subject ----------------------------------------------------------


def test_the_head_is_valid_html_and_the_preheader_is_padded_and_not_the_title(project: Project) -> None:
    message, html, _ = _parts(make(project, "default"))

    assert "xmlns:v" not in html.split("<!--[if mso]>")[0] and "xmlns:o=" not in html.split("<head")[0]
    page = lxml.html.document_fromstring(html)
    for meta in page.iter("meta"):
        assert meta.get("charset") or meta.get("content"), lxml.html.tostring(meta)
    [preheader] = page.find_class("preheader")
    style = preheader.get("style").replace(" ", "")
    assert "color:" not in style  # HTML_FONT_LOW_CONTRAST: no colour the same as the background
    assert "display:none" in style
    shown = preheader.text_content()
    assert shown.endswith(digest.PREHEADER_PADDING)
    assert SAMPLE_TITLE not in shown  # the subject has the title; the snippet says something else
    assert message["List-Unsubscribe"] is not None


def test_the_default_subject_names_the_lead_article_and_the_count(project: Project) -> None:
    del project.settings["digest"]["subject"]
    project.configure()

    message, _, _ = _parts(make(project, "many"))

    # The newest article leads (the sample, dated just before NOW), then how many more there are.
    assert str(message["Subject"]) == f"{SAMPLE_TITLE} (+30 more) · Example News"


def test_titles_look_like_links_and_each_article_links_to_the_site(project: Project) -> None:
    _, html, text = _parts(make(project, "default"))

    page = lxml.html.document_fromstring(html)
    [title] = page.find_class("title")
    link = title.find("a")
    assert "text-decoration: underline" in link.get("style") and "#1d4ed8" in link.get("style")
    more = [a for a in page.iter("a") if a.text_content() == "Read on Example News"]
    assert len(more) == 1 and more[0].get("href") == link.get("href")
    assert f"Read on Example News: {link.get('href')}" in text


# -- the text part -----------------------------------------------------------------------------------


def test_the_text_part_keeps_struck_words_is_not_hard_wrapped_and_has_single_blank_lines(
    project: Project,
) -> None:
    project.add_article(
        "struck.md", "---\ntitle: Release notes\ndate: 2026-11-23\n---\nWe fixed a few ~~bugs~~ features.\n"
    )
    _, _, text = _parts(make(project, "many"))

    assert "a few ~~bugs~~ features" in text
    paragraph = next(line for line in text.split("\n") if line.startswith("Story 3 tells"))
    assert len(paragraph) > 500  # one line per paragraph: each client wraps it to its window
    assert "\n\n\n" not in text


def test_the_footer_has_the_postal_address_the_mailto_and_the_web_copy(project: Project) -> None:
    project.configure(
        digest={
            "postal_address": "Example News, 1 Harbour Street,\n  Springfield 12345",
            "unsubscribe_mailto": "u@example.org",
        }
    )
    config = project.config()
    from contextlib import closing

    from tests.conftest import ingest_folder

    with closing(project.open_store()) as store:
        ingest_folder(project, store)
        created = digest.create_next(config, store, NOW)
    assert created is not None
    _, html, text = _parts(created.message)

    [footer] = lxml.html.document_fromstring(html).find_class("footer")
    assert "Example News, 1 Harbour Street, Springfield 12345" in footer.text_content()
    assert "Example News, 1 Harbour Street, Springfield 12345" in text
    assert "mailto:u@example.org?subject=unsubscribe" in html and "u@example.org" in text
    view = f"https://news.example.org/feeds/issues/{created.id}.html"
    assert f'href="{view}"' in html and f"View in your browser: {view}" in text


# -- reading time and lead image -------------------------------------------------------------------

LEAD = """---
title: The new park
date: 2026-11-24 06:00
image:
  url: /images/park.jpg
  alt: The park at dawn
---
{body}
"""


def _lead_cell(project: Project) -> tuple[lxml.html.HtmlElement, str]:
    project.add_article("park.md", LEAD.format(body="word " * 700))
    _, html, text = _parts(make(project, "default"))
    cells = lxml.html.document_fromstring(html).find_class("article")
    return next(c for c in cells if c.findtext(".//h2/a") == "The new park"), text


def test_an_article_shows_its_reading_time_and_its_lead_image(project: Project) -> None:
    cell, text = _lead_cell(project)

    assert "4 min read" in cell.find_class("meta")[0].text_content()  # 700 words at 230 a minute
    [lead] = cell.find_class("lead")
    image = lead.find(".//img")
    assert (image.get("src"), image.get("alt"), image.get("width")) == (
        "https://news.example.org/images/park.jpg",
        "The park at dawn",
        str(digest.CONTENT_WIDTH),
    )
    assert "The new park\n" in text and "4 min read" in text


def test_reading_time_and_lead_images_can_be_switched_off(project: Project) -> None:
    project.configure(digest={"reading_time": False, "lead_images": False})

    cell, text = _lead_cell(project)

    assert "min read" not in cell.text_content() and "min read" not in text
    assert not cell.find_class("lead") and not list(cell.iter("img"))
