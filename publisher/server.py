"""``publisher serve``: the feeds folder over HTTP, an ASGI app on uvicorn.

    /atom.xml, /rss.xml, /feed.json      the feed documents, with their own media types
    /tags/<tag>.xml, /archive/<m>.xml    Atom
    /feed.xsl                            the stylesheet browsers apply to Atom and RSS

Every file is also served under the feeds folder's own path in [feed] url (``/feeds/atom.xml``
when the feed is https://news.example.org/feeds/atom.xml), so the URLs written in the feeds
work against this server too.

A browser (its Accept header names text/html) gets Atom and RSS as application/xml: Chromium
shows the feed media types as plain text and never applies feed.xsl to them. Feed readers
get the feed media types; responses say ``Vary: Accept``.

Starlette's StaticFiles does the file work: ETag and Last-Modified, 304 on If-None-Match or
If-Modified-Since, Range, and refusing any path that resolves outside the folder (``..``,
encoded ``%2e%2e`` or ``%2f``, symlinks out). On top of it: media types by file name,
Cache-Control from [server] cache_seconds, WebSub ``Link`` headers (each [feed] hubs entry as
rel="hub", the document's public URL as rel="self"), 404 for dotfiles (the temp files
``write_atomic`` leaves for a moment) and folders, gzip, and ``X-Content-Type-Options: nosniff``.

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

The signature is checked in constant time before the store is touched; a missing, forged or
unknown token is 400 and changes nothing. The pages set no cookie, never redirect, are not
cached (``no-store``), send no Referer (the token is in the URL), and carry a
Content-Security-Policy that allows no script, style or frame. The access log shows paths
without their query string, so that the tokens stay out of it.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import PurePath, PurePosixPath
from types import FrameType
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import jinja2
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher import clock, subscribers
from publisher.config import Config, FeedConfig
from publisher.errors import PublisherError, StoreError
from publisher.store import Store

ATOM = "application/atom+xml; charset=utf-8"
RSS = "application/rss+xml; charset=utf-8"
JSON_FEED = "application/feed+json; charset=utf-8"
XSL = "text/xsl; charset=utf-8"  # what browsers accept for <?xml-stylesheet?>
_BY_NAME = {"atom.xml": ATOM, "rss.xml": RSS, "feed.json": JSON_FEED}
_ATOM_FOLDERS = ("tags", "archive")
_FEED_SUFFIXES = (".xml", ".json")  # feed documents: they get the WebSub Link headers
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Characters a URL may keep as they are inside <...> of a Link header; the rest is %-encoded.
_URL_SAFE = ":/?#[]@!$&'()*+,;=%"
# The unsubscribe pages: nothing cached or referred, no script, style, frame or foreign form.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}
_PAGES = jinja2.Environment(
    loader=jinja2.PackageLoader("publisher.templates", "."), autoescape=True, undefined=jinja2.StrictUndefined
)

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
    if path.suffix == ".json":
        return "application/json"
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


class FeedFiles(StaticFiles):
    """The feeds folder, GET and HEAD only (405 otherwise); anything not a visible file is 404."""

    def __init__(self, feed: FeedConfig, *, cache_seconds: int) -> None:
        super().__init__(directory=feed.dir, check_dir=False)
        self._cache_control = f"public, max-age={cache_seconds}"
        self._hub_links = tuple(f'<{_header_url(hub)}>; rel="hub"' for hub in feed.hubs)
        self._base_url = _header_url(feed.base_url)

    async def check_config(self) -> None:
        """No check: before the first ``publisher run`` the folder is missing and every path is 404."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        # ``path`` is normalised: a ".." part left in it points above the folder.
        if any(part.startswith(".") for part in PurePath(path).parts):
            return "", None
        try:
            return super().lookup_path(path)
        except PermissionError:  # StaticFiles would answer 401, which asks for credentials
            return "", None

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        relative = PurePosixPath(*PurePath(self.get_path(scope)).parts)
        request_headers = Headers(scope=scope)
        media = media_type(relative)
        headers = {"Cache-Control": self._cache_control}
        if media in (ATOM, RSS):
            headers["Vary"] = "Accept"
        response = FileResponse(
            full_path,
            status_code=status_code,
            stat_result=stat_result,
            media_type=for_browser(media, request_headers.get("accept", "")),
            headers=headers,
        )
        if relative.suffix in _FEED_SUFFIXES:
            for link in (*self._hub_links, f'<{self._base_url}{quote(relative.as_posix())}>; rel="self"'):
                response.headers.append("Link", link)
        if self.is_not_modified(response.headers, request_headers):
            return NotModifiedResponse(response.headers)  # keeps ETag and Cache-Control
        return response


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


class Unsubscribe:
    """The unsubscribe pages of a local subscriber list (see the module docstring)."""

    def __init__(self, config: Config, store: Store) -> None:
        self.store = store
        self.secret = subscribers.secret(config)
        self.site = config.site.title
        self.language = config.site.language

    async def endpoint(self, request: Request) -> Response:
        token, sig = _one(request, "s"), _one(request, "t")
        if token is None or sig is None or not subscribers.check(self.secret, token, sig):
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
            state = "already" if person.state == subscribers.UNSUBSCRIBED else "confirm"
        # Only a query: the form posts back to this very URL, whatever path a proxy forwarded.
        action = "?" + urlencode({"s": token, "t": sig})
        return self._page(200, state, address=_mask(person.email), action=action)

    def _page(self, status: int, state: str, *, address: str = "", action: str = "") -> Response:
        html = _PAGES.get_template("unsubscribe.html.j2").render(
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


def create_app(config: Config) -> Starlette:
    """The ASGI app serving ``config.feed.dir`` at ``/`` and at the folder's path in [feed] url.

    With a local subscriber list it opens the store (closed when the app shuts down) and reads
    the link secret now, so that a missing one stops ``publisher serve`` before it listens.
    """
    path = unquote(urlsplit(config.digest.unsubscribe_url).path) or "/"
    store: Store | None = None
    routes: list[BaseRoute] = []
    if config.digest.recipients == "subscribers":
        store = Store.open(config.store_url)
        try:
            pages = Unsubscribe(config, store)
        except PublisherError:
            store.close()
            raise
        routes.append(Route(path, pages.endpoint, methods=["GET", "POST"]))
    else:  # a Response is an ASGI app of its own: every method gets it
        routes.append(Route(path, PlainTextResponse("Not Found", status_code=404)))
    files = FeedFiles(config.feed, cache_seconds=config.server.cache_seconds)
    prefix = unquote(urlsplit(config.feed.base_url).path).rstrip("/")
    if prefix:
        routes.append(Mount(prefix, app=files))
    routes.append(Mount("/", app=files))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if store is not None:
                store.close()

    return Starlette(routes=routes, middleware=[Middleware(GZipMiddleware), Middleware(NoSniff)], lifespan=lifespan)


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
    app = create_app(config)  # a missing secret or store stops it here, before it listens
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
        access_log=True,
        log_config=_LOGGING,
        timeout_graceful_shutdown=10,  # a stalled client must not hold up a stop for ever
    )
    ready = f"serve: {url} (feeds from {config.feed.dir})"
    server = Server(server_config, on_started=lambda: print(ready, flush=True))
    with sock, _stop_on_signals(server):
        server.run(sockets=[sock])


@contextmanager
def _stop_on_signals(server: uvicorn.Server) -> Iterator[None]:
    """SIGINT and SIGTERM stop ``server``, including the copy uvicorn raises again once stopped.

    uvicorn handles both signals while it runs; on the way out it puts back the handlers it
    found and raises the signal again, so that the default action (death by SIGTERM, a
    KeyboardInterrupt) follows. The handlers it finds are these, so that copy only asks the
    stopped server to stop and ``serve`` returns normally. A signal that arrives before uvicorn
    has installed its own handlers stops the server as well, instead of being lost.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    previous = {signum: signal.signal(signum, stop) for signum in _SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _header_url(url: str) -> str:
    """``url`` with anything a header cannot carry (non-ASCII, spaces, ``<>``) %-encoded."""
    return quote(url, safe=_URL_SAFE)


class WithoutQuery(logging.Filter):
    """Drops the query string from the path in uvicorn's access log: unsubscribe tokens are there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:  # client, method, path, version, status
            client, method, path, version, status = record.args
            record.args = (client, method, str(path).partition("?")[0], version, status)
        return True


# Errors and the access log go to stderr, in the CLI's "publisher: ..." style; uvicorn's own
# start and stop chatter (INFO) is left out, the "serve: ..." line on stdout says it is up.
_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"without_query": {"()": WithoutQuery}},
    "formatters": {
        "plain": {"format": "publisher: %(message)s"},
        "access": {
            "()": "uvicorn.logging.AccessFormatter",
            "fmt": 'publisher: %(client_addr)s - "%(request_line)s" %(status_code)s',
            "use_colors": False,
        },
    },
    "handlers": {
        "plain": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"},
        "access": {
            "class": "logging.StreamHandler",
            "formatter": "access",
            "filters": ["without_query"],
            "stream": "ext://sys.stderr",
        },
    },
    "loggers": {
        "uvicorn.error": {"handlers": ["plain"], "level": "WARNING", "propagate": False},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}
