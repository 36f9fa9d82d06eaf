"""``publisher serve``: the feeds folder over HTTP, an ASGI app on uvicorn.

    /atom.xml, /rss.xml, /feed.json      the feed documents, with their own media types
    /tags/<tag>.xml, /archive/<m>.xml    Atom
    /feed.xsl                            the stylesheet browsers apply to Atom and RSS
    /, /index.html, /tags/<tag>.html     the feeds' static human pages (publisher.feed.pages)

Every file is also served under the feeds folder's own path in [feed] url (``/feeds/atom.xml``
when the feed is https://news.example.org/feeds/atom.xml), so the URLs written in the feeds
work against this server too.

A browser (its Accept header names text/html) gets Atom and RSS as application/xml: Chromium
shows the feed media types as plain text and never applies feed.xsl to them. Feed readers
get the feed media types; responses say ``Vary: Accept``.

Files are served from memory: each is read once, with its gzip form (when it is over 500
bytes and smaller so), its ETags (a hash of the bytes; one per representation: identity,
gzip, and the application/xml a browser gets, each strong) and its headers, and answered from there
while a stat of the file still gives the same inode, size and mtime; the feed job replaces
files by rename, so a new file is seen on the very next request. That stat, and the read of a
changed file, run on the event loop: a feeds folder is small and local, and a thread hop per
request cost more than the work. Answers: ETag and Last-Modified, 304 on If-None-Match or
If-Modified-Since, gzip with ``Vary: Accept-Encoding``, media types by file name,
Cache-Control from [server] cache_seconds, WebSub ``Link`` headers (each [feed] hubs entry as
rel="hub", the document's public URL as rel="self"), and ``X-Content-Type-Options: nosniff``.
404 for dotfiles (the temp files ``write_atomic`` leaves for a moment), folders and any path
that resolves outside the folder (``..``, encoded ``%2e%2e`` or ``%2f``, symlinks out); 405
for methods other than GET and HEAD. A Range header is ignored: the whole file, 200, is a
valid answer to it, and feeds are small.

The feeds are plain static files: any web server or CDN can serve them instead of this one.

Unsubscribing ([digest] recipients = "subscribers") is the one dynamic page. It is served at
the path of [digest] unsubscribe_url (``/unsubscribe`` for https://news.example.org/unsubscribe),
the path a reverse proxy forwards for that URL; each reader's link adds ``?s=TOKEN&t=SIG``
(see publisher.subscribers). With recipients = "to" that path is 404, whatever the method.

    GET, HEAD   a page asking to confirm, with a form that POSTs back to the same URL; it
                changes nothing, since mail scanners and link previews fetch every URL
    POST        unsubscribes: RFC 8058 one-click from the mail client, or the page's form.
                Idempotent: a second POST is answered 200 as well. The body is not read: the
                signed token in the URL is what authorises it, and refusing a POST over the
                wording of its body would only fail a reader whose mail provider words it
                otherwise (RFC 8058 sends List-Unsubscribe=One-Click, urlencoded or multipart)

The sign-up pages (publisher.signup_pages) are served at the path of [signup] url and that
path + ``/confirm`` whenever the unsubscribe page is. Every page of publisher's own is rate
limited per client (publisher.ratelimit); too many requests are 429 and change nothing.
With the local list, ``POST /webhooks/<provider>`` also takes the providers' bounce and
complaint reports, for each provider set up in [bounces] (see publisher.bounces.webhooks).

The signature is checked in constant time before the store is touched; a missing, forged or
unknown token is 400 and changes nothing. The pages set no cookie, never redirect, are not
cached (``no-store``), send no Referer (the token is in the URL), and carry a
Content-Security-Policy that allows no script, style or frame. The access log shows paths
without their query string, so that the tokens stay out of it.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import mimetypes
import os
import posixpath
import socket
import stat
import sys
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import formatdate, mktime_tz, parsedate_tz
from http import HTTPStatus
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher import clock, logs, pages, signup_pages, subscribers
from publisher.config import Config, FeedConfig
from publisher.errors import PublisherError, StoreError
from publisher.notices import Sender
from publisher.ratelimit import Limiter
from publisher.signals import stop_on_signals
from publisher.states import SubscriberState
from publisher.store import Store

ATOM = "application/atom+xml; charset=utf-8"
RSS = "application/rss+xml; charset=utf-8"
JSON_FEED = "application/feed+json; charset=utf-8"
XSL = "text/xsl; charset=utf-8"  # what browsers accept for <?xml-stylesheet?>
_BY_NAME = {"atom.xml": ATOM, "rss.xml": RSS, "feed.json": JSON_FEED, "issues.xml": ATOM}
_ATOM_FOLDERS = ("tags", "archive")
_FEED_SUFFIXES = (".xml", ".json")  # feed documents: they get the WebSub Link headers
# Characters a URL may keep as they are inside <...> of a Link header; the rest is %-encoded.
_URL_SAFE = ":/?#[]@!$&'()*+,;=%"
_PAGE_HEADERS = pages.headers("unsubscribe.html.j2")

logger = logging.getLogger(__name__)


def for_browser(media: str, accept: str) -> str:
    """The Content-Type for a client whose Accept header is ``accept``: see the module docstring."""
    if media in (ATOM, RSS) and "text/html" in accept:
        return "application/xml; charset=utf-8"
    return media


def media_type(path: PurePosixPath) -> str:
    """The Content-Type of a file, by its path relative to the feeds folder."""
    if path.as_posix() in _BY_NAME:
        return _BY_NAME[path.as_posix()]
    if path.suffix == ".xml":
        return ATOM if path.parts[0] in _ATOM_FOLDERS else "application/xml; charset=utf-8"
    if path.suffix == ".xsl":
        return XSL
    if path.suffix == ".html":
        return "text/html; charset=utf-8"
    if path.suffix == ".json":
        return "application/json"
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


Headers = list[tuple[bytes, bytes]]
_NOSNIFF = (b"x-content-type-options", b"nosniff")
# The feeds' static pages: their own inline style and images from anywhere, nothing else.
_PAGE_POLICY = (
    b"default-src 'none'; style-src 'unsafe-inline'; img-src http: https:; base-uri 'none'; form-action 'none'"
)
PAGE = "index.html"
_GZIP_FROM = 500  # bytes: smaller files are not worth a gzip header (what Starlette's GZipMiddleware uses)
_CACHED_FILES = 4096  # at most this many files in memory; a feeds folder holds far fewer


@dataclass(frozen=True)
class _File:
    """One file of the feeds folder as it is answered: its bytes and headers, made once per change."""

    key: tuple[int, int, int, int]  # device, inode, size, mtime in ns: a stat that differs means a new file
    path: str  # resolved, inside the folder
    body: bytes
    gzipped: bytes | None  # None when gzip does not make it smaller
    # By (browser, gzip): one strong ETag per representation, since each has other bytes or
    # another Content-Type (a cache must not answer one with the other).
    etags: dict[tuple[bool, bool], bytes]
    last_modified: bytes
    mtime: int  # whole seconds, what Last-Modified and If-Modified-Since can say
    # The 200 headers but Content-Length, and the 304 headers, by (browser, gzip).
    ok: dict[tuple[bool, bool], Headers]
    not_modified: dict[tuple[bool, bool], Headers]

    def matches(self, if_none_match: bytes) -> bool:
        """If-None-Match names one of this file's representations (weak comparison, RFC 9110
        13.1.2): all are made from these bytes, so a cache that stored one form may revalidate
        it for a client that takes another; the 304 carries the chosen one's ETag."""
        if if_none_match.strip() == b"*":
            return True
        known = set(self.etags.values())
        return any(tag.strip().removeprefix(b"W/") in known for tag in if_none_match.split(b","))


def _read(path: str, relative: PurePosixPath, cache_control: bytes, links: Headers) -> _File | None:
    """The file at ``path`` (resolved) with its answers, or None when it is not a regular file."""
    try:
        # O_NONBLOCK: opening a FIFO someone left in the folder must not stall the event loop.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as file:
            found = os.fstat(file.fileno())
            if not stat.S_ISREG(found.st_mode):
                return None
            body = file.read()
    except (OSError, ValueError):  # gone, unreadable, or a name the OS refuses
        return None
    gzipped = gzip.compress(body, mtime=0) if len(body) >= _GZIP_FROM else None
    if gzipped is not None and len(gzipped) >= len(body):
        gzipped = None
    tag = hashlib.sha256(body).hexdigest()[:32]
    last_modified = formatdate(found.st_mtime, usegmt=True).encode()
    media = media_type(relative)
    negotiated = media in (ATOM, RSS)  # a browser gets them as application/xml
    vary = [b"Accept"] if negotiated else []
    vary += [b"Accept-Encoding"] if gzipped is not None else []
    # The same Vary on a 200 and on a 304 (RFC 9110 15.4.5: a 304 sends what a 200 would).
    common = [(b"cache-control", cache_control), *([(b"vary", b", ".join(vary))] if vary else []), _NOSNIFF]
    if relative.suffix == ".html":
        common.append((b"content-security-policy", _PAGE_POLICY))
    ok: dict[tuple[bool, bool], Headers] = {}
    etags: dict[tuple[bool, bool], bytes] = {}
    not_modified: dict[tuple[bool, bool], Headers] = {}
    for browser in (False, True):
        content_type = (b"content-type", (for_browser(media, "text/html") if browser else media).encode())
        for zipped in (False, True):
            suffix = ("-xml" if browser and negotiated else "") + ("-gzip" if zipped else "")
            etags[browser, zipped] = f'"{tag}{suffix}"'.encode()
            encoding = [(b"content-encoding", b"gzip")] if zipped else []
            ok[browser, zipped] = [
                content_type,
                (b"etag", etags[browser, zipped]),
                (b"last-modified", last_modified),
                *common,
                *links,
                *encoding,
            ]
            not_modified[browser, zipped] = [
                (b"etag", etags[browser, zipped]),
                (b"last-modified", last_modified),
                *common,
                *links,
            ]
    return _File(
        key=(found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns),
        path=path,
        body=body,
        gzipped=gzipped,
        etags=etags,
        last_modified=last_modified,
        mtime=int(found.st_mtime),
        ok=ok,
        not_modified=not_modified,
    )


class FeedFiles:
    """The feeds folder as an ASGI app, answered from memory: see the module docstring."""

    def __init__(self, feed: FeedConfig, *, cache_seconds: int) -> None:
        self.directory = os.fspath(feed.dir)
        self._cache_control = f"public, max-age={cache_seconds}".encode()
        self._hub_links = [(b"link", f'<{_header_url(hub)}>; rel="hub"'.encode()) for hub in feed.hubs]
        self._base_url = _header_url(feed.base_url)
        self._prefix = unquote(urlsplit(feed.base_url).path).rstrip("/")
        # By request path, for the fast way; and by path in the folder, so that the many request
        # paths that name one file (//atom.xml, tags/../atom.xml) share one copy of it.
        self._by_request: dict[str, _File] = {}
        self._by_name: dict[str, _File] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _plain(send, 405, b"Method Not Allowed", [(b"allow", b"GET, HEAD")])
            return
        found = self.lookup(scope["path"])
        if found is None:
            await _plain(send, 404, b"Not Found")
            return
        accept = accept_encoding = if_none_match = if_modified_since = b""
        for name, value in scope["headers"]:
            if name == b"accept":
                accept = value
            elif name == b"accept-encoding":
                accept_encoding = value
            elif name == b"if-none-match":
                if_none_match = value
            elif name == b"if-modified-since":
                if_modified_since = value
        # HEAD answers as a GET without gzip would, so that its Content-Length is the file's.
        zipped = found.gzipped is not None and method == "GET" and b"gzip" in accept_encoding
        variant = (b"text/html" in accept, zipped)
        if _not_modified(found, if_none_match, if_modified_since):
            await send({"type": "http.response.start", "status": 304, "headers": found.not_modified[variant]})
            await send({"type": "http.response.body", "body": b""})
            return
        body = found.gzipped if zipped and found.gzipped is not None else found.body
        headers = [*found.ok[variant], (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body if method == "GET" else b""})

    def lookup(self, path: str) -> _File | None:
        """The file a request path names, fresh from memory, or None (404)."""
        if self._prefix and (path.startswith(self._prefix + "/") or path == self._prefix):
            path = path[len(self._prefix) :] or "/"
        if path.endswith("/"):
            path += PAGE  # the feeds' human page (publisher.feed.pages): / and /feeds/
        cached = self._by_request.get(path)
        if cached is not None and _unchanged(cached):
            return cached
        self._by_request.pop(path, None)
        relative = _relative(path)
        if relative is None:
            return None
        name = relative.as_posix()
        loaded = self._by_name.get(name)
        if loaded is None or not _unchanged(loaded):
            self._by_name.pop(name, None)
            loaded = self._load(relative)
            if loaded is None:
                return None
            _remember(self._by_name, name, loaded)
        _remember(self._by_request, path, loaded)
        return loaded

    def _load(self, relative: PurePosixPath) -> _File | None:
        root = os.path.realpath(self.directory)
        full = os.path.realpath(os.path.join(root, *relative.parts))
        if os.path.commonpath([root, full]) != root:  # a symlink out of the folder
            return None
        links: Headers = []
        if relative.suffix in _FEED_SUFFIXES:
            self_url = f"{self._base_url}{quote(relative.as_posix())}"
            links = [*self._hub_links, (b"link", f'<{self_url}>; rel="self"'.encode())]
        return _read(full, relative, self._cache_control, links)


def _unchanged(cached: _File) -> bool:
    """Whether the file is still the one that was read: the same inode, size and mtime."""
    try:
        found = os.stat(cached.path)
    except OSError:
        return False
    return cached.key == (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)


def _remember(cache: dict[str, _File], key: str, loaded: _File) -> None:
    if len(cache) >= _CACHED_FILES:  # the oldest goes: a bound on what odd request paths can fill
        del cache[next(iter(cache))]
    cache[key] = loaded


def _relative(path: str) -> PurePosixPath | None:
    """A request path as a path inside the folder, or None for dotfiles, ``..`` and the folder itself."""
    if "\x00" in path:
        return None
    normal = posixpath.normpath("/".join(part for part in path.split("/") if part) or ".")
    parts = normal.split("/")
    if any(part.startswith(".") for part in parts):  # ".", "..", and hidden files and folders
        return None
    return PurePosixPath(*parts)


def _not_modified(found: _File, if_none_match: bytes, if_modified_since: bytes) -> bool:
    if if_none_match:  # it wins over If-Modified-Since (RFC 9110 13.1.3)
        return found.matches(if_none_match)
    if not if_modified_since:
        return False
    if if_modified_since == found.last_modified:
        return True
    parsed = parsedate_tz(if_modified_since.decode("latin-1"))
    if parsed is None:
        return False
    return found.mtime <= mktime_tz(parsed)


async def _plain(send: Send, status: int, body: bytes, headers: Headers | None = None) -> None:
    start = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*start, *(headers or []), _NOSNIFF]})
    await send({"type": "http.response.body", "body": body})


class NoSniff:
    """Adds ``X-Content-Type-Options: nosniff`` to every response: browsers trust Content-Type."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("X-Content-Type-Options", "nosniff")
            await send(message)

        await self.app(scope, receive, send_with_header)


LINK_PER_MINUTE, LINK_BURST = 10, 20  # requests for one reader's unsubscribe link


class Unsubscribe:
    """The unsubscribe pages of a local subscriber list (see the module docstring)."""

    def __init__(self, config: Config, store: Store) -> None:
        self.store = store
        self.secret = subscribers.secret(config)
        self.site = config.site.title
        self.language = config.site.language
        # A link we signed is limited on its own: one mail provider's servers click many
        # readers' one-click unsubscribes from one address, and none of those may wait. Links
        # we did not sign (guesses) are limited per client.
        self.per_link = Limiter(LINK_PER_MINUTE, LINK_BURST)
        self.per_client = Limiter(signup_pages.PAGE_PER_MINUTE, signup_pages.PAGE_BURST)
        self.client_header = config.signup.client_header if config.signup else ""

    async def endpoint(self, request: Request) -> Response:
        token, sig = _one(request, "s"), _one(request, "t")
        signed = token is not None and sig is not None and subscribers.check(self.secret, token, sig)
        if signed and token is not None:
            allowed = self.per_link.allow(token)
        else:
            allowed = self.per_client.allow(signup_pages.client_key(request, self.client_header))
        if not allowed:
            return self._page(429, "busy")
        if not signed or token is None:
            return self._page(400, "invalid")
        try:
            if request.method == "POST":
                when = clock.now()
                person = await run_in_threadpool(subscribers.unsubscribe_token, self.store, token, when)
            else:
                person = await run_in_threadpool(subscribers.by_token, self.store, token)
        except StoreError as exc:
            logger.error("unsubscribe: %s", exc)
            return self._page(503, "unavailable")
        if person is None:  # signed by us, but no longer on the list
            return self._page(400, "invalid")
        if request.method == "POST":
            state = "done"
        else:
            state = "already" if person.state == SubscriberState.UNSUBSCRIBED else "confirm"
        # Only a query: the form posts back to this very URL, whatever path a proxy forwarded.
        action = "?" + urlencode({"s": token, "t": sig})
        return self._page(200, state, address=_mask(person.email), action=action)

    def _page(self, status: int, state: str, *, address: str = "", action: str = "") -> Response:
        html = pages.TEMPLATES.get_template("unsubscribe.html.j2").render(
            state=state, site=self.site, language=self.language, address=address, action=action
        )
        return HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)


def _one(request: Request, name: str) -> str | None:
    """The query parameter ``name`` when it is there exactly once."""
    values = request.query_params.getlist(name)
    return values[0] if len(values) == 1 else None


def _mask(address: str) -> str:
    """``j…@example.org``: enough for the reader to recognise, little for anyone else."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}\u2026@{domain}"


class App:
    """The feeds folder, and the page paths (unsubscribe, ...) handed to a Starlette app of their own.

    Feed requests go straight to :class:`FeedFiles`: they are nearly all of the traffic, and a
    router and middleware in front of them cost more than the answer. ``access_log``, when
    given, gets one line per request, its path without the query string (where the
    unsubscribe tokens are): the app writes it rather than uvicorn, whose log record per
    request cost a third of a 304.
    """

    def __init__(
        self,
        files: FeedFiles,
        pages: Starlette,
        pages_paths: Collection[str],
        access_log: Callable[[str], object] | None = None,
    ) -> None:
        self.files = files
        self.pages = pages
        self.pages_paths = frozenset(pages_paths)
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: the events that close the store
            await self.pages(scope, receive, send)
            return
        app: ASGIApp = self.pages if scope["path"] in self.pages_paths else self.files
        if self.access_log is None:
            await app(scope, receive, send)
            return
        status = 0

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_and_note)
        finally:
            self.access_log(_access_line(scope, status))


_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


def _access_line(scope: Scope, status: int) -> str:
    """``127.0.0.1:53412 - "GET /atom.xml HTTP/1.1" 200 OK``: uvicorn's access line, without the query."""
    client = scope.get("client")
    peer = f"{client[0]}:{client[1]}" if client else "-"
    raw = scope["raw_path"].decode("latin-1") if scope.get("raw_path") else scope["path"]
    path = raw.partition("?")[0].replace('"', "%22")  # uvicorn's raw_path has no query; be sure
    answered = _STATUS_LINES.get(status, str(status))  # 0: the app failed before it answered
    return f'{peer} - "{scope["method"]} {path} HTTP/{scope["http_version"]}" {answered}'


def create_app(config: Config, *, access_log: Callable[[str], object] | None = None) -> App:
    """The ASGI app serving ``config.feed.dir`` at ``/`` and at the folder's path in [feed] url.

    With a local subscriber list it opens the store (closed when the app shuts down) and reads
    the link secret now, so that a missing one stops ``publisher serve`` before it listens.
    """
    path = unquote(urlsplit(config.digest.unsubscribe_url).path) or "/"
    store: Store | None = None
    sender: Sender | None = None
    signup_routes: list[Route] = []
    hooks: list[Route] = []
    choosing: list[Route] = []  # the preferences page
    if config.digest.recipients == "subscribers":
        from publisher.bounces import webhooks  # cryptography's imports: only with a list

        store = Store.open(config.store_url)
        try:
            unsubscribe = Unsubscribe(config, store)
            sender = Sender(config, store)  # sends the sign-ups' confirmations and welcomes
            signing = signup_pages.SignUpPages(config, store, sender)
            hooks = webhooks.routes(config, store)  # bounce and complaint webhooks: publisher.bounces
        except PublisherError:
            if sender is not None:
                sender.stop()
            store.close()
            raise
        route = Route(path, unsubscribe.endpoint, methods=["GET", "POST"])
        signup_routes = [
            Route(unquote(signing.form_path), signing.subscribe, methods=["GET", "POST"]),
            Route(unquote(signing.confirm_path), signing.confirm, methods=["GET", "POST"]),
        ]
        choosing = _preferences_routes(config, store)
    else:  # a Response is an ASGI app of its own: every method gets it
        route = Route(path, PlainTextResponse("Not Found", status_code=404))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if sender is not None:
                sender.stop()
            if store is not None:
                store.close()

    middleware = [Middleware(GZipMiddleware), Middleware(NoSniff)]
    routes = [route, *signup_routes, *hooks, *choosing]  # every page of our own: App sends exactly these paths here
    pages = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    pages.state.notices = sender  # tests wait on it: Sender.wait_idle
    files = FeedFiles(config.feed, cache_seconds=config.server.cache_seconds)
    return App(files, pages, [r.path for r in routes], access_log)


def _preferences_routes(config: Config, store: Store) -> list[Route]:
    """The readers' preferences page (publisher.preferences_page), when [digest] preferences_url is set."""
    if not config.digest.preferences_url:
        return []
    from publisher.preferences_page import PreferencesPage  # it uses this module's page helpers

    page = PreferencesPage(config, store)
    return [Route(unquote(urlsplit(config.digest.preferences_url).path) or "/", page.endpoint, methods=["GET", "POST"])]


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port``, or PublisherError saying why there is none."""
    if not 0 <= port <= 65535:  # getaddrinfo would quietly take 99999 as 34463
        raise PublisherError(f"serve: cannot listen on {host}:{port}: ports are 0 to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        # proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only
        # then, and without it every keep-alive response waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise PublisherError(f"serve: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once, despite TIME_WAIT
        sock.bind(address)
        sock.listen()
    except OSError as exc:
        sock.close()
        raise PublisherError(f"serve: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


class Server(uvicorn.Server):
    """uvicorn's server, calling ``on_started`` once it accepts connections."""

    def __init__(self, config: uvicorn.Config, *, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()


def serve(config: Config, *, host: str, port: int) -> None:
    """Serve the feeds folder until SIGTERM or SIGINT; then return (the CLI exits 0)."""
    app = create_app(config, access_log=_access_writer())  # a missing secret or store stops it here
    sock = listen(host, port)  # bound here, so a taken port is one PublisherError, not uvicorn's exit
    bound = sock.getsockname()[1]
    url = f"http://[{host}]:{bound}/" if ":" in host else f"http://{host}:{bound}/"
    if not config.feed.dir.is_dir():
        logger.warning("serve: %s does not exist yet; every path is 404 until `publisher run`", config.feed.dir)
    server_config = uvicorn.Config(
        app,
        host=host,
        port=bound,
        proxy_headers=False,  # no proxy is trusted: the access log shows the real peer
        server_header=False,
        http="httptools",  # a C parser: h11, uvicorn's other one, costs several times more per request
        access_log=False,  # the app writes it: see App
        log_config=_LOGGING,
        timeout_graceful_shutdown=10,  # a stalled client must not hold up a stop for ever
    )
    ready = f"serve: {url} (feeds from {config.feed.dir})"
    server = Server(server_config, on_started=lambda: print(ready, flush=True))
    # The copy of a signal that uvicorn raises again once stopped only asks it to stop again.
    with sock, stop_on_signals(lambda: setattr(server, "should_exit", True)):
        server.run(sockets=[sock])


def _header_url(url: str) -> str:
    """``url`` with anything a header cannot carry (non-ASCII, spaces, ``<>``) %-encoded."""
    return quote(url, safe=_URL_SAFE)


def _access_writer() -> Callable[[str], object]:
    """Where access lines go: straight to stderr as ``publisher: ...`` lines, or as log records
    with ``--log-format json``. A line is one write, as nginx's are; a log record costs more."""
    if logs.is_json():
        access = logging.getLogger("publisher.access")
        return lambda line: access.info("%s", line)
    return lambda line: sys.stderr.write(f"publisher: {line}\n")


# Errors go to stderr, in the CLI's "publisher: ..." style; uvicorn's own start and stop chatter
# (INFO) is left out, the "serve: ..." line on stdout says it is up.
_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "publisher: %(message)s"}},
    "handlers": {
        "plain": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"},
    },
    "loggers": {"uvicorn.error": {"handlers": ["plain"], "level": "WARNING", "propagate": False}},
}
