"""Read and check ``publisher.toml`` before any work is done.

Every problem is reported as a :class:`ConfigError` naming the key, e.g.
``publisher.toml: [digest] schedule: not a crontab line: ...``. Relative paths resolve
against the folder of the config file, so ``publisher --config /srv/news/publisher.toml``
works from any working directory.

Each ``[section]`` is a frozen dataclass, and its fields are the one place a key is named:
:func:`setting` gives a field its default, bounds or reader, :func:`_section` reads every
field of a section the same way, and :data:`KEYS` (the keys each section accepts) is derived
from the fields. ``[mailer]`` is a tagged union: one dataclass per provider, all sharing
:class:`MailerConfig`, chosen by ``provider``; each delivery module reads only its own.

In this file: :func:`load`, then the section functions and readers, then the dataclasses.
"""

# ruff: noqa: RUF009 (`setting` is this module's dataclasses.field: it makes no default value)
from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias, TypeVar, cast
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from publisher import crontab
from publisher.errors import ConfigError
from publisher.store.preferences import DEFAULT_DIGEST as DEFAULT_DIGEST
from publisher.store.urls import resolved, url_problem

if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed import DataclassInstance

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_REQUIRED: Any = object()
_MINUTES_A_MONTH = 31 * 24 * 60  # the longest refresh interval: longer ones overflow the scheduler
FEED_FORMATS = ("atom", "rss", "json")
FEED_CONTENT = ("full", "summary")
ARTICLE_MAX_BYTES = 20_000_000  # [articles] max_bytes: far above any written article, 10 MB ones included
# The article is held in memory, parsed, and stored whole (SQLite and bytea cap a value at 1 GB).
ARTICLE_MAX_BYTES_LIMIT = 100_000_000


class _Table:
    """One ``[section]`` of the file: typed getters that name the key on error."""

    def __init__(self, file: str, name: str, data: dict[str, Any], known: frozenset[str], base: Path) -> None:
        self.file, self.name, self.data, self.base = file, name, data, base
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


# A reader turns one key of a table into a field's value, or raises ConfigError naming it.
Reader: TypeAlias = "Callable[[_Table, str, Any], Any]"


def setting(
    default: Any = _REQUIRED,
    *,
    key: str = "",
    low: int = 0,
    high: int = 10**9,
    read: Reader | None = None,
    value: Any = _REQUIRED,
) -> Any:
    """A dataclass field that is a key of the file: its TOML name (when not the field's),
    its default (in the file's terms: "UTC", "7d", "outbox"), integer bounds, and a reader for
    what the field's type alone does not say. Fields without it are not keys. ``value`` is the
    default in the program's terms, for a section a Config made by hand may leave out."""
    metadata = {"key": key, "default": default, "low": low, "high": high, "read": read}
    if value is _REQUIRED:
        return field(metadata=metadata)
    return field(default=value, metadata=metadata)


def _read(t: _Table, name: str, kind: Any, meta: Any) -> Any:
    """One field, read by its reader or else by its annotated type."""
    key, default = meta["key"] or name, meta["default"]
    if meta["read"] is not None:
        return meta["read"](t, key, default)
    if kind == "str":
        return t.text(key, None if default is _REQUIRED else default)
    if kind == "int":
        return t.integer(key, default, meta["low"], meta["high"])
    if kind == "float":
        return t.number(key, default)
    if kind == "bool":
        return t.flag(key, default)
    if kind == "Path":
        return t.path(key, default, t.base)
    if kind == "ZoneInfo":
        return t.timezone(key, default)
    raise TypeError(f"config field {name}: no reader for {kind}")  # a mistake here, not in the file


S = TypeVar("S", bound="DataclassInstance")


def _section(t: _Table, cls: type[S], **given: Any) -> S:
    """A section's dataclass, each key read from ``t`` unless ``given`` (a value that depends
    on another key or section)."""
    values = {f.name: given[f.name] if f.name in given else _read(t, f.name, f.type, f.metadata) for f in fields(cls)}
    return cls(**values)


def _one(t: _Table, cls: type[DataclassInstance], name: str) -> Any:
    """One field of a section, read ahead because another depends on it."""
    f = next(f for f in fields(cls) if f.name == name)
    return _read(t, f.name, f.type, f.metadata)


def _keys(cls: type[DataclassInstance]) -> set[str]:
    return {f.metadata["key"] or f.name for f in fields(cls) if "default" in f.metadata}


def parse_duration(text: str) -> timedelta:
    """``"7d"`` -> 7 days; units s, m, h, d, w. Raises ValueError."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"expected a duration such as 7d, 12h or 30m, got {text!r}")
    try:
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        raise ValueError(f"duration too long: {text!r}") from None


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
        if key == "digest" and isinstance(value, list):
            continue  # [[digest]] blocks: several digests (a single [digest] table is one)
        if key in ARRAYS:
            if not isinstance(value, list):
                raise ConfigError(f"{name}: [[{key}]]", f"expected [[{key}]] blocks, got [{key}]")
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: [{key}]", f"expected a table ([{key}] with keys under it), got a value")

    def table(section: str) -> _Table:
        return _Table(name, section, raw.get(section, {}), KEYS[section], base)

    site = _section(table("site"), SiteConfig)

    st = table("store")
    store_url = _store_url(st, base)

    sources = _sources(name, raw.get("sources", []), base)
    several = raw.get("digest", {})
    if isinstance(several, list):
        digests = _digests(name, several, base, sources)
    else:
        digests = (_digest(table("digest"), sources),)
    digest = digests[0]
    return Config(
        path=path.resolve(),
        site=site,
        store=StoreConfig(url=store_url),
        articles=_section(table("articles"), ArticlesConfig),
        feed=_feed(table("feed"), site),
        daemon=_section(table("daemon"), DaemonConfig),
        server=_section(table("server"), ServerConfig),
        digest=digest,
        mailer=_mailer(table("mailer"), digest, path.resolve().name),
        signup=_signup(table("signup"), site, digest),
        bounces=_section(table("bounces"), BouncesConfig),
        sources=sources,
        digests=digests,
        bucket=_bucket(table("bucket")),
    )


ARRAYS = frozenset({"sources"})  # sections written as [[name]] blocks: a list of tables
SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
SOURCE_MAX_BYTES = 10_000_000  # [[sources]] max_bytes: far above any real feed


class _Block(_Table):
    """One block of a [[name]] list: its errors say ``sources[2].url``."""

    def where(self, key: str) -> str:
        return f"{self.file}: {self.name}.{key}"


def _sources(file: str, blocks: list[Any], base: Path) -> tuple[SourceConfig, ...]:
    """Each ``[[sources]]`` block, checked; an error names it as sources[i]."""
    found: list[SourceConfig] = []
    for i, block in enumerate(blocks):
        where = f"sources[{i}]"
        if not isinstance(block, dict):
            raise ConfigError(f"{file}: {where}", "expected a [[sources]] block with keys under it")
        t = _Block(file, where, block, KEYS["sources"], base)
        name = t.text("name").strip()
        if not SOURCE_NAME.fullmatch(name):
            raise ConfigError(
                t.where("name"), f'expected a short name of a-z, 0-9, - and _ (e.g. "blog"), got {name!r}'
            )
        if name in {s.name for s in found}:
            raise ConfigError(t.where("name"), f"{name!r} is the name of another source; names must differ")
        durations = {}
        for key, default in (("backlog", "7d"), ("interval", "30m"), ("alert_after", "1d")):
            try:
                durations[key] = parse_duration(t.text(key, default))
            except ValueError as exc:
                raise ConfigError(t.where(key), str(exc)) from None
        if durations["interval"] < timedelta(minutes=1):
            raise ConfigError(t.where("interval"), "must be at least 1m (be kind to the feed's server)")
        page_delay = t.data.get("page_delay", 1.0)
        if isinstance(page_delay, bool) or not isinstance(page_delay, int | float) or not 0 <= page_delay <= 3600:
            raise ConfigError(t.where("page_delay"), f"expected seconds between 0 and 3600, got {page_delay!r}")
        found.append(
            SourceConfig(
                name=name,
                url=t.url("url"),
                backlog=durations["backlog"],
                interval=durations["interval"],
                alert_after=durations["alert_after"],
                full_text=t.flag("full_text", False),
                page_delay=float(page_delay),
                timeout=t.number("timeout", 30.0),
                max_bytes=t.integer("max_bytes", SOURCE_MAX_BYTES, minimum=1_000, maximum=ARTICLE_MAX_BYTES_LIMIT),
                tags=t.str_list("tags") if t.data.get("tags") else (),
            )
        )
    return tuple(found)


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

    for each in config.each_digest():  # every [[digest]]'s subject and templates
        digest.check_templates(each)
    if any(d.recipients == "subscribers" for d in config.digests):
        subscribers.secret(config)
    if config.digest.recipients == "subscribers":
        from publisher import notices

        notices.check_templates(config)  # the sign-ups' confirmation and welcome


def _feed(f: _Table, site: SiteConfig) -> FeedConfig:
    podcast = _one(f, FeedConfig, "podcast")
    return _section(
        f,
        FeedConfig,
        url=f.url("url", site.url + "feeds/atom.xml"),
        icon=_site_url(f, "icon", site),
        logo=_site_url(f, "logo", site),
        podcast_category=_podcast_category(f, podcast),
        podcast_email=_podcast_email(f, podcast),
    )


def _digest(d: _Table, sources: tuple[SourceConfig, ...]) -> DigestConfig:
    tz = _one(d, DigestConfig, "timezone")
    schedule = _one(d, DigestConfig, "schedule")
    try:
        crontab.trigger(schedule, tz)
    except ValueError as exc:
        raise ConfigError(d.where("schedule"), f"not a crontab line ({exc})") from None
    chosen = _one(d, DigestConfig, "sources")
    unknown = [name for name in chosen if name not in {s.name for s in sources}]
    if unknown:
        raise ConfigError(d.where("sources"), f"no [[sources]] block is named {unknown[0]!r}")
    return _section(d, DigestConfig, schedule=schedule, timezone=tz, sources=chosen)


DIGEST_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def _digests(file: str, blocks: list[Any], base: Path, sources: tuple[SourceConfig, ...]) -> tuple[DigestConfig, ...]:
    """Each ``[[digest]]`` block, checked; an error names it as digest[i]. The first block is
    the site's main digest (the mailer and the sign-up page follow its settings)."""
    if not blocks:
        raise ConfigError(f"{file}: [[digest]]", "expected at least one [[digest]] block")
    found: list[DigestConfig] = []
    for i, block in enumerate(blocks):
        where = f"digest[{i}]"
        if not isinstance(block, dict):
            raise ConfigError(f"{file}: {where}", "expected a [[digest]] block with keys under it")
        t = _Block(file, where, block, KEYS["digest"], base)
        if "name" not in t.data:
            raise ConfigError(t.where("name"), "missing (each [[digest]] block needs a name)")
        digest = _digest(t, sources)
        if digest.name in {d.name for d in found}:
            raise ConfigError(t.where("name"), f"{digest.name!r} is the name of another digest; names must differ")
        found.append(digest)
    return tuple(found)


def _digest_name(t: _Table, key: str, default: str) -> str:
    name = t.text(key, default).strip()
    if not DIGEST_NAME.fullmatch(name):
        raise ConfigError(t.where(key), f'expected a short name of a-z, 0-9, - and _ (e.g. "weekly"), got {name!r}')
    return name


def _names(t: _Table, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """An optional list of non-empty strings, each once; [] is none."""
    if t.data.get(key, []) == []:
        return default
    return tuple(dict.fromkeys(s.strip() for s in t.str_list(key)))


def _mailer(m: _Table, digest: DigestConfig, file: str) -> ProviderConfig:
    provider = _one(m, MailerConfig, "provider")
    cls = MAILERS.get(provider)
    if cls is None:
        raise ConfigError(m.where("provider"), f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
    if cls.owns_list and digest.recipients == "subscribers":
        raise ConfigError(
            f"{m.file}: [digest] recipients",
            f'{provider} keeps its own subscriber list; set recipients = "to" (it is ignored) or use another provider',
        )
    settings = cast(ProviderConfig, _section(m, cls, file=file, provider=provider, url=""))
    # Another provider's keys are allowed (switching provider keeps them) but must be strings.
    mine = {f.name for f in fields(cls)}
    for other in _MAILERS:
        for f in fields(other):
            if f.name not in mine and f.type in ("str", "Path"):
                m.text(f.name, "")
    if cls.api_url is None:  # the outbox
        return settings
    api = cls.api_url.format(region=getattr(settings, "region", ""))
    url = m.url("url") if not api or m.text("url", "").strip() else api
    return replace(settings, url=url.rstrip("/"))


# Readers of the keys whose type alone does not say what is allowed.


def _choice(t: _Table, key: str, choices: tuple[str, ...]) -> str:
    value = t.text(key, choices[0])
    if value not in choices:
        raise ConfigError(t.where(key), f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def _feed_content(t: _Table, key: str, default: str) -> str:
    return _choice(t, key, FEED_CONTENT)


def _one_line(t: _Table, key: str, default: str) -> str:
    return " ".join(t.text(key, default).split())


def _stripped(t: _Table, key: str, default: str) -> str:
    return t.text(key, default).strip()


def _optional_url(t: _Table, key: str, default: str) -> str:
    return t.url(key) if key in t.data else default


def _https_url(t: _Table, key: str, default: Any) -> str:
    return t.url(key, https_only=True)


def _site_root(t: _Table, key: str, default: Any) -> str:
    url = t.url(key)
    return url if url.endswith("/") else url + "/"


def _formats(t: _Table, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    formats = t.str_list(key) if key in t.data else default
    unknown = [name for name in formats if name not in FEED_FORMATS]
    if unknown:
        raise ConfigError(t.where(key), f"unknown format {unknown[0]!r}; choose from {', '.join(FEED_FORMATS)}")
    return tuple(dict.fromkeys(formats))


def _hubs(t: _Table, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    hubs = t.str_list(key) if t.data.get(key) else default
    for hub in hubs:
        if urlsplit(hub).scheme not in ("http", "https") or not urlsplit(hub).netloc:
            raise ConfigError(t.where(key), f"expected http(s) URLs of WebSub hubs, got {hub!r}")
    return hubs


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


def _article_path(t: _Table, key: str, default: str) -> str:
    value = t.text(key, default)
    try:
        value.format(slug="s", year="2024", month="01", day="01")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            t.where(key), f"unknown placeholder {exc}; use {{slug}}, {{year}}, {{month}}, {{day}}"
        ) from None
    if "{slug}" not in value:
        raise ConfigError(t.where(key), "must contain {slug}, or articles would share one URL")
    return value.lstrip("/")


def _non_empty(t: _Table, key: str, default: Any = None) -> str:
    value = t.text(key).strip()
    if not value:
        raise ConfigError(t.where(key), "must not be empty")
    return value


def _bucket(t: _Table) -> BucketConfig | None:
    if not t.text("name", ""):
        return None
    region = _one(t, BucketConfig, "region")
    url = t.text("url", f"https://s3.{region}.amazonaws.com").rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise ConfigError(t.where("url"), f"expected an http(s) URL, got {url!r}")
    return _section(t, BucketConfig, url=url, region=region)


def _store_url(t: _Table, base: Path) -> str:
    value = t.text("url", "sqlite:///publisher.db")
    problem = url_problem(value)
    if problem is not None:
        raise ConfigError(t.where("url"), problem)
    return resolved(value, base)


# What is inside: the lead article's title, and how many more.
DEFAULT_SUBJECT = (
    "{{ articles[0].title }}{% if articles|length > 1 %} (+{{ articles|length - 1 }} more){% endif %}"
    " · {{ site.title }}"
)


def _duration(t: _Table, key: str, default: str) -> timedelta:
    try:
        return parse_duration(t.text(key, default))
    except ValueError as exc:
        raise ConfigError(t.where(key), str(exc)) from None


def _recipients(t: _Table, key: str, default: str) -> str:
    value = t.text(key, default)
    if value not in ("to", "subscribers"):
        raise ConfigError(t.where(key), f'expected "to" or "subscribers", got {value!r}')
    return value


def _address(t: _Table, key: str, default: Any) -> str:
    value = t.text(key)
    _check_address(t, key, value)
    return value


def _addresses(t: _Table, key: str, default: Any) -> tuple[str, ...]:
    to = t.str_list(key)
    for address in to:
        _check_address(t, key, address)
    return to


def _mailto(t: _Table, key: str, default: str) -> str:
    mailto = t.text(key, default)
    if mailto:
        _check_address(t, key, mailto)
        if parseaddr(mailto)[1] != mailto.strip():
            raise ConfigError(t.where(key), f"expected a bare address (name@example.org), got {mailto!r}")
    return mailto.strip()


def _folder(t: _Table, key: str, default: None) -> Path | None:
    if key not in t.data:
        return default
    folder = t.path(key, "", t.base)
    if not folder.is_dir():
        raise ConfigError(t.where(key), f"folder not found: {folder}")
    return folder


def _optional_https_url(t: _Table, key: str, default: str) -> str:
    return t.url(key, https_only=True) if key in t.data else default


def _signup(t: _Table, site: SiteConfig, digest: DigestConfig) -> SignupConfig:
    url = t.url("url", https_only=True) if "url" in t.data else urljoin(digest.unsubscribe_url, "subscribe")
    default_text = f"Email me the {site.title} digest. I can unsubscribe at any time with the link in every email."
    consent_text = " ".join(t.text("consent_text", default_text).split())
    if not consent_text:
        raise ConfigError(t.where("consent_text"), "must not be empty: it is what readers agree to")
    return _section(t, SignupConfig, url=url, consent_text=consent_text)


def _positive_duration(t: _Table, key: str, default: str) -> timedelta:
    value = _duration(t, key, default)
    if not value:
        raise ConfigError(t.where(key), "must be longer than 0")
    return value


_SNS_TOPIC = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]+")


def _sns_topics(t: _Table, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    topics = t._get(key, list, list(default))
    for topic in topics:
        if not isinstance(topic, str) or not _SNS_TOPIC.fullmatch(topic):
            raise ConfigError(t.where(key), f"not an SNS topic ARN: {topic!r}")
    return tuple(topics)


def _signup_window(t: _Table, key: str, default: str) -> timedelta:
    window = _duration(t, key, default)
    if not timedelta(minutes=10) <= window <= timedelta(days=30):
        raise ConfigError(t.where(key), "must be between 10m and 30d")
    return window


def _origins(t: _Table, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    origins = t.str_list(key) if t.data.get(key) else default
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigError(t.where(key), f"expected origins such as https://example.org, got {origin!r}")
    return tuple(o.rstrip("/").lower() for o in origins)


def _header_name(t: _Table, key: str, default: str) -> str:
    header = t.text(key, default).strip()
    if header and not re.fullmatch(r"[A-Za-z0-9-]+", header):
        raise ConfigError(t.where(key), f"not a header name: {header!r}")
    return header.lower()


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


def _rate(t: _Table, key: str, default: float) -> float:
    """[mailer] rate: 0 (the default) for no limit, else a positive number of messages a second."""
    value = t.data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(t.where(key), f"expected messages per second (0 for no limit), got {value!r}")
    return float(value)


def _mailgun_domain(t: _Table, key: str, default: str) -> str:
    value = t.text(key, default).strip()
    if not value:
        raise ConfigError(t.where(key), "missing (the Mailgun sending domain is required)")
    return value


def _message_stream(t: _Table, key: str, default: str) -> str:
    return t.text(key, default).strip() or default


def _aws_region(t: _Table, key: str, default: str) -> str:
    region = t.text(key, default).strip()
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        raise ConfigError(t.where(key), f"not an AWS region: {region!r}")
    return region


def _list_ids(t: _Table, key: str, default: Any) -> tuple[int, ...]:
    raw = t._get(key, list, _REQUIRED)
    if not raw or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in raw):
        raise ConfigError(t.where(key), "expected a non-empty list of listmonk list ids (integers)")
    return tuple(raw)


# The sections, in the file's terms. Field order is kept: feed.py fingerprints site and feed.


@dataclass(frozen=True)
class SiteConfig:
    title: str = setting(read=_non_empty)
    url: str = setting(read=_site_root)  # ends with "/"
    author: str = setting(read=_non_empty)
    language: str = setting("en")
    timezone: ZoneInfo = setting("UTC")
    article_path: str = setting("{slug}/", read=_article_path)


@dataclass(frozen=True)
class StoreConfig:
    url: str = setting("sqlite:///publisher.db")  # read by _store_url: a relative SQLite file made absolute


@dataclass(frozen=True)
class ArticlesConfig:
    dir: Path = setting("articles")
    # Follow symlinks that leave the articles folder (see ingest.walk).
    follow_symlinks: bool = setting(False)
    # A bigger article file is refused, after reading at most this + 1 bytes.
    max_bytes: int = setting(ARTICLE_MAX_BYTES, low=1_000, high=ARTICLE_MAX_BYTES_LIMIT)


@dataclass(frozen=True)
class DaemonConfig:
    refresh_minutes: int = setting(5, low=1, high=_MINUTES_A_MONTH)
    # A cluster daemon silent this long is taken for dead, its jobs retried (publisher.cluster).
    stall_seconds: int = setting(30, low=3, high=86_400)


@dataclass(frozen=True)
class BucketConfig:
    """[bucket]: an S3-compatible bucket the cluster's daemons also put the feeds in (publisher.bucket)."""

    name: str = setting("")
    url: str = setting("")  # the endpoint (default: https://s3.<region>.amazonaws.com), or a compatible service's
    region: str = setting("us-east-1")
    prefix: str = setting("")  # before every key: "feeds/" puts atom.xml at feeds/atom.xml


@dataclass(frozen=True)
class FeedConfig:
    dir: Path = setting("feeds")
    url: str = setting()  # the Atom feed's public URL (default: the site's feeds/atom.xml); the others sit beside it
    max_entries: int = setting(50, low=1, high=10_000)
    formats: tuple[str, ...] = setting(FEED_FORMATS, read=_formats)
    tag_feeds: bool = setting(True)
    archives: bool = setting(True)
    hubs: tuple[str, ...] = setting((), read=_hubs)
    stylesheet: bool = setting(True)
    # "full": each entry's whole body; "summary": the summary and a link
    content: str = setting(FEED_CONTENT[0], read=_feed_content)
    icon: str = setting("")  # absolute URLs ("" = none): a small square icon (favicon), a larger logo
    logo: str = setting("")
    subtitle: str = setting("", read=_one_line)
    rights: str = setting("", read=_one_line)  # e.g. "© 2026 Example News, CC BY 4.0"
    generator_uri: str = setting("", read=_optional_url)  # the generator's home page, if the site wants it named
    podcast: bool = setting(False)  # iTunes tags for the articles with audio (feedgen's podcast extension)
    podcast_category: str = setting("")  # an Apple Podcasts category, e.g. "News"
    podcast_explicit: bool = setting(False)
    podcast_email: str = setting("")  # itunes:owner: where Apple writes about the podcast (not shown)

    @property
    def base_url(self) -> str:
        """The public URL of the feeds folder."""
        return self.url.rsplit("/", 1)[0] + "/"


@dataclass(frozen=True)
class ServerConfig:
    host: str = setting("127.0.0.1")
    port: int = setting(8080, low=1, high=65535)
    cache_seconds: int = setting(300, high=31_536_000)


@dataclass(frozen=True)
class DigestConfig:
    schedule: str = setting("0 7 * * *")  # a crontab line, read in the digest's time zone
    timezone: ZoneInfo = setting("UTC")
    subject: str = setting(DEFAULT_SUBJECT)
    sender: str = setting(key="from", read=_address)
    to: tuple[str, ...] = setting(read=_addresses)
    unsubscribe_url: str = setting(read=_https_url)
    recipients: str = setting("to", read=_recipients)  # "to": the [digest] to addresses; "subscribers": the local list
    secret_env: str = setting("PUBLISHER_UNSUBSCRIBE_SECRET", read=_env_name)  # HMAC secret (local list only)
    backlog: timedelta = setting("7d", read=_duration)
    templates_dir: Path | None = setting(None, read=_folder)
    max_html_bytes: int = setting(100_000, low=10_000)
    # The sender's postal address, in every footer (CAN-SPAM wants one in commercial mail).
    postal_address: str = setting("", read=_one_line)
    # An address that unsubscribes whoever writes to it, offered beside the link ("" = none).
    unsubscribe_mailto: str = setting("", read=_mailto)
    # Each sent digest as a web page (feeds/issues/), linked from the email as "view in browser".
    archive: bool = setting(True)
    reading_time: bool = setting(True)  # "4 min read" beside each article's date
    lead_images: bool = setting(True)  # each article's lead image (ArticleMeta image) above its text
    # The readers' preferences page (topics, unsubscribe), linked from each footer ("" = none).
    preferences_url: str = setting("", read=_optional_https_url)
    # [[digest]] only: its name (a single [digest] is "digest"); its ids begin with it
    name: str = setting(DEFAULT_DIGEST, read=_digest_name, value=DEFAULT_DIGEST)
    # The articles it takes (any of these tags; from these [[sources]]); none: every article
    tags: tuple[str, ...] = setting((), read=_names, value=())
    sources: tuple[str, ...] = setting((), read=_names, value=())
    # A local-list reader who chose nothing gets this digest (see publisher.preferences)
    default: bool = setting(True, value=True)

    def takes(self, tags: list[str], key: str) -> bool:
        """Whether an article with these tags and store key belongs in this digest."""
        if self.tags and not {t.casefold() for t in tags} & {t.casefold() for t in self.tags}:
            return False
        return not self.sources or any(key.startswith(f"feed:{s}/") for s in self.sources)


@dataclass(frozen=True)
class SignupConfig:
    """[signup]: the sign-up page `publisher serve` shows with a local list (publisher.signup)."""

    url: str = setting("")  # the page's public URL (default: "subscribe" beside unsubscribe_url); + "/confirm"
    # A confirmation link's life, and the least time between two to one address.
    window: timedelta = setting("24h", read=_signup_window)
    consent_text: str = setting("")  # shown beside the form, kept word for word with each consent
    origins: tuple[str, ...] = setting((), read=_origins)  # origins whose pages may post the form
    record_client: bool = setting(False)  # keep the client's IP address with each consent
    welcome: bool = setting(True)  # a welcome email once confirmed
    # The header a trusted reverse proxy puts the client's address in ("" = the peer).
    client_header: str = setting("", read=_header_name)


@dataclass(frozen=True)
class BouncesConfig:
    """[bounces]: the providers' bounce and complaint webhooks (publisher.bounces)."""

    # This many soft bounces of one address within soft_window suppress it.
    soft_bounces: int = setting(3, low=1, high=1000, value=3)
    soft_window: timedelta = setting("14d", read=_positive_duration, value=timedelta(days=14))
    # How old (or new) a signed timestamp may be.
    tolerance: timedelta = setting("5m", read=_positive_duration, value=timedelta(minutes=5))
    ses_topics: tuple[str, ...] = setting((), read=_sns_topics, value=())  # the SNS topic ARNs taken
    # The Signed Event Webhook's verification key (base64), public.
    sendgrid_public_key: str = setting("", read=_stripped, value="")
    mailgun_key_env: str = setting(
        "PUBLISHER_MAILGUN_WEBHOOK_KEY", read=_env_name, value="PUBLISHER_MAILGUN_WEBHOOK_KEY"
    )
    postmark_secret_env: str = setting(
        "PUBLISHER_POSTMARK_WEBHOOK_SECRET", read=_env_name, value="PUBLISHER_POSTMARK_WEBHOOK_SECRET"
    )
    resend_secret_env: str = setting(
        "PUBLISHER_RESEND_WEBHOOK_SECRET", read=_env_name, value="PUBLISHER_RESEND_WEBHOOK_SECRET"
    )


@dataclass(frozen=True)
class SourceConfig:
    """One ``[[sources]]`` entry: a remote feed (RSS, Atom, JSON Feed) read into the store.
    Read by :func:`_sources`, which checks the entries against each other too."""

    name: str = setting()  # unique; part of its articles' keys (feed:<name>/...)
    url: str = setting()
    backlog: timedelta = setting("7d")  # the first fetch takes only items newer than this
    interval: timedelta = setting("30m")  # how often it is fetched (a failing one sooner, with backoff)
    alert_after: timedelta = setting("1d")  # failing this long fails the run (exit 1) and shows in status
    full_text: bool = setting(False)  # fetch and extract the article page for items with only a summary
    page_delay: float = setting(1.0)  # seconds between two page fetches from one host
    timeout: float = setting(30.0)  # seconds for the whole fetch
    max_bytes: int = setting(SOURCE_MAX_BYTES)  # a bigger response is refused
    tags: tuple[str, ...] = setting((), value=())  # added to every article of this source


@dataclass(frozen=True)
class MailerConfig:
    """[mailer]: what every provider reads. Each provider's class below adds its own keys."""

    file: str  # the config file's name, for errors raised when the mailer is built
    provider: str = setting("outbox")
    # The service's API; "" for the outbox. Empty in the file: the provider's public API.
    url: str = setting("")
    api_key_env: str = setting("PUBLISHER_MAILER_KEY", read=_env_name)
    timeout: float = setting(30.0)
    retries: int = setting(2, high=100)  # quick retries within one run
    max_retry_seconds: float = setting(120.0)  # and the most time they may take
    max_attempts: int = setting(10, low=1, high=1000)  # runs that may try a batch before it is failed
    rate: float = setting(0.0, read=_rate)  # messages (recipients) per second; 0 = no limit
    concurrency: int = setting(1, low=1, high=64)  # requests in flight at once
    batch_size: int = setting(0)  # recipients per request; 0 = the provider's own limit

    # The provider's public API ("{region}" filled in); "": the operator's own, url required;
    # None: no API at all.
    api_url: ClassVar[str | None] = None
    # The service keeps the subscriber list: the digest goes to its list, not to [digest] to
    # or the local subscribers.
    owns_list: ClassVar[bool] = False

    def api_key(self) -> str | None:
        """The secret, read from the environment at the moment it is needed."""
        return os.environ.get(self.api_key_env) or None

    def where(self, key: str) -> str:
        return f"{self.file}: [mailer] {key}"


@dataclass(frozen=True)
class OutboxConfig(MailerConfig):
    provider: Literal["outbox"] = setting("outbox")
    outbox_dir: Path = setting("outbox")


@dataclass(frozen=True)
class WebhookConfig(MailerConfig):
    provider: Literal["webhook"] = setting("webhook")
    api_url: ClassVar[str | None] = ""


@dataclass(frozen=True)
class MailgunConfig(MailerConfig):
    provider: Literal["mailgun"] = setting("mailgun")
    domain: str = setting("", read=_mailgun_domain)  # the Mailgun sending domain
    api_url: ClassVar[str | None] = "https://api.mailgun.net"


@dataclass(frozen=True)
class SendgridConfig(MailerConfig):
    provider: Literal["sendgrid"] = setting("sendgrid")
    api_url: ClassVar[str | None] = "https://api.sendgrid.com"


@dataclass(frozen=True)
class PostmarkConfig(MailerConfig):
    provider: Literal["postmark"] = setting("postmark")
    message_stream: str = setting("broadcast", read=_message_stream)
    api_url: ClassVar[str | None] = "https://api.postmarkapp.com"


@dataclass(frozen=True)
class SesConfig(MailerConfig):
    provider: Literal["ses"] = setting("ses")
    region: str = setting("us-east-1", read=_aws_region)
    api_url: ClassVar[str | None] = "https://email.{region}.amazonaws.com"


@dataclass(frozen=True)
class ResendConfig(MailerConfig):
    provider: Literal["resend"] = setting("resend")
    api_url: ClassVar[str | None] = "https://api.resend.com"


@dataclass(frozen=True)
class ListmonkConfig(MailerConfig):
    provider: Literal["listmonk"] = setting("listmonk")
    lists: tuple[int, ...] = setting(read=_list_ids)  # listmonk list ids
    username: str = setting("", read=_stripped)  # the API user
    api_url: ClassVar[str | None] = ""
    owns_list: ClassVar[bool] = True


@dataclass(frozen=True)
class ButtondownConfig(MailerConfig):
    provider: Literal["buttondown"] = setting("buttondown")
    api_url: ClassVar[str | None] = "https://api.buttondown.com"
    owns_list: ClassVar[bool] = True


# [mailer], by provider: a tagged union on `provider`.
ProviderConfig = (
    OutboxConfig
    | WebhookConfig
    | MailgunConfig
    | SendgridConfig
    | PostmarkConfig
    | SesConfig
    | ResendConfig
    | ListmonkConfig
    | ButtondownConfig
)
_MAILERS: tuple[type[MailerConfig], ...] = (
    OutboxConfig, WebhookConfig, MailgunConfig, SendgridConfig, PostmarkConfig, SesConfig, ResendConfig,
    ListmonkConfig, ButtondownConfig,
)  # fmt: skip


def _tag(cls: type[MailerConfig]) -> str:
    """The provider a class stands for: the default of its ``provider`` field."""
    return str(next(f.metadata["default"] for f in fields(cls) if f.name == "provider"))


MAILERS: dict[str, type[MailerConfig]] = {_tag(cls): cls for cls in _MAILERS}
PROVIDERS = tuple(MAILERS)
LIST_OWNERS = tuple(name for name, cls in MAILERS.items() if cls.owns_list)

_SECTIONS: dict[str, tuple[type[DataclassInstance], ...]] = {
    "site": (SiteConfig,),
    "store": (StoreConfig,),
    "articles": (ArticlesConfig,),
    "feed": (FeedConfig,),
    "digest": (DigestConfig,),
    "signup": (SignupConfig,),
    "mailer": _MAILERS,
    "daemon": (DaemonConfig,),
    "server": (ServerConfig,),
    "bounces": (BouncesConfig,),
    "bucket": (BucketConfig,),
    "sources": (SourceConfig,),  # [[sources]]: a list of tables, each with these keys
}
# Every key each section accepts (another is refused as a typo): the fields made with
# setting(); [mailer] takes any provider's. `publisher init`'s publisher.toml documents each
# of them (tests/test_cli_init.py checks it).
KEYS: dict[str, frozenset[str]] = {
    name: frozenset(key for cls in classes for key in _keys(cls)) for name, classes in _SECTIONS.items()
}


@dataclass(frozen=True)
class Config:
    path: Path
    site: SiteConfig
    store: StoreConfig
    articles: ArticlesConfig
    feed: FeedConfig
    daemon: DaemonConfig
    server: ServerConfig
    digest: DigestConfig
    mailer: ProviderConfig
    signup: SignupConfig | None = None  # None only for a Config made by hand; load() always sets it
    bounces: BouncesConfig = BouncesConfig()
    # [[sources]]: remote feeds whose items become articles (publisher.sources)
    sources: tuple[SourceConfig, ...] = ()
    bucket: BucketConfig | None = None  # [bucket] name set: the feeds go to the bucket too
    # Every digest, the first being ``digest``: one [digest], or the [[digest]] blocks
    digests: tuple[DigestConfig, ...] = ()

    def __post_init__(self) -> None:
        if not self.digests:  # a Config made by hand: its one digest
            object.__setattr__(self, "digests", (self.digest,))

    def for_digest(self, name: str) -> Config:
        """This config as the digest ``name`` sees it: ``digest`` is that one."""
        if name == self.digest.name:  # by name: a Config made with replace(config, digest=...) keeps its own
            return self
        chosen = next((d for d in self.digests if d.name == name), None)
        if chosen is None:
            raise ConfigError(f"{self.path.name}: --digest", f"no digest named {name!r}; {self.digest_names()}")
        return replace(self, digest=chosen, digests=self.digests)

    def digest_where(self) -> str:
        """How an error names a key of this digest, up to the key: "publisher.toml: [digest] "
        for the single [digest], "publisher.toml: digest[1]." for a [[digest]] block."""
        if len(self.digests) == 1:
            return f"{self.path.name}: [digest] "
        index = next((i for i, d in enumerate(self.digests) if d.name == self.digest.name), 0)
        return f"{self.path.name}: digest[{index}]."

    def digest_names(self) -> str:
        return "the digests are " + ", ".join(d.name for d in self.digests)

    def each_digest(self) -> list[Config]:
        """One config per digest, in the file's order."""
        return [self.for_digest(d.name) for d in self.digests]

    def chosen_digests(self, name: str | None) -> list[Config]:
        """The digest ``name`` (``--digest NAME``), or every digest when it is None."""
        return self.each_digest() if name is None else [self.for_digest(name)]

    # The names the settings had before they were sections.
    @property
    def store_url(self) -> str:
        return self.store.url

    @property
    def articles_dir(self) -> Path:
        return self.articles.dir

    @property
    def follow_symlinks(self) -> bool:
        return self.articles.follow_symlinks

    @property
    def max_bytes(self) -> int:
        return self.articles.max_bytes

    @property
    def refresh_minutes(self) -> int:
        return self.daemon.refresh_minutes

    @property
    def stall_seconds(self) -> int:
        return self.daemon.stall_seconds
