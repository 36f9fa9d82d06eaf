"""Store URLs, read with SQLAlchemy's parser so that what is accepted is what can be opened."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

BACKENDS = ("sqlite", "postgresql")


def _parse(url: str) -> URL | None:
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        return None


def url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a store URL, in words for ``[store] url``; None if nothing."""
    parsed = _parse(url)
    if parsed is None:
        return "not a database URL (sqlite:///file.db or postgresql://...)"
    if parsed.get_backend_name() not in BACKENDS:
        return f"unsupported database {parsed.get_backend_name()!r}; use sqlite or postgresql"
    return None


def resolved(url: str, base: Path) -> str:
    """``url`` (checked by :func:`url_problem`) with a relative SQLite file made absolute from ``base``."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parsed = parsed.set(database=str((base / parsed.database).resolve()))
    return parsed.render_as_string(hide_password=False)


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL ("" for an in-memory one); None for another backend
    or an unreadable URL."""
    parsed = _parse(url)
    if parsed is None or parsed.get_backend_name() != "sqlite":
        return None
    return parsed.database or ""


def password(url: str) -> str | None:
    """The URL's password, to keep out of logs; None if it has none (or cannot be read)."""
    parsed = _parse(url)
    return str(parsed.password) if parsed is not None and parsed.password else None


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parsed = _parse(url)
    return parsed.render_as_string(hide_password=True) if parsed is not None else "<invalid store URL>"


def unreadable(url: str) -> str | None:
    """Why SQLAlchemy cannot read ``url`` at all, in its words; None if it can."""
    try:
        make_url(url)
    except Exception as exc:  # ArgumentError, ValueError: whatever the parser refuses with
        return str(exc)
    return None
