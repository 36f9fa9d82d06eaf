"""Articles not yet mailed -> one email digest: HTML and text from Jinja2, frozen as RFC 5322.

A digest is created once (:func:`create_next`) and stored with its whole message, so every
retry sends the same bytes with the same Message-ID. The HTML is kept under
``digest.max_html_bytes`` (Gmail clips at about 102 KB) by stepping down from full articles,
to summaries, to titles, to the first titles and a link for the rest.
"""

from __future__ import annotations

import email
import email.policy
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime, parseaddr
from typing import Any
from urllib.parse import urlsplit

import css_inline
import jinja2
import lxml.html
from markupsafe import Markup

from publisher.config import LIST_OWNERS, Config
from publisher.errors import ConfigError, RenderError
from publisher.links import absolute_html, article_url
from publisher.plaintext import to_text
from publisher.store import Article, Digest, Store

# Stands for each reader's own unsubscribe link in a digest for a local list or a list the
# provider keeps: delivery puts the personal link (or the provider's merge tag) in its place.
# A URL, so that it survives escaping, CSS inlining and header folding unchanged.
UNSUBSCRIBE_PLACEHOLDER = "https://unsubscribe.invalid/personal-link"
# Each reader's link can be much longer than the placeholder (a signed token, a provider's
# link), so the size limit keeps this much room for each occurrence of it.
PERSONAL_LINK_CHARS = 300
LONG_ARTICLE_BYTES = 8_000  # longer bodies go out as a summary and a link
PREHEADER_CHARS = 140
CONTENT_WIDTH = 536  # pixels inside the 600 px column; wider images are scaled down to it
_inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str
    message: bytes


@dataclass(frozen=True)
class Outgoing:
    """A stored digest as the delivery providers need it."""

    id: str
    subject: str
    sender: str
    to: tuple[str, ...]
    html: str
    text: str
    headers: dict[str, str]
    message: bytes
    articles: list[dict[str, str]]

    def personal(self, text: str, unsubscribe_url: str) -> str:
        """``text`` (a part or a header of this digest) with the reader's own unsubscribe link."""
        return text.replace(UNSUBSCRIBE_PLACEHOLDER, unsubscribe_url)


def since(config: Config, store: Store, now: datetime) -> datetime:
    """Articles older than this never go out: the backlog cutoff set by the first digest."""
    stored = store.setting("digest_since")
    return datetime.fromisoformat(stored) if stored else now - config.digest.backlog


def next_articles(config: Config, store: Store, now: datetime) -> list[Article]:
    """The articles the next digest holds: not mailed yet, no draft, none dated after ``now``."""
    return store.undigested_articles(since(config, store, now), now)


def create_next(config: Config, store: Store, now: datetime) -> Digest | None:
    """Freeze the next digest in the store (state pending); None when nothing is new."""
    articles = next_articles(config, store, now)
    if not articles:
        return None
    digest_id = new_digest_id(now)
    rendered = render(config, articles, digest_id=digest_id, now=now)
    store.set_setting_once("digest_since", since(config, store, now).isoformat())
    if not store.create_digest(digest_id, now, rendered.subject, rendered.message, [a.id for a in articles]):
        return None  # another publisher on this store took these articles first
    return store.digest(digest_id)


def new_digest_id(now: datetime) -> str:
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


def render(
    config: Config, articles: list[Article], *, digest_id: str, now: datetime, subject_prefix: str = ""
) -> Rendered:
    """Render subject, HTML and text, and build the complete message."""
    envs = _environments(config)
    site = {"title": config.site.title, "url": config.site.url, "language": config.site.language}
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
        "preheader": _preheader(articles),
    }
    # The HTML decides how much fits; the text part follows the level it settled on.
    for level in _levels(len(articles)):
        context = base | _article_context(config, articles, level)
        html = _inline(_render(envs.html, "digest.html.j2", context))
        if _size_for_readers(config, html, link) <= config.digest.max_html_bytes:
            break
    text = _render(envs.text, "digest.txt.j2", context)
    message = _message(config, digest_id, subject, html, text, now)
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
    return size


def unsubscribe_link(config: Config) -> str:
    """The link a digest is rendered with: the one configured, or the placeholder for a personal one."""
    if config.digest.recipients == "subscribers" or config.mailer.provider in LIST_OWNERS:
        return UNSUBSCRIBE_PLACEHOLDER
    return config.digest.unsubscribe_url


def outgoing(config: Config, store: Store, digest: Digest) -> Outgoing:
    """Read a stored digest back as the parts a mailing API wants."""
    return _outgoing(config, digest.id, digest.message, store.digest_articles(digest.id))


def preview(config: Config, store: Store, now: datetime, *, test: bool = False) -> Outgoing | None:
    """The next digest as it would go out, storing and marking nothing; None when nothing is new.

    That is the unsent digest if there is one, else one rendered from the articles not yet
    mailed. ``test`` renders it afresh with "[TEST]" before the subject.
    """
    pending = store.unsent_digest()
    if pending is not None and not test:
        return outgoing(config, store, pending)
    articles = store.digest_articles(pending.id) if pending is not None else next_articles(config, store, now)
    if not articles:
        return None
    digest_id = ("test-" if test else "") + new_digest_id(now)
    rendered = render(config, articles, digest_id=digest_id, now=now, subject_prefix="[TEST] " if test else "")
    return _outgoing(config, digest_id, rendered.message, articles)


def _outgoing(config: Config, digest_id: str, raw: bytes, articles: list[Article]) -> Outgoing:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    headers = {
        name: str(message[name]) for name in ("Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id")
    }
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
    )


# -- rendering ------------------------------------------------------------------------------

TEMPLATES = ("digest.html.j2", "digest.txt.j2")


def check_templates(config: Config) -> None:
    """Compile the subject and both templates, rendering nothing: a syntax error, an unknown
    filter or a missing template is a ConfigError before any work, not a failed digest after it."""
    envs = _environments(config)
    where = f"{config.path.name}: [digest]"
    try:
        envs.text.from_string(config.digest.subject)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{where} subject", f"not a valid template: {_one_line(exc.message)}") from None
    except jinja2.TemplateError as exc:
        raise ConfigError(f"{where} subject", f"not a valid template: {_one_line(str(exc))}") from None
    folder = "templates_dir"
    for env in (envs.html, envs.text):
        for name in TEMPLATES:
            try:
                env.get_template(name)
            except jinja2.TemplateNotFound:
                raise ConfigError(f"{where} {folder}", f"{name} not found in {_where(env)}") from None
            except jinja2.TemplateSyntaxError as exc:
                at = f"{exc.filename or name}:{exc.lineno}"
                raise ConfigError(f"{where} {folder}", f"{at}: {_one_line(exc.message)}") from None
            except jinja2.TemplateError as exc:
                raise ConfigError(f"{where} {folder}", f"{name}: {_one_line(str(exc))}") from None


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
    items = []
    for article in shown:
        full = level.bodies and len(article.body_html.encode()) <= LONG_ARTICLE_BYTES
        url = article_url(config.site, article)
        body = absolute_html(article.body_html, url) if full else ""
        plain = to_text(body)
        items.append(
            {
                "title": article.title,
                "url": url,
                "author": article.author or config.site.author,
                "published": article.published.astimezone(config.digest.timezone),
                "summary": article.summary if level.summaries else "",
                # body_html was sanitized by nh3 at ingest; Markup keeps autoescape from
                # escaping it a second time.
                "html": Markup(_fit_images(body)) if full else None,
                # The text part is made from the HTML too: body_text has no links.
                "text": plain.text if full else None,
                "links": plain.links,
            }
        )
    return {"articles": items, "more": len(articles) - len(shown)}


def _fit_images(html: str) -> str:
    """``html`` with every image given an alt text and no width over the column's.

    Outlook on Windows sizes images by their width attribute alone (the template's
    max-width:100% is for the other clients); an image without alt text is taken as
    decorative (alt="") rather than read out as its file name.
    """
    if "<img" not in html:
        return html
    wrapper = lxml.html.fragment_fromstring(html, create_parent="div")
    for image in wrapper.iter("img"):
        image.set("alt", image.get("alt") or "")
        width, height = _pixels(image.get("width")), _pixels(image.get("height"))
        if width is not None:  # a bare number: Outlook reads no "px"
            image.set("width", str(min(width, CONTENT_WIDTH)))
            if height is not None:
                image.set("height", str(round(height * min(width, CONTENT_WIDTH) / max(width, 1))))
    text = wrapper.text or ""
    return text + "".join(lxml.html.tostring(child, encoding="unicode") for child in wrapper)


def _pixels(value: str | None) -> int | None:
    """A width or height attribute in pixels ("480", "480px"); None for none or a percentage."""
    number = (value or "").strip().removesuffix("px")
    return int(number) if number.isascii() and number.isdigit() else None


def _preheader(articles: list[Article]) -> str:
    text = " · ".join(a.title for a in articles)
    return text if len(text) <= PREHEADER_CHARS else text[: PREHEADER_CHARS - 1].rsplit(" ", 1)[0] + "…"


class _VerbatimHeader(UnstructuredHeader, BaseHeader):
    """A header written as it is, however long: ``List-Unsubscribe: <URL>`` (RFC 2369).

    Python folds a word too long for a 78-character line by RFC 2047-encoding it, and an
    encoded URL is no URL to a mail client's unsubscribe button. RFC 5322 allows 998.
    """

    def fold(self, *, policy: Policy) -> str:
        line = f"{self.name}: {self}"
        if line.isascii() and len(line) <= 998:
            return line + policy.linesep
        return super().fold(policy=policy)


class _LiteralHeader(UnstructuredHeader, BaseHeader):
    """Text that reads back exactly as it was set: the Subject.

    Python's folder sometimes ends a line with a space and starts the next with one too, so
    the subject reads back with two spaces (or a leading one); such a subject goes out as
    RFC 2047 words of its own instead, which always read back whole.
    """

    def fold(self, *, policy: Policy) -> str:
        folded = super().fold(policy=policy)
        name, value = email.policy.default.header_source_parse(folded.splitlines(keepends=True))
        again = email.policy.default.header_fetch_parse(name, value)
        if str(again) == str(self) and not again.defects:
            return folded
        encoded = Header(str(self), "utf-8", header_name=self.name).encode(linesep=policy.linesep)
        return f"{self.name}: {encoded}{policy.linesep}"


def _policy() -> Policy:
    registry = HeaderRegistry()
    registry.map_to_type("list-unsubscribe", _VerbatimHeader)
    registry.map_to_type("subject", _LiteralHeader)
    policy: Policy = email.policy.SMTP.clone(header_factory=registry)
    return policy


POLICY = _policy()  # for every message built from a digest (personal copies too)


def header_text(text: str) -> str:
    """``text`` fit for an unstructured header: one line, and literal.

    Any line break, NEL or U+2028 becomes a space. ``=?`` gets a WORD JOINER: Python reads
    ``=?utf-8?q?...?=`` in a value it is given as an RFC 2047 encoded word and decodes it,
    so an article title could smuggle ``=0D=0ABcc:`` in and have it written out as a header
    line of its own (CVE-2024-6923, fixed in later Python releases); readers would see the
    decoded text instead of the title anyway.
    """
    return " ".join(text.split()).replace("=?", "=\u2060?")


def _message(config: Config, digest_id: str, subject: str, html: str, text: str, now: datetime) -> bytes:
    sender_domain = parseaddr(config.digest.sender)[1].rpartition("@")[2]
    host = urlsplit(config.site.url).hostname or sender_domain
    message = EmailMessage(policy=POLICY)
    message["Subject"] = header_text(subject)
    message["From"] = config.digest.sender
    message["To"] = ", ".join(config.digest.to)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<{digest_id}@{sender_domain}>"
    message["List-Id"] = f"{header_text(config.site.title)} <digest.{host}>"
    message["List-Unsubscribe"] = f"<{unsubscribe_link(config)}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message.as_bytes()
