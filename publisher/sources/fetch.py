"""One HTTP GET of a feed or an article page, with the manners a feed reader owes a server.

- conditional: the ETag and Last-Modified of the last answer go back as If-None-Match and
  If-Modified-Since, and a 304 is "nothing new" without a body;
- compressed: httpx asks for gzip and decodes it; the size cap counts the decoded bytes, so a
  small gzip bomb is refused like a big body;
- redirects followed (at most :data:`MAX_REDIRECTS`); when every hop was permanent (301, 308)
  the caller is told the new URL to remember;
- bounded: ``timeout`` seconds for each network wait and for the whole body (httpx's timeouts
  are per read, so a server dripping a byte a second would pass them), ``max_bytes`` for the
  body, refused from Content-Length before reading when the server says it.

Every failure is a :class:`FetchError` with a one-line reason and no secret from the URL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from publisher.http import USER_AGENT, printable_url, redact, shorten, url_secrets

MAX_REDIRECTS = 5
_PERMANENT = frozenset({301, 308})
FEED_ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, application/xml;q=0.9, "
    "application/json;q=0.8, text/xml;q=0.8, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"


class FetchError(Exception):
    """The fetch failed; ``str()`` is one line for the operator."""


@dataclass(frozen=True)
class Fetched:
    url: str  # the URL finally answered
    moved_to: str | None  # set when every redirect was permanent: the URL to fetch from now on
    not_modified: bool  # 304: the validators still hold
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None


def client() -> httpx.Client:
    """A client for feeds and pages: our User-Agent, redirects followed, no cookies kept."""
    return httpx.Client(
        headers={"User-Agent": f"{USER_AGENT} (feed reader; +https://pypi.org/project/publisher/)"},
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
    )


def get(
    http: httpx.Client,
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    etag: str | None = None,
    last_modified: str | None = None,
    accept: str = FEED_ACCEPT,
) -> Fetched:
    """GET ``url``; a 200 or a 304 is a :class:`Fetched`, anything else a FetchError."""
    headers = {"Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    secrets = url_secrets(url)
    try:
        deadline = time.monotonic() + timeout
        with http.stream("GET", url, headers=headers, timeout=timeout) as response:
            moved = _moved_to(response)
            if response.status_code == 304:
                return Fetched(str(response.url), moved, True, b"", "", etag, last_modified)
            if response.status_code != 200:
                raise FetchError(f"HTTP {response.status_code} {response.reason_phrase} from {_where(response)}")
            body = _read(response, max_bytes, deadline, timeout)
            return Fetched(
                url=str(response.url),
                moved_to=moved,
                not_modified=False,
                body=body,
                content_type=response.headers.get("Content-Type", ""),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
            )
    except httpx.TooManyRedirects:
        raise FetchError(f"more than {MAX_REDIRECTS} redirects from {printable_url(url)}") from None
    except httpx.TimeoutException:
        raise FetchError(f"no answer within {timeout:g} s from {printable_url(url)} (timeout)") from None
    except httpx.HTTPError as exc:
        reason = shorten(redact(str(exc) or type(exc).__name__, secrets))
        raise FetchError(f"{printable_url(url)}: {reason}") from None


def _moved_to(response: httpx.Response) -> str | None:
    if response.history and all(hop.status_code in _PERMANENT for hop in response.history):
        return str(response.url)
    return None


def _where(response: httpx.Response) -> str:
    return printable_url(str(response.url))


def _read(response: httpx.Response, max_bytes: int, deadline: float, timeout: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes and not response.headers.get("Content-Encoding"):
        raise FetchError(f"{_where(response)}: {int(declared):,} bytes, over max_bytes ({max_bytes:,})")
    chunks, size = [], 0
    for chunk in response.iter_bytes():  # decoded: the cap holds for what a gzip body unpacks to
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(f"{_where(response)}: over max_bytes ({max_bytes:,} bytes); stopped reading")
        chunks.append(chunk)
        if time.monotonic() > deadline:  # httpx's timeout is per read: a slow drip passes it
            raise FetchError(f"{_where(response)}: not all read within {timeout:g} s (timeout)")
    return b"".join(chunks)


def host(url: str) -> str:
    return urlsplit(url).hostname or ""


class Pacer:
    """At most one request per ``delay`` seconds to each host (article pages, politely).

    A real wait (time.sleep): it paces our requests to someone else's server.
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.last: dict[str, float] = {}

    def wait(self, url: str) -> None:
        name = host(url)
        now = time.monotonic()
        due = self.last.get(name, now - self.delay) + self.delay
        if due > now:
            time.sleep(due - now)
        self.last[name] = max(now, due)
