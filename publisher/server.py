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
"""

from __future__ import annotations

import logging
import mimetypes
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import PurePath, PurePosixPath
from types import FrameType
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import FileResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher.config import Config, FeedConfig
from publisher.errors import PublisherError

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


def create_app(config: Config) -> Starlette:
    """The ASGI app serving ``config.feed.dir`` at ``/`` and at the folder's path in [feed] url."""
    files = FeedFiles(config.feed, cache_seconds=config.server.cache_seconds)
    prefix = unquote(urlsplit(config.feed.base_url).path).rstrip("/")
    routes = [Mount(prefix, app=files)] if prefix else []
    routes.append(Mount("/", app=files))
    return Starlette(routes=routes, middleware=[Middleware(GZipMiddleware), Middleware(NoSniff)])


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port``, or PublisherError saying why there is none."""
    if not 0 <= port <= 65535:  # getaddrinfo would quietly take 99999 as 34463
        raise PublisherError(f"serve: cannot listen on {host}:{port}: ports are 0 to 65535")
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
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
    sock = listen(host, port)  # bound here, so a taken port is one PublisherError, not uvicorn's exit
    bound = sock.getsockname()[1]
    url = f"http://[{host}]:{bound}/" if ":" in host else f"http://{host}:{bound}/"
    if not config.feed.dir.is_dir():
        logger.warning("serve: %s does not exist yet; every path is 404 until `publisher run`", config.feed.dir)
    server_config = uvicorn.Config(
        create_app(config),
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


# Errors and the access log go to stderr, in the CLI's "publisher: ..." style; uvicorn's own
# start and stop chatter (INFO) is left out, the "serve: ..." line on stdout says it is up.
_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
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
        "access": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "uvicorn.error": {"handlers": ["plain"], "level": "WARNING", "propagate": False},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}
