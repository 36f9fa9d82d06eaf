"""A real HTTP server on 127.0.0.1 serving feeds whose content the test changes between runs.

Each path answers through a route: a :class:`Doc` (a document with conditional GET, optional
gzip, ETag and Last-Modified) or any function of the request headers returning a
:class:`Reply`, which can also break: cut the body short, hang until the test sets an Event,
or stream a body that never says its length.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    cut_at: int | None = None  # Content-Length says all, but the connection closes after this many bytes
    gate: threading.Event | None = None  # answer only once the test sets it
    endless: int | None = None  # this many bytes, with no Content-Length, until the client stops reading
    gzip: bool = False


Route = Callable[[dict[str, str]], Reply]


@dataclass
class Doc:
    """A feed document served with conditional GET; change ``body`` between runs."""

    body: bytes
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: bool = True
    last_modified: str | None = "Tue, 24 Nov 2026 06:00:00 GMT"
    gzip: bool = False

    def __call__(self, headers: dict[str, str]) -> Reply:
        tag = '"' + hashlib.sha256(self.body).hexdigest()[:12] + '"'
        validators = {"ETag": tag} if self.etag else {}
        if self.last_modified:
            validators["Last-Modified"] = self.last_modified
        fresh = (self.etag and headers.get("if-none-match") == tag) or (
            not self.etag and self.last_modified and headers.get("if-modified-since") == self.last_modified
        )
        if fresh:
            return Reply(304, b"", validators)
        zipped = self.gzip and "gzip" in headers.get("accept-encoding", "")
        return Reply(200, self.body, {"Content-Type": self.content_type, **validators}, gzip=zipped)


@dataclass
class FeedServer:
    base: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (path, headers) of each request
    errors: list[BaseException] = field(default_factory=list)  # a connection the client dropped, mostly

    def url(self, path: str) -> str:
        return self.base + path

    def paths(self) -> list[str]:
        return [path for path, _ in self.seen]

    def redirect(self, path: str, status: int, to: str) -> None:
        self.routes[path] = lambda headers: Reply(status, b"", {"Location": self.url(to)})


def _handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            server.seen.append((self.path, headers))
            route = server.routes.get(self.path)
            reply = route(headers) if route is not None else Reply(404, b"not found")
            if reply.gate is not None:
                reply.gate.wait(30)
            body = gzip.compress(reply.body) if reply.gzip else reply.body
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.gzip:
                    self.send_header("Content-Encoding", "gzip")
                if reply.endless is not None:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    chunk = b"<!-- " + b"x" * 65_000 + b" -->"
                    for _ in range(reply.endless // len(chunk) + 1):
                        self.wfile.write(chunk)
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if reply.cut_at is None else body[: reply.cut_at])
                if reply.cut_at is not None:
                    self.close_connection = True
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (a timeout, the size cap)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class _Quiet(ThreadingHTTPServer):
    """Keeps a handler's error (a client that hung up mid-answer) instead of printing it to
    stderr, where an in-process CLI test would read it as the command's output."""

    errors: list[BaseException]

    def handle_error(self, request: object, client_address: object) -> None:
        self.errors.append(sys.exc_info()[1] or RuntimeError("unknown"))


@contextmanager
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    httpd = _Quiet(("127.0.0.1", 0), _handler(server))
    httpd.errors = server.errors
    httpd.daemon_threads = True
    server.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
