"""Read and check ``publisher.toml`` before any work is done.

Every problem is reported as a :class:`ConfigError` naming the key, e.g.
``publisher.toml: [digest] schedule: not a crontab line: ...``. Relative paths resolve
against the folder of the config file, so ``publisher --config /srv/news/publisher.toml``
works from any working directory.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from publisher import crontab
from publisher.errors import ConfigError

PROVIDERS = ("outbox", "webhook", "mailgun", "sendgrid", "postmark", "ses", "resend", "listmonk", "buttondown")
# Providers that keep the subscriber list themselves: the digest goes to their list, not to
# [digest] to or the local subscribers.
LIST_OWNERS = ("listmonk", "buttondown")
_API_URLS = {
    "mailgun": "https://api.mailgun.net",
    "sendgrid": "https://api.sendgrid.com",
    "postmark": "https://api.postmarkapp.com",
    "resend": "https://api.resend.com",
    "buttondown": "https://api.buttondown.com",
}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class SiteConfig:
    title: str
    url: str
    author: str
    language: str = "en"
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    article_path: str = "{slug}/"


FEED_FORMATS = ("atom", "rss", "json")
ARTICLE_MAX_BYTES = 20_000_000  # [articles] max_bytes: far above any written article, 10 MB ones included
# The article is held in memory, parsed, and stored whole (SQLite and bytea cap a value at 1 GB).
ARTICLE_MAX_BYTES_LIMIT = 100_000_000


@dataclass(frozen=True)
class FeedConfig:
    dir: Path
    url: str  # the Atom feed's public URL; the other documents sit beside it
    max_entries: int
    formats: tuple[str, ...]
    tag_feeds: bool
    archives: bool
    hubs: tuple[str, ...]
    stylesheet: bool
    content: str = "full"  # "full": each entry's whole body; "summary": the summary and a link
    icon: str = ""  # absolute URLs ("" = none): a small square icon (favicon), a larger logo
    logo: str = ""
    subtitle: str = ""
    rights: str = ""  # e.g. "© 2026 Example News, CC BY 4.0"
    generator_uri: str = ""  # the generator's home page, if the site wants it named
    podcast: bool = False  # iTunes tags for the articles with audio (feedgen's podcast extension)
    podcast_category: str = ""  # an Apple Podcasts category, e.g. "News"
    podcast_explicit: bool = False
    podcast_email: str = ""  # itunes:owner: where Apple writes about the podcast (not shown)

    @property
    def base_url(self) -> str:
        """The public URL of the feeds folder."""
        return self.url.rsplit("/", 1)[0] + "/"


@dataclass(frozen=True)
class BucketConfig:
    """[bucket]: an S3-compatible bucket the cluster's daemons also put the feeds in (publisher.bucket)."""

    name: str
    url: str  # the endpoint: https://s3.<region>.amazonaws.com, or a compatible service's
    region: str
    prefix: str  # before every key: "feeds/" puts atom.xml at feeds/atom.xml


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    cache_seconds: int


@dataclass(frozen=True)
class DigestConfig:
    schedule: str
    timezone: ZoneInfo
    subject: str
    sender: str
    to: tuple[str, ...]
    unsubscribe_url: str
    recipients: str  # "to": the [digest] to addresses; "subscribers": the local list
    secret_env: str  # HMAC secret for personal unsubscribe links (local list only)
    backlog: timedelta
    templates_dir: Path | None
    max_html_bytes: int
    # The sender's postal address, in every footer (CAN-SPAM wants one in commercial mail).
    postal_address: str = ""
    # An address that unsubscribes whoever writes to it, offered beside the link ("" = none).
    unsubscribe_mailto: str = ""
    # Each sent digest as a web page (feeds/issues/), linked from the email as "view in browser".
    archive: bool = True
    reading_time: bool = True  # "4 min read" beside each article's date
    lead_images: bool = True  # each article's lead image (ArticleMeta image) above its text


@dataclass(frozen=True)
class MailerConfig:
    provider: str
    outbox_dir: Path
    url: str
    api_key_env: str
    domain: str
    timeout: float
    retries: int  # quick retries within one run
    max_retry_seconds: float  # and the most time they may take
    max_attempts: int  # runs that may try a batch before it is failed
    rate: float  # messages (recipients) per second; 0 = no limit
    concurrency: int  # requests in flight at once
    batch_size: int  # recipients per request; 0 = the provider's own limit
    message_stream: str  # postmark
    region: str  # ses
    lists: tuple[int, ...]  # listmonk list ids
    username: str  # listmonk API user

    def api_key(self) -> str | None:
        """The secret, read from the environment at the moment it is needed."""
        return os.environ.get(self.api_key_env) or None


@dataclass(frozen=True)
class Config:
    path: Path
    site: SiteConfig
    store_url: str
    articles_dir: Path
    feed: FeedConfig
    refresh_minutes: int
    server: ServerConfig
    digest: DigestConfig
    mailer: MailerConfig
    # [articles] follow_symlinks: follow symlinks that leave the articles folder (see ingest.walk)
    follow_symlinks: bool = False
    # [articles] max_bytes: a bigger article file is refused, after reading at most this + 1 bytes
    max_bytes: int = ARTICLE_MAX_BYTES
    # [daemon] stall_seconds: a cluster daemon silent this long is taken for dead (publisher.cluster)
    stall_seconds: int = 30
    bucket: BucketConfig | None = None  # [bucket] name set: the feeds go to the bucket too


class _Table:
    """One ``[section]`` of the file: typed getters that name the key on error."""

    def __init__(self, file: str, name: str, data: dict[str, Any], known: frozenset[str]) -> None:
        self.file, self.name, self.data = file, name, data
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(self.where(unknown[0]), "unknown key (check the spelling)")

    def where(self, key: str) -> str:
        return f"{self.file}: [{self.name}] {key}"

    def _get(self, key: str, kind: type, default: Any) -> Any:
        if key not in self.data:
            if default is _REQUIRED:
                raise ConfigError(self.where(key), "missing (this key is required)")
            return default
        value = self.data[key]
        # bool is an int in Python; a setting that wants a number must not take `true`.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            expected = {str: "a string", int: "an integer", list: "a list", bool: "true or false"}
            got = type(value).__name__
            raise ConfigError(self.where(key), f"expected {expected.get(kind, kind)}, got {got}")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        value: str = self._get(key, str, _REQUIRED if default is None else default)
        return value

    def integer(self, key: str, default: int, minimum: int = 0, maximum: int = 10**9) -> int:
        """An integer within bounds the program can run with (TOML integers go up to 2**63)."""
        value: int = self._get(key, int, default)
        if value < minimum:
            raise ConfigError(self.where(key), f"must be at least {minimum}, got {value}")
        if value > maximum:
            raise ConfigError(self.where(key), f"must be at most {maximum:,}, got {value:,}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value: bool = self._get(key, bool, default)
        return value

    def number(self, key: str, default: float) -> float:
        value = self.data.get(key, default)
        # TOML has nan and inf; neither is a usable timeout.
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ConfigError(self.where(key), f"expected a positive number, got {value!r}")
        return float(value)

    def str_list(self, key: str) -> tuple[str, ...]:
        value = self._get(key, list, _REQUIRED)
        if not value or not all(isinstance(item, str) and item.strip() for item in value):
            raise ConfigError(self.where(key), "expected a non-empty list of strings")
        return tuple(value)

    def path(self, key: str, default: str, base: Path) -> Path:
        return (base / self.text(key, default)).resolve()

    def url(self, key: str, default: str | None = None, *, https_only: bool = False) -> str:
        value = self.text(key, default)
        parts = urlsplit(value)
        schemes = ("https",) if https_only else ("http", "https")
        if parts.scheme not in schemes or not parts.netloc:
            want = "an https:// URL" if https_only else "an http(s):// URL"
            raise ConfigError(self.where(key), f"expected {want}, got {value!r}")
        return value

    def timezone(self, key: str, default: str) -> ZoneInfo:
        name = self.text(key, default)
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder of zones
            raise ConfigError(self.where(key), f"unknown time zone {name!r}") from None


_REQUIRED = object()
_MINUTES_A_MONTH = 31 * 24 * 60  # the longest refresh interval: longer ones overflow the scheduler


def parse_duration(text: str) -> timedelta:
    """``"7d"`` -> 7 days; units s, m, h, d, w. Raises ValueError."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"expected a duration such as 7d, 12h or 30m, got {text!r}")
    try:
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        raise ValueError(f"duration too long: {text!r}") from None


# Every key each section accepts (another is refused as a typo); `publisher init`'s
# publisher.toml documents each of them (tests/test_cli_init.py checks it).
KEYS: dict[str, frozenset[str]] = {
    "site": frozenset({"title", "url", "author", "language", "timezone", "article_path"}),
    "store": frozenset({"url"}),
    "articles": frozenset({"dir", "follow_symlinks", "max_bytes"}),
    "feed": frozenset(
        {
            "dir",
            "max_entries",
            "url",
            "formats",
            "tag_feeds",
            "archives",
            "hubs",
            "stylesheet",
            "content",
            "icon",
            "logo",
            "subtitle",
            "rights",
            "generator_uri",
            "podcast",
            "podcast_category",
            "podcast_explicit",
            "podcast_email",
        }
    ),
    "digest": frozenset(
        {
            "schedule",
            "timezone",
            "subject",
            "from",
            "to",
            "unsubscribe_url",
            "recipients",
            "secret_env",
            "backlog",
            "templates_dir",
            "max_html_bytes",
            "postal_address",
            "unsubscribe_mailto",
            "archive",
            "reading_time",
            "lead_images",
        }
    ),
    "mailer": frozenset(
        {
            "provider",
            "outbox_dir",
            "url",
            "api_key_env",
            "domain",
            "timeout",
            "retries",
            "max_retry_seconds",
            "max_attempts",
            "rate",
            "concurrency",
            "batch_size",
            "message_stream",
            "region",
            "lists",
            "username",
        }
    ),
    "daemon": frozenset({"refresh_minutes", "stall_seconds"}),
    "bucket": frozenset({"name", "url", "region", "prefix"}),
    "server": frozenset({"host", "port", "cache_seconds"}),
}


def load(path: Path) -> Config:
    """Read ``path`` and return a checked :class:`Config`, or raise ConfigError."""
    name = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            name, "not found (`publisher init` writes one; or pass --config, set PUBLISHER_CONFIG, or cd to its folder)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(name, f"cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(name, f"not valid TOML: {exc}") from None
    base = path.resolve().parent

    for key, value in raw.items():
        if key not in KEYS:
            raise ConfigError(f"{name}: [{key}]", "unknown section")
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: [{key}]", f"expected a table ([{key}] with keys under it), got a value")

    def table(section: str) -> _Table:
        return _Table(name, section, raw.get(section, {}), KEYS[section])

    s = table("site")
    site_url = s.url("url")
    site = SiteConfig(
        title=_non_empty(s, "title"),
        url=site_url if site_url.endswith("/") else site_url + "/",
        author=_non_empty(s, "author"),
        language=s.text("language", "en"),
        timezone=s.timezone("timezone", "UTC"),
        article_path=_article_path(s),
    )

    st = table("store")
    store_url = _store_url(st, base)

    a = table("articles")
    dm = table("daemon")
    sv = table("server")

    digest = _digest(table, base)
    return Config(
        path=path.resolve(),
        site=site,
        store_url=store_url,
        articles_dir=a.path("dir", "articles", base),
        feed=_feed(
            table("feed"),
            site,
            base,
        ),
        refresh_minutes=dm.integer("refresh_minutes", 5, minimum=1, maximum=_MINUTES_A_MONTH),
        stall_seconds=dm.integer("stall_seconds", 30, minimum=3, maximum=86_400),
        bucket=_bucket(table("bucket")),
        server=ServerConfig(
            host=sv.text("host", "127.0.0.1"),
            port=sv.integer("port", 8080, minimum=1, maximum=65535),
            cache_seconds=sv.integer("cache_seconds", 300, maximum=31_536_000),
        ),
        digest=digest,
        mailer=_mailer(table, base, digest),
        follow_symlinks=a.flag("follow_symlinks", False),
        max_bytes=a.integer("max_bytes", ARTICLE_MAX_BYTES, minimum=1_000, maximum=ARTICLE_MAX_BYTES_LIMIT),
    )


def check_ready(config: Config, *, articles: bool) -> None:
    """What the settings point at, checked before a command's work (a ConfigError, exit 2):
    the digest's subject and templates compile, the local list's secret is set and, for the
    commands that ingest (``articles``), the articles folder exists.

    Not part of :func:`load`: the commands that need none of it (status, subscribers, serve
    of a copied config) run without them.
    """
    if articles and not config.articles_dir.is_dir():
        raise ConfigError(
            f"{config.path.name}: [articles] dir",
            f"folder not found: {config.articles_dir} (create it, or fix the path)",
        )
    from publisher import digest, subscribers  # they import this module

    digest.check_templates(config)
    if config.digest.recipients == "subscribers":
        subscribers.secret(config)


FEED_CONTENT = ("full", "summary")


def _feed(f: _Table, site: SiteConfig, base: Path) -> FeedConfig:
    url = f.url("url", site.url + "feeds/atom.xml")
    formats = f.str_list("formats") if "formats" in f.data else FEED_FORMATS
    unknown = [name for name in formats if name not in FEED_FORMATS]
    if unknown:
        raise ConfigError(f.where("formats"), f"unknown format {unknown[0]!r}; choose from {', '.join(FEED_FORMATS)}")
    hubs = f.str_list("hubs") if f.data.get("hubs") else ()
    for hub in hubs:
        if urlsplit(hub).scheme not in ("http", "https") or not urlsplit(hub).netloc:
            raise ConfigError(f.where("hubs"), f"expected http(s) URLs of WebSub hubs, got {hub!r}")
    podcast = f.flag("podcast", False)
    return FeedConfig(
        dir=f.path("dir", "feeds", base),
        url=url,
        max_entries=f.integer("max_entries", 50, minimum=1, maximum=10_000),
        formats=tuple(dict.fromkeys(formats)),
        tag_feeds=f.flag("tag_feeds", True),
        archives=f.flag("archives", True),
        hubs=hubs,
        stylesheet=f.flag("stylesheet", True),
        content=_choice(f, "content", FEED_CONTENT),
        icon=_site_url(f, "icon", site),
        logo=_site_url(f, "logo", site),
        subtitle=" ".join(f.text("subtitle", "").split()),
        rights=" ".join(f.text("rights", "").split()),
        generator_uri=f.url("generator_uri") if "generator_uri" in f.data else "",
        podcast=podcast,
        podcast_category=_podcast_category(f, podcast),
        podcast_explicit=f.flag("podcast_explicit", False),
        podcast_email=_podcast_email(f, podcast),
    )


def _podcast_category(t: _Table, podcast: bool) -> str:
    """An Apple Podcasts category (https://podcasters.apple.com/support/1691-apple-podcasts-categories)."""
    value = " ".join(t.text("podcast_category", "").split())
    if podcast and not value:
        raise ConfigError(t.where("podcast_category"), "missing: podcast = true needs a category (e.g. News)")
    if value and value not in PODCAST_CATEGORIES:
        raise ConfigError(
            t.where("podcast_category"),
            f"not an Apple Podcasts category: {value!r}; use one of {', '.join(PODCAST_CATEGORIES)}",
        )
    return value


def _podcast_email(t: _Table, podcast: bool) -> str:
    value = t.text("podcast_email", "").strip()
    if podcast and not value:
        raise ConfigError(t.where("podcast_email"), "missing: podcast = true needs the owner's email (itunes:owner)")
    if value and not re.fullmatch(r"[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+", value):
        raise ConfigError(t.where("podcast_email"), f"not an email address: {value!r}")
    return value


PODCAST_CATEGORIES = (
    "Arts", "Business", "Comedy", "Education", "Fiction", "Government", "Health & Fitness", "History",
    "Kids & Family", "Leisure", "Music", "News", "Religion & Spirituality", "Science", "Society & Culture",
    "Sports", "Technology", "True Crime", "TV & Film",
)  # fmt: skip


def _choice(t: _Table, key: str, choices: tuple[str, ...]) -> str:
    value = t.text(key, choices[0])
    if value not in choices:
        raise ConfigError(t.where(key), f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def _site_url(t: _Table, key: str, site: SiteConfig) -> str:
    """An http(s) URL, or a path on the site made absolute against [site] url; "" if unset."""
    value = t.text(key, "").strip()
    if not value:
        return ""
    url = urljoin(site.url, value)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in url for c in '"<> '):
        raise ConfigError(t.where(key), f"expected an http(s) URL or a path on the site, got {value!r}")
    return url


def _article_path(t: _Table) -> str:
    value = t.text("article_path", "{slug}/")
    try:
        value.format(slug="s", year="2024", month="01", day="01")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            t.where("article_path"), f"unknown placeholder {exc}; use {{slug}}, {{year}}, {{month}}, {{day}}"
        ) from None
    if "{slug}" not in value:
        raise ConfigError(t.where("article_path"), "must contain {slug}, or articles would share one URL")
    return value.lstrip("/")


def _non_empty(t: _Table, key: str) -> str:
    value = t.text(key).strip()
    if not value:
        raise ConfigError(t.where(key), "must not be empty")
    return value


def _bucket(t: _Table) -> BucketConfig | None:
    name = t.text("name", "")
    if not name:
        return None
    region = t.text("region", "us-east-1")
    url = t.text("url", f"https://s3.{region}.amazonaws.com").rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise ConfigError(t.where("url"), f"expected an http(s) URL, got {url!r}")
    return BucketConfig(name=name, url=url, region=region, prefix=t.text("prefix", ""))


def _store_url(t: _Table, base: Path) -> str:
    value = t.text("url", "sqlite:///publisher.db")
    try:
        url = make_url(value)
    except ArgumentError:
        raise ConfigError(t.where("url"), "not a database URL (sqlite:///file.db or postgresql://...)") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(t.where("url"), f"unsupported database {url.get_backend_name()!r}; use sqlite or postgresql")
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        url = url.set(database=str((base / url.database).resolve()))
    return url.render_as_string(hide_password=False)


# What is inside: the lead article's title, and how many more.
DEFAULT_SUBJECT = (
    "{{ articles[0].title }}{% if articles|length > 1 %} (+{{ articles|length - 1 }} more){% endif %}"
    " · {{ site.title }}"
)


def _digest(table: Any, base: Path) -> DigestConfig:
    d = table("digest")
    tz = d.timezone("timezone", "UTC")
    schedule = d.text("schedule", "0 7 * * *")
    try:
        crontab.trigger(schedule, tz)
    except ValueError as exc:
        raise ConfigError(d.where("schedule"), f"not a crontab line ({exc})") from None
    try:
        backlog = parse_duration(d.text("backlog", "7d"))
    except ValueError as exc:
        raise ConfigError(d.where("backlog"), str(exc)) from None
    recipients = d.text("recipients", "to")
    if recipients not in ("to", "subscribers"):
        raise ConfigError(d.where("recipients"), f'expected "to" or "subscribers", got {recipients!r}')
    sender = d.text("from")
    _check_address(d, "from", sender)
    to = d.str_list("to")
    for address in to:
        _check_address(d, "to", address)
    mailto = d.text("unsubscribe_mailto", "")
    if mailto:
        _check_address(d, "unsubscribe_mailto", mailto)
        if parseaddr(mailto)[1] != mailto.strip():
            raise ConfigError(
                d.where("unsubscribe_mailto"), f"expected a bare address (name@example.org), got {mailto!r}"
            )
    templates = d.path("templates_dir", "", base) if "templates_dir" in d.data else None
    if templates is not None and not templates.is_dir():
        raise ConfigError(d.where("templates_dir"), f"folder not found: {templates}")
    return DigestConfig(
        schedule=schedule,
        timezone=tz,
        subject=d.text("subject", DEFAULT_SUBJECT),
        sender=sender,
        to=to,
        unsubscribe_url=d.url("unsubscribe_url", https_only=True),
        recipients=recipients,
        secret_env=_env_name(d, "secret_env", "PUBLISHER_UNSUBSCRIBE_SECRET"),
        backlog=backlog,
        templates_dir=templates,
        max_html_bytes=d.integer("max_html_bytes", 100_000, minimum=10_000),
        postal_address=" ".join(d.text("postal_address", "").split()),
        unsubscribe_mailto=mailto.strip(),
        archive=d.flag("archive", True),
        reading_time=d.flag("reading_time", True),
        lead_images=d.flag("lead_images", True),
    )


def _check_address(t: _Table, key: str, value: str) -> None:
    pairs = getaddresses([value])
    _, address = parseaddr(value)
    try:
        ok = len(pairs) == 1 and "@" in address and bool(Address(addr_spec=address).domain)
    except (ValueError, IndexError, HeaderParseError):  # e.g. "@example.org"
        ok = False
    if not ok or "\n" in value or "\r" in value:
        raise ConfigError(t.where(key), f"not an email address: {value!r}")


def _env_name(t: _Table, key: str, default: str) -> str:
    name = t.text(key, default)
    # Upper case only: API keys are often letters, digits and "_" ("re_..."), and a key taken
    # for a variable's name would be printed in the "is not set" error.
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
        raise ConfigError(
            t.where(key),
            "expected the NAME of an environment variable (upper-case letters, digits, _), not the secret itself",
        )
    return name


def _mailer(table: Any, base: Path, digest: DigestConfig) -> MailerConfig:
    m = table("mailer")
    provider = m.text("provider", "outbox")
    if provider not in PROVIDERS:
        raise ConfigError(m.where("provider"), f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
    region = m.text("region", "us-east-1").strip()
    if provider == "ses" and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        raise ConfigError(m.where("region"), f"not an AWS region: {region!r}")
    # An empty url means the provider's public API; webhook and listmonk are the operator's own.
    defaults = _API_URLS | {"ses": f"https://email.{region}.amazonaws.com"}
    url = ""
    if provider in ("webhook", "listmonk"):
        url = m.url("url")
    elif provider in defaults:
        url = m.url("url") if m.text("url", "").strip() else defaults[provider]
    if provider == "mailgun" and not m.text("domain", "").strip():
        raise ConfigError(m.where("domain"), "missing (the Mailgun sending domain is required)")
    lists: tuple[int, ...] = ()
    if provider == "listmonk":
        raw = m._get("lists", list, _REQUIRED)
        if not raw or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in raw):
            raise ConfigError(m.where("lists"), "expected a non-empty list of listmonk list ids (integers)")
        lists = tuple(raw)
    if provider in LIST_OWNERS and digest.recipients == "subscribers":
        raise ConfigError(
            f"{m.file}: [digest] recipients",
            f'{provider} keeps its own subscriber list; set recipients = "to" (it is ignored) or use another provider',
        )
    return MailerConfig(
        provider=provider,
        outbox_dir=m.path("outbox_dir", "outbox", base),
        url=url.rstrip("/"),
        api_key_env=_env_name(m, "api_key_env", "PUBLISHER_MAILER_KEY"),
        domain=m.text("domain", "").strip(),
        timeout=m.number("timeout", 30.0),
        retries=m.integer("retries", 2, maximum=100),
        max_retry_seconds=m.number("max_retry_seconds", 120.0),
        max_attempts=m.integer("max_attempts", 10, minimum=1, maximum=1000),
        rate=_rate(m),
        concurrency=m.integer("concurrency", 1, minimum=1, maximum=64),
        batch_size=m.integer("batch_size", 0),
        message_stream=m.text("message_stream", "broadcast").strip() or "broadcast",
        region=region,
        lists=lists,
        username=m.text("username", "").strip(),
    )


def _rate(m: _Table) -> float:
    """[mailer] rate: 0 (the default) for no limit, else a positive number of messages a second."""
    value = m.data.get("rate", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(m.where("rate"), f"expected messages per second (0 for no limit), got {value!r}")
    return float(value)
