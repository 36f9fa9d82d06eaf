"""Articles not yet mailed -> one email digest: HTML and text from Jinja2, frozen as RFC 5322.

A digest is created once (:func:`create_next`) and stored with its whole message, so every
retry sends the same bytes with the same Message-ID. The HTML is kept under
``digest.max_html_bytes`` (Gmail clips at about 102 KB) by stepping down from full articles,
to summaries, to titles, to the first titles and a link for the rest.
"""

from __future__ import annotations

import email
import email.policy
import math
import secrets
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any
from urllib.parse import urljoin, urlsplit

import css_inline
import jinja2
import lxml.html
from markupsafe import Markup, escape

from publisher.config import DEFAULT_DIGEST, LIST_OWNERS, Config
from publisher.errors import ConfigError, RenderError
from publisher.links import absolute_html, article_url
from publisher.message import POLICY, PREFERENCES_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER, Outgoing, header_text
from publisher.plaintext import to_text
from publisher.store import Article, Digest, Store
from publisher.store.send import SendStore
from publisher.subscribers import Links

# Each reader's link can be much longer than the placeholder (a signed token, a provider's
# link), so the size limit keeps this much room for each occurrence of it.
PERSONAL_LINK_CHARS = 300
LONG_ARTICLE_BYTES = 8_000  # longer bodies go out as a summary and a link
PREHEADER_CHARS = 140
# After the preheader, invisible characters fill the inbox snippet, which would otherwise go on
# with the email's first words (the masthead, the title again). FIGURE SPACE and a zero-width
# non-joiner: neither is collapsed as white space, and neither shows.
PREHEADER_PADDING = "\u2007\u200c" * 90
WORDS_PER_MINUTE = 230
# Languages written right to left (BCP 47 primary subtags).
RTL_LANGUAGES = frozenset(
    {"ar", "arc", "ckb", "dv", "fa", "he", "iw", "ks", "ku-arab", "nqo", "ps", "sd", "syr", "ug", "ur", "yi"}
)
CONTENT_WIDTH = 536  # pixels inside the 600 px column; wider images are scaled down to it
_inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str
    message: bytes


def since_setting(name: str) -> str:
    """The store setting holding digest ``name``'s backlog cutoff (the single [digest]'s as ever)."""
    return "digest_since" if name == DEFAULT_DIGEST else f"digest_since:{name}"


def since(config: Config, store: Store, now: datetime) -> datetime:
    """Articles older than this never go out: the backlog cutoff set by the first digest."""
    stored = store.setting(since_setting(config.digest.name))
    return datetime.fromisoformat(stored) if stored else now - config.digest.backlog


def next_articles(config: Config, store: Store, now: datetime) -> list[Article]:
    """The articles the next digest holds: not in a digest of its name yet, taken by its
    filter (tags, sources), no draft, none dated after ``now``."""
    wanted = config.digest
    found = store.undigested_articles(since(config, store, now), now, wanted.name)
    return [a for a in found if wanted.takes(a.tags, a.key)]


def create_next(config: Config, store: Store, now: datetime) -> Digest | None:
    """Freeze the next digest in the store (state pending); None when nothing is new."""
    articles = next_articles(config, store, now)
    if not articles:
        return None
    name = config.digest.name
    digest_id = new_digest_id(now, name)
    rendered = render(config, articles, digest_id=digest_id, now=now, view_url=issue_url(config, digest_id))
    store.set_setting_once(since_setting(name), since(config, store, now).isoformat())
    if not store.create_digest(digest_id, now, rendered.subject, rendered.message, [a.id for a in articles], name):
        return None  # another publisher on this store took these articles first
    return store.digest(digest_id)


def new_digest_id(now: datetime, name: str = DEFAULT_DIGEST) -> str:
    """A new digest's id: the time and a random part; another digest than the single
    [digest] ("digest") has its name in front (weekly-20261124-070000-3fa2c1d0)."""
    stamp = f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"
    return stamp if name == DEFAULT_DIGEST else f"{name}-{stamp}"


def issue_url(config: Config, digest_id: str) -> str | None:
    """The public URL of the digest's web copy (publisher.archive); None without an archive."""
    return f"{config.feed.base_url}issues/{digest_id}.html" if config.digest.archive else None


def render(
    config: Config,
    articles: list[Article],
    *,
    digest_id: str,
    now: datetime,
    subject_prefix: str = "",
    view_url: str | None = None,
    test: bool = False,
) -> Rendered:
    """Render subject, HTML and text, and build the complete message.

    ``view_url`` is the web copy's address ("view in browser"); ``test`` marks a test send,
    which goes out without the one-click unsubscribe header (its link is nobody's own).
    """
    envs = _environments(config)
    site = {
        "title": config.site.title,
        "url": config.site.url,
        "language": config.site.language,
        "direction": language_direction(config.site.language) or "ltr",
    }
    try:
        rendered = envs.text.from_string(config.digest.subject).render(site=site, articles=articles)
        subject = subject_prefix + " ".join(rendered.split())
    except jinja2.TemplateError as exc:
        raise RenderError(f"{config.path}: [digest] subject: {exc}") from exc
    local_now = now.astimezone(config.digest.timezone)
    link = unsubscribe_link(config)
    base: dict[str, Any] = {
        "site": site,
        "subject": subject,
        "digest": {"id": digest_id, "date": local_now},
        "unsubscribe_url": link,
        "preferences_url": preferences_link(config),
        "unsubscribe_mailto": config.digest.unsubscribe_mailto,
        "postal_address": config.digest.postal_address,
        "view_url": view_url,
        "preheader": _preheader(articles),
        "preheader_padding": PREHEADER_PADDING,
    }
    # The HTML decides how much fits; the text part follows the level it settled on.
    for level in _levels(len(articles)):
        context = base | _article_context(config, articles, level)
        html = _inline(_render(envs.html, "digest.html.j2", context))
        if _size_for_readers(config, html, link) <= config.digest.max_html_bytes:
            break
    text = _render(envs.text, "digest.txt.j2", context)
    one_click = config.digest.recipients == "subscribers" and not test
    message = _message(config, digest_id, subject, html, text, now, one_click=one_click)
    return Rendered(subject=subject, html=html, text=text, message=message)


def _size_for_readers(config: Config, html: str, link: str) -> int:
    """The bytes of ``html`` as a reader gets it.

    The MIME part carries it with CRLF line ends, and with the reader's own unsubscribe link
    (or a provider's) in place of the placeholder.
    """
    size = len(html.encode()) + html.count("\n")
    if link == UNSUBSCRIBE_PLACEHOLDER:
        # A local list's link is unsubscribe_url?s=TOKEN&t=SIGNATURE, some 75 characters longer.
        personal = max(PERSONAL_LINK_CHARS, len(config.digest.unsubscribe_url) + 100)
        size += html.count(UNSUBSCRIBE_PLACEHOLDER) * (personal - len(UNSUBSCRIBE_PLACEHOLDER))
        mine = len(config.digest.preferences_url) + 100  # the same token and signature
        size += html.count(PREFERENCES_PLACEHOLDER) * (mine - len(PREFERENCES_PLACEHOLDER))
    return size


def unsubscribe_link(config: Config) -> str:
    """The link a digest is rendered with: the one configured, or the placeholder for a personal one."""
    if config.digest.recipients == "subscribers" or config.mailer.provider in LIST_OWNERS:
        return UNSUBSCRIBE_PLACEHOLDER
    return config.digest.unsubscribe_url


def preferences_link(config: Config) -> str:
    """The footer's preferences link: a placeholder for each reader's own, with a local list
    and [digest] preferences_url; "" (no link) otherwise."""
    if config.digest.recipients == "subscribers" and config.digest.preferences_url:
        return PREFERENCES_PLACEHOLDER
    return ""


def outgoing(config: Config, store: SendStore, digest: Digest) -> Outgoing:
    """Read a stored digest back as the parts a mailing API wants."""
    return _outgoing(config, digest.id, digest.message, store.digest_articles(digest.id))


def preview(
    config: Config, store: Store, now: datetime, *, test: bool = False, sample_link: bool = True
) -> Outgoing | None:
    """The next digest as it would go out, storing and marking nothing; None when nothing is new.

    That is the unsent digest if there is one, else one rendered from the articles not yet
    mailed. ``test`` renders it afresh with "[TEST]" before the subject, for a test send.
    Otherwise, with ``sample_link``, a personal unsubscribe link shows as a reader would see
    one (signed with no real secret, for no real reader).
    """
    pending = store.unsent_digest(config.digest.name)
    if pending is not None and not test:
        return _with_sample_link(config, outgoing(config, store, pending), sample_link)
    articles = store.digest_articles(pending.id) if pending is not None else next_articles(config, store, now)
    if not articles:
        return None
    digest_id = ("test-" if test else "") + new_digest_id(now, config.digest.name)
    rendered = render(
        config,
        articles,
        digest_id=digest_id,
        now=now,
        subject_prefix="[TEST] " if test else "",
        view_url=None if test else issue_url(config, digest_id),
        test=test,
    )
    shown = _outgoing(config, digest_id, rendered.message, articles)
    return shown if test else _with_sample_link(config, shown, sample_link)


SAMPLE_TOKEN = "preview-only"  # no subscriber has it: token_urlsafe(18) is 24 characters


def _with_sample_link(config: Config, shown: Outgoing, sample: bool) -> Outgoing:
    if not sample or UNSUBSCRIBE_PLACEHOLDER not in shown.html:
        return shown
    link = Links(config.digest.unsubscribe_url, b"no secret: a preview").url(SAMPLE_TOKEN)
    message = email.message_from_bytes(shown.message, policy=POLICY)
    copy = EmailMessage(policy=POLICY)
    for name, value in message.items():
        if not name.lower().startswith(("content-", "mime-")):
            copy[name] = shown.personal(str(value), link)
    html, text = shown.personal(shown.html, str(escape(link))), shown.personal(shown.text, link)
    copy.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    copy.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    headers = {name: shown.personal(value, link) for name, value in shown.headers.items()}
    return replace(shown, html=html, text=text, headers=headers, message=copy.as_bytes())


def _outgoing(config: Config, digest_id: str, raw: bytes, articles: list[Article]) -> Outgoing:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    names = ("Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id")
    headers = {name: str(message[name]) for name in names if message[name] is not None}
    return Outgoing(
        id=digest_id,
        subject=str(message["Subject"]),
        sender=str(message["From"]),
        to=config.digest.to,
        html=html_part.get_content(),
        text=text_part.get_content(),
        headers=headers,
        message=raw,
        articles=[{"id": a.key, "title": a.title, "url": article_url(config.site, a)} for a in articles],
        preferences_url=config.digest.preferences_url,
    )


# -- rendering ------------------------------------------------------------------------------

TEMPLATES = ("digest.html.j2", "digest.txt.j2")


def check_templates(config: Config) -> None:
    """Compile the subject and both templates, rendering nothing: a syntax error, an unknown
    filter or a missing template is a ConfigError before any work, not a failed digest after it."""
    envs = _environments(config)
    where = config.digest_where()
    try:
        envs.text.from_string(config.digest.subject)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{where}subject", f"not a valid template: {_one_line(exc.message)}") from None
    except jinja2.TemplateError as exc:
        raise ConfigError(f"{where}subject", f"not a valid template: {_one_line(str(exc))}") from None
    folder = "templates_dir"
    for env in (envs.html, envs.text):
        for name in TEMPLATES:
            try:
                env.get_template(name)
            except jinja2.TemplateNotFound:
                raise ConfigError(f"{where}{folder}", f"{name} not found in {_where(env)}") from None
            except jinja2.TemplateSyntaxError as exc:
                at = f"{exc.filename or name}:{exc.lineno}"
                raise ConfigError(f"{where}{folder}", f"{at}: {_one_line(exc.message)}") from None
            except jinja2.TemplateError as exc:
                raise ConfigError(f"{where}{folder}", f"{name}: {_one_line(str(exc))}") from None


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


@dataclass(frozen=True)
class _Envs:
    html: jinja2.Environment
    text: jinja2.Environment


def _environments(config: Config) -> _Envs:
    loader: jinja2.BaseLoader
    if config.digest.templates_dir is not None:
        loader = jinja2.FileSystemLoader(config.digest.templates_dir)
    else:
        loader = jinja2.PackageLoader("publisher.templates", ".")
    common: dict[str, Any] = {
        "loader": loader,
        "undefined": jinja2.StrictUndefined,
        "keep_trailing_newline": True,
        "trim_blocks": True,
        "lstrip_blocks": True,
    }
    return _Envs(
        html=jinja2.Environment(autoescape=True, **common), text=jinja2.Environment(autoescape=False, **common)
    )


def _render(env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template {exc.name} not found in {_where(env)}") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"{exc.filename or name}:{exc.lineno}: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        raise RenderError(f"{name}: {exc}") from exc


def _where(env: jinja2.Environment) -> str:
    loader = env.loader
    if isinstance(loader, jinja2.FileSystemLoader):
        return ", ".join(map(str, loader.searchpath))
    return "the templates shipped with publisher"


def _inline(html: str) -> str:
    try:
        return _inliner.inline(html)
    except ValueError as exc:
        raise RenderError(f"digest.html.j2: CSS could not be inlined: {exc}") from exc


@dataclass(frozen=True)
class _Level:
    """How much of each article fits: full body, summary only, title only; ``shown`` titles."""

    bodies: bool
    summaries: bool
    shown: int


def _levels(count: int) -> list[_Level]:
    levels = [_Level(True, True, count), _Level(False, True, count), _Level(False, False, count)]
    shown = count // 2
    while shown >= 1:
        levels.append(_Level(False, False, shown))
        shown //= 2
    return levels


def _article_context(config: Config, articles: list[Article], level: _Level) -> dict[str, Any]:
    shown = articles[: level.shown]
    site_direction = language_direction(config.site.language) or "ltr"
    items = []
    for article in shown:
        full = level.bodies and len(article.body_html.encode()) <= LONG_ARTICLE_BYTES
        url = article_url(config.site, article)
        body = absolute_html(article.body_html, url) if full else ""
        plain = to_text(body, width=UNWRAPPED)
        direction = article_direction(article)
        published = article.published.astimezone(config.digest.timezone)
        minutes = reading_minutes(article) if config.digest.reading_time else None
        language = article.meta.get("language") or (config.site.language if direction == site_direction else "")
        mark = "\u200f" if direction == "rtl" else "\u200e" if site_direction == "rtl" else ""
        image = _lead_image(config, article, url, body) if level.summaries else None
        items.append(
            {
                "title": article.title,
                "url": url,
                "author": article.author or config.site.author,
                "published": published,
                "summary": article.summary if level.summaries else "",
                # body_html was sanitized by nh3 at ingest; Markup keeps autoescape from
                # escaping it a second time.
                "html": Markup(_for_email(body, direction)) if full else None,
                # The text part is made from the HTML too: body_text has no links.
                "text": _marked(plain.text, mark) if full else None,
                "links": plain.links,
                "direction": direction,
                "language": language,
                "align": "right" if direction == "rtl" else "left",
                # Starts each line of the text part, so that a client that guesses a paragraph's
                # direction from its first letter guesses right (an Arabic line starting "2026").
                "mark": mark,
                "minutes": minutes,
                "byline": _byline(article.author or config.site.author, published, minutes, isolate=bool(mark)),
                "image": image,
            }
        )
    return {"articles": items, "more": len(articles) - len(shown)}


UNWRAPPED = 1_000_000  # the text part is not hard-wrapped: each client wraps it to its window


def _byline(author: str, published: datetime, minutes: int | None, *, isolate: bool) -> str:
    """The text part's byline; where right-to-left text is about, each part isolated (FSI ...
    PDI), so that a Latin name beside an Arabic date, or the reverse, keeps its place."""
    parts = [author, published.strftime("%d %b %Y")] + ([f"{minutes} min read"] if minutes else [])
    return " · ".join(f"\u2068{part}\u2069" if isolate else part for part in parts)


def _marked(text: str, mark: str) -> str:
    if not mark:
        return text
    return "\n".join(mark + line if line else line for line in text.split("\n"))


def reading_minutes(article: Article) -> int:
    """Minutes to read the whole article, at an adult's silent reading speed; at least 1."""
    return max(1, math.ceil(len(article.body_text.split()) / WORDS_PER_MINUTE))


def language_direction(language: str | None) -> str | None:
    """ "rtl" or "ltr" for a BCP 47 tag (its script subtag first: az-Arab); None for none."""
    if not language:
        return None
    parts = language.lower().replace("_", "-").split("-")
    scripts = {"arab", "hebr", "syrc", "thaa", "nkoo", "adlm", "rohg"}
    if any(part in scripts for part in parts[1:]):
        return "rtl"
    if any(len(part) == 4 and part.isalpha() for part in parts[1:]):
        return "ltr"  # a script subtag of another script: sr-Latn, ku-Latn
    return "rtl" if parts[0] in RTL_LANGUAGES else "ltr"


def article_direction(article: Article) -> str:
    """ "rtl" or "ltr": the article's own, else its language's, else its letters'.

    Letters decide when nothing else does: right-to-left ones (Arabic, Hebrew, Syriac, Thaana,
    N'Ko) outnumbering left-to-right ones in the title and the start of the text.
    """
    meta = article.meta
    if meta.get("direction") in ("ltr", "rtl"):
        return meta["direction"]
    by_language = language_direction(meta.get("language"))
    if by_language is not None:
        return by_language
    return script_direction(article.title + " " + article.body_text[:4000])


def script_direction(text: str) -> str:
    rtl = ltr = 0
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            rtl += 1
        elif kind == "L":
            ltr += 1
    return "rtl" if rtl > ltr else "ltr"


def _lead_image(config: Config, article: Article, url: str, body: str) -> dict[str, str] | None:
    """The article's lead image (its metadata's), unless the body shows it already."""
    if not config.digest.lead_images or not article.meta.get("image"):
        return None
    src = urljoin(url, article.meta["image"])
    if urlsplit(src).scheme not in ("http", "https") or src in body:
        return None
    return {"src": src, "alt": " ".join(article.meta.get("image_alt", "").split())}


def _for_email(html: str, direction: str) -> str:
    """``html`` made fit for mail clients.

    Every image gets an alt text and a width attribute no wider than the column: Outlook on
    Windows sizes images by that attribute alone (the template's max-width:100% is for the
    other clients), and shows one without it at its natural size; an image with no width of
    its own gets the column's, and "width:auto" for the clients that read CSS, so a small one
    stays small there. An image without alt text is taken as decorative (alt=""), not read out
    as its file name. A table sits in a box that scrolls sideways on a phone rather than
    squeezing its cells until words and numbers break; its cells keep their column's
    alignment (as the align attribute too, for Outlook), and header cells say what they head.
    """
    if "<img" not in html and "<table" not in html:
        return html
    wrapper = lxml.html.fragment_fromstring(html, create_parent="div")
    for image in wrapper.iter("img"):
        image.set("alt", image.get("alt") or "")
        width, height = _pixels(image.get("width")), _pixels(image.get("height"))
        if width is not None:  # a bare number: Outlook reads no "px"
            image.set("width", str(min(width, CONTENT_WIDTH)))
            if height is not None:
                image.set("height", str(round(height * min(width, CONTENT_WIDTH) / max(width, 1))))
        elif image.get("width") is None:
            image.set("width", str(CONTENT_WIDTH))
            image.attrib.pop("height", None)
            image.set("style", "width:auto")
    for table in list(wrapper.iter("table")):
        for cell in table.iter("td", "th"):
            align = _alignment(cell.get("style"), cell.get("align"))
            cell.attrib.pop("style", None)
            if align:
                cell.set("align", align)
                cell.set("style", f"text-align:{align}")
            if cell.tag == "th" and not cell.get("scope"):
                row = cell.getparent()
                in_head = row is not None and row.getparent() is not None and row.getparent().tag == "thead"
                first_row = row is not None and all(c.tag == "th" for c in row if isinstance(c.tag, str))
                cell.set("scope", "col" if in_head or first_row else "row")
        if not any(ancestor.tag == "table" for ancestor in table.iterancestors()):
            box = lxml.html.Element("div", {"class": "table-box"})
            table.addprevious(box)
            box.append(table)  # moves it, with its tail: the box takes the table's place
            box.tail, table.tail = table.tail, None
    text = wrapper.text or ""
    return text + "".join(lxml.html.tostring(child, encoding="unicode") for child in wrapper)


def _alignment(style: str | None, align: str | None) -> str | None:
    """left, center or right, from text-align in ``style`` or the align attribute."""
    for declaration in (style or "").split(";"):
        name, _, value = declaration.partition(":")
        if name.strip().lower() == "text-align":
            align = value
    value = (align or "").strip().lower()
    return value if value in ("left", "center", "right") else None


def _pixels(value: str | None) -> int | None:
    """A width or height attribute in pixels ("480", "480px"); None for none or a percentage."""
    number = (value or "").strip().removesuffix("px")
    return int(number) if number.isascii() and number.isdigit() else None


def _preheader(articles: list[Article]) -> str:
    """What the inbox shows after the subject: not the lead title again (the subject has it),
    but what the lead article is about, then the other titles."""
    lead = articles[0]
    about = " ".join((lead.summary or lead.body_text).split())
    parts = [about] if about and about != lead.title else []
    parts += [a.title for a in articles[1:]]
    text = " · ".join(parts) or lead.title
    return text if len(text) <= PREHEADER_CHARS else text[: PREHEADER_CHARS - 1].rsplit(" ", 1)[0] + "…"


def list_unsubscribe(config: Config, url: str) -> str:
    """The List-Unsubscribe value (RFC 2369): the https link, and the mailto address if any."""
    mailto = config.digest.unsubscribe_mailto
    return f"<{url}>, <mailto:{mailto}?subject=unsubscribe>" if mailto else f"<{url}>"


def _message(
    config: Config, digest_id: str, subject: str, html: str, text: str, now: datetime, *, one_click: bool
) -> bytes:
    sender_domain = parseaddr(config.digest.sender)[1].rpartition("@")[2]
    host = urlsplit(config.site.url).hostname or sender_domain
    message = EmailMessage(policy=POLICY)
    message["Subject"] = header_text(subject)
    message["From"] = config.digest.sender
    message["To"] = ", ".join(config.digest.to)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<{digest_id}@{sender_domain}>"
    message["List-Id"] = f"{header_text(config.site.title)} <digest.{host}>"
    message["List-Unsubscribe"] = list_unsubscribe(config, unsubscribe_link(config))
    if one_click:  # the link unsubscribes the reader it goes to, with no page to confirm on
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message.as_bytes()
