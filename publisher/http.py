"""What every outgoing HTTP call shares (mailing APIs in delivery, hubs in websub).

- who we are (``USER_AGENT``);
- which failures are worth another try (timeouts, connection errors, 408, 429, 500, 502, 503,
  504), and how long to wait: the server's ``Retry-After`` or exponential backoff with jitter,
  within a cap on attempts and, for callers that give one, on the total time;
- how a server's error reads on one line, with no secret in it: URLs may carry a token
  (``user:pass@``, a query string) and servers sometimes echo credentials back.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    stop_never,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

from publisher import __version__

USER_AGENT = f"publisher/{__version__}"
RETRY_AFTER_CAP = 30.0  # seconds: without a time budget, a server asking for longer is tried after this
# Passing failures: the request timed out on the server's side (408, like our own timeouts), too
# many requests (429), a server or gateway having trouble (500, 502, 503, 504). Not 501 or 505+:
# a method or version the server does not support stays unsupported; not 425, which answers TLS
# early data, which httpx never sends. Providers add their own (SES throttling errors, Resend's
# concurrent_idempotent_requests).
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# 0.5 s, 1 s, 2 s ... up to 10 s, each plus up to 1 s of jitter. (wait_exponential_jitter would
# do, but its `initial` is deprecated in tenacity 9 and its `multiplier` missing before.)
_BACKOFF = wait_exponential(multiplier=0.5, max=10) + wait_random(0, 1)
_MIN_SECRET = 4  # shorter query values ("1", "yes") are not tokens; redacting them garbles text

# httpx logs every request at INFO with its full URL, query-string token included, and the CLI
# logs INFO to stderr: keep httpx to warnings.
logging.getLogger("httpx").setLevel(logging.WARNING)


def retryable_status(status: int) -> bool:
    return status in _RETRYABLE_STATUS


def retrying(
    retries: int,
    sleep: Callable[[float], None] = time.sleep,
    *,
    idempotent: bool = True,
    max_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Retrying:
    """Up to ``retries`` more attempts for an exception whose ``retryable`` is true.

    The wait is the exception's ``retry_after`` (seconds) when it has one, else the backoff.
    Without ``idempotent``, a failure that may have been delivered is not repeated.

    ``max_seconds`` is a budget that starts now (make one Retrying per call): no wait may end
    after it, so a server asking for more time than is left is tried again on the next run.
    Without a budget, a ``Retry-After`` is waited for at most RETRY_AFTER_CAP.
    """

    def worth_another_try(exc: BaseException) -> bool:
        if idempotent is False and getattr(exc, "maybe_delivered", False):
            return False
        return bool(getattr(exc, "retryable", False))

    budget = _OutOfTime(clock() + max_seconds, clock) if max_seconds is not None else stop_never
    return Retrying(
        stop=stop_any(stop_after_attempt(max(retries, 0) + 1), budget),
        wait=_wait if max_seconds is not None else _capped_wait,
        retry=retry_if_exception(worth_another_try),
        sleep=sleep,
        reraise=True,
    )


class _OutOfTime(stop_base):
    """Stop when the next wait would end after ``deadline`` (tenacity computes the wait first)."""

    def __init__(self, deadline: float, clock: Callable[[], float]) -> None:
        self.deadline, self.clock = deadline, clock

    def __call__(self, state: RetryCallState) -> bool:
        return self.clock() + state.upcoming_sleep > self.deadline


def _wait(state: RetryCallState) -> float:
    failure = state.outcome.exception() if state.outcome is not None else None
    asked = getattr(failure, "retry_after", None)
    return float(asked) if asked is not None else float(_BACKOFF(state))


def _capped_wait(state: RetryCallState) -> float:
    return min(_wait(state), RETRY_AFTER_CAP)


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delay-seconds or an HTTP date); None if absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        # A real wait, so the real clock: clock.now() may be fixed by a test or a replay.
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(seconds, 0.0)


def describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def error_text(response: httpx.Response) -> str:
    """The server's own error message, whole: :func:`redact` it before :func:`shorten`."""
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or json.dumps(body))
    return str(body)


def shorten(text: str) -> str:
    """One short line. Only after redacting: a cut through a token would keep part of it."""
    return one_line(text)[:300]


def one_line(text: str) -> str:
    return " ".join(text.split())


def printable_url(url: str) -> str:
    """``url`` without user:password@, query string or fragment: what may be printed."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unreadable URL>"
    return one_line(urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", "")))


def url_secrets(url: str) -> list[str]:
    """Every form of a token in ``url`` that a server's error or an httpx message could echo."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]  # nothing can be told apart: hide the whole URL
    found: list[str] = []
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        user, _, password = userinfo.partition(":")
        found += [userinfo, user, password, unquote(user), unquote(password)]
        found.append(basic_auth(unquote(user), unquote(password)))  # httpx sends user:pass@ as Basic auth
    if parts.query:
        found.append(parts.query)
        found += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
        for piece in parts.query.split("&"):
            found += [piece, piece.partition("=")[2]]  # as written, percent-escapes and all
    if parts.fragment:
        found.append(parts.fragment)
    return found


def basic_auth(user: str, password: str) -> str:
    """The base64 of ``user:password`` as a Basic ``Authorization`` header carries it."""
    return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def redact(text: str, secrets: list[str]) -> str:
    # Longest first, so a token is replaced whole before any shorter piece of it.
    for secret in sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text
