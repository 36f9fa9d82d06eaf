"""``publisher config check``: everything that can be checked without sending or writing.

The settings (all of ``publisher.toml``, and the secrets' strength), the folders they name,
the digest's subject and templates, the secrets the provider and the local list need, the
store (reached and read, never created or migrated), the provider's host (its name resolves),
and the next digest. One :class:`Finding` per check; any ``error`` means a run would stop.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from publisher import config as config_module
from publisher import hold, logs
from publisher.config import Config
from publisher.errors import PublisherError
from publisher.store import Store, safe_url, urls


class Level(StrEnum):
    OK = "ok"
    WARNING = "warning"  # works, but probably not what was meant
    ERROR = "error"  # a run would stop here


@dataclass(frozen=True)
class Finding:
    level: Level
    message: str

    def line(self) -> str:
        return f"{self.level}: {self.message}"


def check(path: Path, when: datetime) -> list[Finding]:
    """Every finding about the config at ``path``; the first is the config itself."""
    try:
        config = config_module.load(path)
        logs.protect(config)
    except PublisherError as exc:
        return [Finding(Level.ERROR, str(exc))]
    findings = [Finding(Level.OK, f"{config.path}: every setting is valid")]
    for step in _CHECKS:
        try:
            findings.extend(step(config, when))
        except PublisherError as exc:  # each check's own trouble, as one line
            findings.append(Finding(Level.ERROR, str(exc)))
    return findings


def failed(findings: list[Finding]) -> bool:
    return any(f.level == Level.ERROR for f in findings)


def _folders(config: Config, when: datetime) -> Iterator[Finding]:
    name = config.path.name
    if config.articles_dir.is_dir():
        yield Finding(Level.OK, f"{name}: [articles] dir: {config.articles_dir}")
    else:
        yield Finding(
            Level.ERROR, f"{name}: [articles] dir: folder not found: {config.articles_dir} (create it, or fix the path)"
        )
    outputs = [("[feed] dir", config.feed.dir)]
    if config.mailer.provider == "outbox":
        outputs.append(("[mailer] outbox_dir", config.mailer.outbox_dir))
    for key, folder in outputs:
        blocked = _unwritable(folder)
        if blocked is None:
            yield Finding(Level.OK, f"{name}: {key}: {folder} can be written")
        else:
            yield Finding(Level.ERROR, f"{name}: {key}: {folder} cannot be written ({blocked})")


def _unwritable(folder: Path) -> str | None:
    """Why ``folder`` (or the folders it would be created in) cannot be written; None if it can."""
    at = folder
    while not at.exists():
        at = at.parent
    if not at.is_dir():
        return f"{at} is not a folder"
    if not os.access(at, os.W_OK | os.X_OK):
        return f"no permission to write in {at}"
    return None


def _templates(config: Config, when: datetime) -> Iterator[Finding]:
    from publisher import digest

    for each in config.each_digest():  # several [[digest]] blocks: each one's, named by its block
        digest.check_templates(each)
        where = each.digest.templates_dir or "the bundled templates"
        yield Finding(Level.OK, f"{each.digest_where().rstrip('. ')} subject and templates ({where}) compile")


def _secrets(config: Config, when: datetime) -> Iterator[Finding]:
    from publisher import subscribers
    from publisher.delivery import build_mailer

    if any(d.recipients == "subscribers" for d in config.digests):
        subscribers.secret(config)
        yield Finding(Level.OK, f"{config.path.name}: [digest] secret_env: {config.digest.secret_env} is set")
    mailer = build_mailer(config)  # a ConfigError naming the variable when a secret it needs is missing
    mailer.close()
    yield Finding(
        Level.OK, f"{config.path.name}: [mailer] provider {config.mailer.provider}: its settings are complete"
    )


def _provider_host(config: Config, when: datetime) -> Iterator[Finding]:
    if not config.mailer.url:
        return
    parts = urlsplit(config.mailer.url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        yield Finding(
            Level.ERROR, f"{config.path.name}: [mailer] url: {host} does not resolve ({reason}); check the name and DNS"
        )
        return
    yield Finding(Level.OK, f"{config.path.name}: [mailer] url: {host} resolves")


def _store(config: Config, when: datetime) -> Iterator[Finding]:
    from publisher.scheduler import next_digest_time  # apscheduler: only when asked

    shown = safe_url(config.store_url)
    database = urls.sqlite_file(config.store_url)
    held = None
    if database is not None and not Path(database).is_file():
        folder = Path(database).parent
        blocked = _unwritable(folder)
        if blocked is not None:
            yield Finding(Level.ERROR, f"store: {shown}: cannot be created ({blocked}) ([store] url)")
        else:
            yield Finding(Level.OK, f"store: no store yet at {shown}; `publisher run` creates it")
    else:
        store = Store(config.store_url)
        try:
            if store.has_schema():
                yield Finding(Level.OK, f"store: {shown} reached, schema v{store.schema_version()}")
                held = hold.held_since(store)
            else:
                yield Finding(Level.OK, f"store: {shown} reached, empty; `publisher run` creates the tables")
        finally:
            store.close()
    for each in config.each_digest():
        upcoming = next_digest_time(each, when)
        schedule = f"'{each.digest.schedule}', {each.digest.timezone.key}"
        label = "next digest" if len(config.digests) == 1 else f"next digest {each.digest.name}"
        yield Finding(Level.OK, f"{label}: {upcoming.isoformat() if upcoming else 'never'} ({schedule})")
    if held is not None:
        yield Finding(Level.WARNING, hold.message(held))


_CHECKS: list[Callable[[Config, datetime], Iterator[Finding]]] = [
    _folders,
    _templates,
    _secrets,
    _provider_host,
    _store,
]
