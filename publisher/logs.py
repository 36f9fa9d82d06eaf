"""Where the log goes: stderr, as ``publisher: ...`` lines or, with ``--log-format json``, one
JSON object a line that a log collector can read and an operator can filter by digest or batch.

A JSON record holds ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, the context
fields in :data:`FIELDS` that the record carries (``extra={"digest_id": ...}``), and, for an
exception, ``error`` on one line. :func:`setup` puts one handler on the root logger, so the
libraries' records (APScheduler's, uvicorn's) come out in the same format.

Every line goes through :func:`redact` with the values of the secrets' environment variables.
The code already keeps secrets out of its messages; this catches whatever slips through.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

# publisher.http (httpx) and SQLAlchemy are imported where they are used: `publisher --help`
# imports this module for FORMATS and should not pay for them.
if TYPE_CHECKING:
    from publisher.config import Config

Format = Literal["text", "json"]
FORMATS: tuple[Format, ...] = ("text", "json")
# Context a record may carry as ``extra``: these, and only these, become JSON fields.
FIELDS = ("digest_id", "batch_key", "batch_state", "provider", "article", "path", "job")
# Read before any config is loaded: the config's default variable names, and the AWS secrets
# (SES reads those whatever the config says). protect() adds the names a config sets.
_SECRET_ENV = ("PUBLISHER_MAILER_KEY", "PUBLISHER_UNSUBSCRIBE_SECRET", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# A secret shorter than this, or written in the config, is refused (see protect): redacting a
# common word ("secret") from every line would garble the very message that should help.
MIN_SECRET_CHARS = 16


@dataclass
class _State:
    format: Format = "text"
    verbose: bool = False  # -v: publisher's debug records, APScheduler's records, whole tracebacks
    secrets: list[str] = field(default_factory=list)
    handler: logging.Handler | None = None
    displays: int = 0  # progress displays showing each batch right now


_state = _State()


def setup(format: Format = "text", level: int = logging.INFO) -> None:
    """Log to stderr in ``format``, publisher's records from ``level`` and the libraries' from INFO.

    APScheduler's records (jobs added, run, executed: the scheduler's internals, which the
    daemon's own lines say in plain words) only at DEBUG, that is with ``-v``; otherwise
    only its errors, on one line; a job's failure is the daemon's own line.

    Calling it again replaces what the last call set up (the CLI runs once per command, but
    tests run it many times in one process).
    """
    _state.format = format
    _state.verbose = level <= logging.DEBUG
    # Weak values are not redacted: protect() refuses them, in a line they must not garble.
    names = "\n".join(_SECRET_ENV)
    _state.secrets = [value for value in _values(_SECRET_ENV) if _weakness(value, names) is None]
    _state.displays = 0
    root = logging.getLogger()
    if _state.handler is not None:
        root.removeHandler(_state.handler)
    handler = _Stderr()
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter("publisher: %(message)s"))
    handler.addFilter(_not_shown_twice)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("publisher").setLevel(level)
    logging.getLogger("apscheduler").setLevel(logging.INFO if _state.verbose else logging.ERROR)
    logging.getLogger("apscheduler.executors").setLevel(logging.INFO if _state.verbose else logging.CRITICAL)
    _state.handler = handler
    if format == "json":
        sys.excepthook = _log_crash  # a traceback on stderr would be the one line that is not JSON
    elif sys.excepthook is _log_crash:
        sys.excepthook = sys.__excepthook__


def protect(config: Config) -> None:
    """Also redact the secrets ``config`` names: its API key and HMAC variables, URL tokens.

    A weak secret in one of those variables (too short, or written in the config file) is a
    ConfigError naming the variable, before any work.
    """
    from publisher import http
    from publisher.errors import ConfigError

    names = tuple(dict.fromkeys((config.mailer.api_key_env, config.digest.secret_env, *_SECRET_ENV)))
    context = "\n".join((_text_of(config.path), *names))
    for name in names:
        value = os.environ.get(name)
        problem = _weakness(value, context) if value else None
        if value and problem is not None:
            _state.secrets = [secret for secret in _state.secrets if secret != value]
            raise ConfigError(f"environment variable {name}", f"{problem}; set a random value (or unset it)")
    _state.secrets = _values(names) + http.url_secrets(config.mailer.url) + _store_password(config.store_url)


def _weakness(value: str, context: str) -> str | None:
    """Why ``value`` is too weak to be a secret (None if it is not): too short, or a word of ``context``."""
    if len(value) < MIN_SECRET_CHARS:
        return f"too short for a secret ({len(value)} characters; use at least {MIN_SECRET_CHARS})"
    if value in context:
        return "its value is a word of the configuration (the config file, a variable's name), not a secret"
    return None


def _text_of(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def is_json() -> bool:
    return _state.format == "json"


def redact(text: str) -> str:
    from publisher import http

    return http.redact(text, _state.secrets)


@contextmanager
def batches_shown() -> Iterator[None]:
    """While a progress display shows every batch, their log records would say it twice: drop them."""
    _state.displays += 1
    try:
        yield
    finally:
        _state.displays -= 1


def _not_shown_twice(record: logging.LogRecord) -> bool:
    return not (_state.displays and hasattr(record, "batch_state"))


def _values(names: tuple[str, ...]) -> list[str]:
    return [value for name in names if (value := os.environ.get(name))]


def _store_password(url: str) -> list[str]:
    from publisher.store.urls import password  # SQLAlchemy's parser: only when a store URL is set

    found = password(url)  # None also for an unparsable URL, refused when the config loaded
    return [found] if found else []


class _Stderr(logging.Handler):
    """Writes to ``sys.stderr`` as it is at each record: click's test runner swaps it per command."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        """One line, an exception included (the whole traceback with ``-v``)."""
        error = record.exc_info[1] if record.exc_info else None
        if _state.verbose or error is None:
            return redact(super().format(record))
        record.message = record.getMessage()
        return redact(f"{self.formatMessage(record)} ({one_line(error)})")


class JsonFormatter(logging.Formatter):
    """One JSON object a line; every string in it redacted before it is encoded."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value if isinstance(value, int | float) else str(value)
        if record.exc_info and record.exc_info[1] is not None:
            entry["error"] = one_line(record.exc_info[1])
        return json.dumps({key: redact(v) if isinstance(v, str) else v for key, v in entry.items()})


def one_line(error: BaseException) -> str:
    """``ValueError: bad thing (at file.py:12 in function)``: the exception and where it was raised."""
    text = " ".join("".join(traceback.format_exception_only(error)).split())
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return text
    last = frames[-1]
    return f"{text} (at {Path(last.filename).name}:{last.lineno} in {last.name})"


def _log_crash(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        logging.getLogger("publisher").error("interrupted")
        return
    logging.getLogger("publisher").critical("crashed (a bug: please report it)", exc_info=(kind, error, tb))
