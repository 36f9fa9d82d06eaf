"""``publisher serve``: a real uvicorn server on 127.0.0.1, asked the way feed readers and attackers ask.

``Running`` serves a project's feeds folder from ``create_app`` on a socket bound to a free
port before the server thread starts, and waits on an Event set once uvicorn accepts
connections. Requests go through httpx, except the path-traversal ones: httpx (like every
browser) removes ``..`` segments before sending, so those go through http.client, which sends
the request target exactly as written. The CLI tests run ``python -m publisher ... serve`` as a
process and wait for its "serve:" line.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from email.utils import formatdate
from pathlib import Path
from types import TracebackType

import httpx
import pytest
import uvicorn

from publisher.config import Config
from publisher.files import write_atomic
from publisher.server import Server, create_app, listen
from tests.conftest import Project, child_process, readline_within

TIMEOUT = 30.0
ATOM = "application/atom+xml; charset=utf-8"
RSS = "application/rss+xml; charset=utf-8"
JSON_FEED = "application/feed+json; charset=utf-8"


class Running:
    """``create_app(config)`` on a real uvicorn server in a thread, on a free port of 127.0.0.1."""

    def __init__(self, config: Config, *, access_log: Callable[[str], object] | None = None) -> None:
        self.sock = listen("127.0.0.1", 0)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.started = threading.Event()
        self.error: BaseException | None = None
        # log_config=None: uvicorn leaves logging alone. The access log is the app's: see access_log.
        app = create_app(config, access_log=access_log)
        self.server = Server(uvicorn.Config(app, log_config=None, access_log=False), on_started=self.started.set)
        self._thread = threading.Thread(target=self._run, name="test-server", daemon=True)

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # uvicorn ends a failed start with sys.exit
            self.error = exc
        finally:  # never leave the test waiting on a server that died
            self.started.set()

    def __enter__(self) -> Running:
        self._thread.start()
        assert self.started.wait(TIMEOUT), f"the server did not start within {TIMEOUT} s"
        assert self.server.started, f"the server failed to start: {self.error!r}"
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.server.should_exit = True
        self._thread.join(TIMEOUT)
        self.sock.close()
        if kind is None:
            assert not self._thread.is_alive(), "the server did not stop"
            assert self.error is None, repr(self.error)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        with httpx.Client(base_url=self.url, timeout=TIMEOUT) as client:
            return client.request(method, path, headers=headers)

    def get(self, path: str, **headers: str) -> httpx.Response:
        """GET ``path``; keyword arguments are headers, ``If_None_Match`` -> ``If-None-Match``."""
        return self.request("GET", path, {name.replace("_", "-"): value for name, value in headers.items()})

    def raw_get(self, target: str) -> tuple[int, bytes]:
        """GET with ``target`` sent byte for byte, ``..`` and all: (status, body)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", f"127.0.0.1:{self.port}")
            connection.endheaders()
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


def atom(title: str, entries: int = 12) -> bytes:
    """A small Atom document; with the default 12 entries well over the 500 bytes gzip starts at."""
    items = "".join(
        f"<entry><id>urn:x:{n}</id><title>{title} entry {n}</title><updated>2026-10-0{n % 9 + 1}T00:00:00Z</updated>"
        "<summary>The same words again and again compress well.</summary></entry>"
        for n in range(entries)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:x</id><title>{title}</title>'
        f"<updated>2026-10-31T00:00:00Z</updated>{items}</feed>\n"
    ).encode()


FILES: dict[str, bytes] = {
    "atom.xml": atom("Example News"),
    "rss.xml": b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>Example News</title>'
    b"</channel></rss>\n",
    "feed.json": b'{"version": "https://jsonfeed.org/version/1.1", "title": "Example News", "items": []}\n',
    "feed.xsl": b'<?xml version="1.0" encoding="utf-8"?>\n<xsl:stylesheet version="1.0" '
    b'xmlns:xsl="http://www.w3.org/1999/XSL/Transform"/>\n',
    "tags/economy.xml": atom("Economy", entries=1),
    "archive/2026-10.xml": atom("October 2026", entries=1),
    "notes.xml": b"<notes/>\n",
}


@pytest.fixture
def feeds(project: Project) -> Path:
    """The project's feeds folder holding FILES, as ``publisher run`` lays it out."""
    folder = project.config().feed.dir
    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def server(project: Project, feeds: Path) -> Iterator[Running]:
    with Running(project.config()) as running:
        yield running


# -- what is served, and as what --------------------------------------------------------------------

CONTENT_TYPES = [
    ("/atom.xml", ATOM),
    ("/rss.xml", RSS),
    ("/feed.json", JSON_FEED),
    ("/tags/economy.xml", ATOM),
    ("/archive/2026-10.xml", ATOM),
    ("/feed.xsl", "text/xsl; charset=utf-8"),
    ("/notes.xml", "application/xml; charset=utf-8"),
]


@pytest.mark.parametrize(("path", "content_type"), CONTENT_TYPES, ids=[path for path, _ in CONTENT_TYPES])
def test_each_document_is_served_whole_with_its_media_type(server: Running, path: str, content_type: str) -> None:
    response = server.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.content == FILES[path.lstrip("/")]
    assert response.headers["x-content-type-options"] == "nosniff"


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


@pytest.mark.parametrize("path", ["/atom.xml", "/rss.xml", "/tags/economy.xml"])
def test_a_browser_gets_atom_and_rss_as_xml_so_it_applies_the_stylesheet(server: Running, path: str) -> None:
    """Chromium shows the feed media types as plain text and runs no XSLT on them."""
    browser = server.get(path, Accept=BROWSER_ACCEPT)
    reader = server.get(path, Accept="application/atom+xml, application/rss+xml;q=0.9, */*;q=0.1")

    assert browser.headers["content-type"] == "application/xml; charset=utf-8"
    assert reader.headers["content-type"] in (ATOM, RSS)
    assert browser.content == reader.content == FILES[path.lstrip("/")]
    for response in (browser, reader):  # gzip adds Accept-Encoding to large ones
        assert "Accept" in [value.strip() for value in response.headers["vary"].split(",")]


def test_a_browser_gets_json_feed_and_the_stylesheet_unchanged(server: Running) -> None:
    assert server.get("/feed.json", Accept=BROWSER_ACCEPT).headers["content-type"] == JSON_FEED
    assert server.get("/feed.xsl", Accept=BROWSER_ACCEPT).headers["content-type"] == "text/xsl; charset=utf-8"


def test_head_gives_the_headers_of_get_without_a_body(server: Running) -> None:
    got, head = server.get("/atom.xml", Accept_Encoding="identity"), server.request("HEAD", "/atom.xml")
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "etag", "last-modified", "cache-control"):
        assert head.headers[name] == got.headers[name], name


def test_the_feeds_are_also_served_under_the_path_of_the_feed_url(server: Running) -> None:
    # [feed] url defaults to https://news.example.org/feeds/atom.xml
    at_root, under_prefix = server.get("/atom.xml"), server.get("/feeds/atom.xml")
    assert under_prefix.status_code == 200
    assert under_prefix.content == at_root.content == FILES["atom.xml"]
    assert under_prefix.headers["etag"] == at_root.headers["etag"]
    assert server.get("/feeds/tags/economy.xml").content == FILES["tags/economy.xml"]


def test_a_deeper_feed_url_gives_a_deeper_prefix(project: Project, feeds: Path) -> None:
    config = project.configure(feed={"url": "https://news.example.org/news/feeds/atom.xml"})
    with Running(config) as server:
        response = server.get("/news/feeds/rss.xml")
        assert response.status_code == 200
        assert response.content == FILES["rss.xml"]
        assert server.get("/feeds/rss.xml").status_code == 404
        assert '<https://news.example.org/news/feeds/rss.xml>; rel="self"' in response.headers.get_list("link")


def test_a_missing_feeds_folder_answers_404_not_an_error(project: Project) -> None:
    config = project.config()
    assert not config.feed.dir.exists()
    with Running(config) as server:
        assert server.get("/atom.xml").status_code == 404
        assert server.get("/").status_code == 404


# -- validators and conditional requests --------------------------------------------------------


def test_files_carry_etag_last_modified_and_cache_control(server: Running, feeds: Path) -> None:
    response = server.get("/atom.xml")
    assert response.headers["etag"].startswith('"')
    assert response.headers["last-modified"] == formatdate((feeds / "atom.xml").stat().st_mtime, usegmt=True)
    assert response.headers["cache-control"] == "public, max-age=300"  # [server] cache_seconds default


def test_cache_control_follows_server_cache_seconds(project: Project, feeds: Path) -> None:
    with Running(project.configure(server={"cache_seconds": 60})) as server:
        first = server.get("/rss.xml")
        again = server.get("/rss.xml", If_None_Match=first.headers["etag"])
    assert first.headers["cache-control"] == "public, max-age=60"
    assert again.status_code == 304
    assert again.headers["cache-control"] == "public, max-age=60"


def test_if_none_match_with_the_current_etag_gives_304_and_no_body(server: Running) -> None:
    etag = server.get("/atom.xml").headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}'):
        response = server.get("/atom.xml", If_None_Match=header)
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == etag
    assert server.get("/atom.xml", If_None_Match='"not-the-etag"').status_code == 200


def test_if_modified_since_gives_304_unless_the_file_is_newer(server: Running, feeds: Path) -> None:
    mtime = (feeds / "atom.xml").stat().st_mtime
    same = server.get("/atom.xml", If_Modified_Since=formatdate(mtime, usegmt=True))
    assert same.status_code == 304
    assert same.content == b""
    older = server.get("/atom.xml", If_Modified_Since=formatdate(mtime - 3600, usegmt=True))
    assert older.status_code == 200
    assert older.content == FILES["atom.xml"]


def test_a_changed_file_gets_a_new_etag_and_a_200(server: Running, feeds: Path) -> None:
    first = server.get("/atom.xml")
    path = feeds / "atom.xml"
    later = path.stat().st_mtime + 60
    path.write_bytes(atom("Example News, updated"))
    os.utime(path, (later, later))

    second = server.get(
        "/atom.xml", If_None_Match=first.headers["etag"], If_Modified_Since=first.headers["last-modified"]
    )
    assert second.status_code == 200
    assert second.headers["etag"] != first.headers["etag"]
    assert second.headers["last-modified"] == formatdate(later, usegmt=True)
    assert second.content == atom("Example News, updated")
    assert server.get("/atom.xml", If_None_Match=second.headers["etag"]).status_code == 304


# -- answered from memory, fresh after every change ------------------------------------------------------


def test_a_file_replaced_by_rename_is_served_new_even_with_the_same_size_and_mtime(
    server: Running, feeds: Path
) -> None:
    """The feed job replaces files by rename: a new inode is a new file, whatever its size and mtime say."""
    path = feeds / "atom.xml"
    before = server.get("/atom.xml")
    old = path.stat()
    replacement = atom("Example Newz")
    assert len(replacement) == old.st_size
    assert write_atomic(path, replacement)
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))

    after = server.get("/atom.xml", If_None_Match=before.headers["etag"])
    assert after.status_code == 200
    assert after.content == replacement
    assert after.headers["etag"] != before.headers["etag"]


@pytest.mark.parametrize("alias", ["//atom.xml", "/tags/../atom.xml", "/feeds//atom.xml", "/./atom.xml"])
def test_other_spellings_of_a_path_serve_the_same_file_and_name_it_alike(server: Running, alias: str) -> None:
    canonical = server.get("/atom.xml", Accept_Encoding="identity")  # as http.client asks
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:  # sent as written: httpx would tidy the path
        connection.request("GET", alias)
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, FILES["atom.xml"])
        assert response.getheader("ETag") == canonical.headers["etag"]
        assert response.headers.get_all("Link") == ['<https://news.example.org/feeds/atom.xml>; rel="self"']
    finally:
        connection.close()


def test_a_file_removed_after_it_was_served_is_404(server: Running, feeds: Path) -> None:
    assert server.get("/tags/economy.xml").status_code == 200
    (feeds / "tags" / "economy.xml").unlink()
    assert server.get("/tags/economy.xml").status_code == 404


def test_a_file_turned_into_a_symlink_out_of_the_folder_after_it_was_served_is_404(
    server: Running, project: Project, feeds: Path
) -> None:
    assert server.get("/notes.xml").status_code == 200
    (feeds / "notes.xml").unlink()
    (feeds / "notes.xml").symlink_to(project.config_path)
    response = server.get("/notes.xml")
    assert response.status_code == 404
    assert project.config_path.read_bytes() not in response.content


def test_an_unchanged_file_keeps_its_etag_when_rewritten(server: Running, feeds: Path) -> None:
    """The ETag is the bytes' hash: a rewrite with the same bytes (a new mtime) still revalidates."""
    first = server.get("/rss.xml")
    path = feeds / "rss.xml"
    later = path.stat().st_mtime + 60
    path.write_bytes(FILES["rss.xml"])
    os.utime(path, (later, later))
    again = server.get("/rss.xml", If_None_Match=first.headers["etag"])
    assert again.status_code == 304
    assert again.headers["etag"] == first.headers["etag"]


# -- gzip ------------------------------------------------------------------------------------------


def test_gzip_when_the_client_accepts_it(server: Running) -> None:
    response = server.get("/atom.xml", Accept_Encoding="gzip")
    assert response.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["vary"]
    assert response.content == FILES["atom.xml"]  # httpx decodes
    assert response.num_bytes_downloaded < len(FILES["atom.xml"])  # smaller on the wire


def test_the_gzip_form_has_its_own_etag_and_each_revalidates(server: Running) -> None:
    zipped = server.get("/atom.xml", Accept_Encoding="gzip")
    plain = server.get("/atom.xml", Accept_Encoding="identity")
    assert zipped.headers["etag"] != plain.headers["etag"]  # different bytes on the wire

    again = server.get("/atom.xml", Accept_Encoding="gzip", If_None_Match=zipped.headers["etag"])
    assert again.status_code == 304
    assert again.headers["etag"] == zipped.headers["etag"]
    assert "Accept-Encoding" in again.headers["vary"]
    # a cache that stored one form may revalidate it for a client that takes the other
    crossed = server.get("/atom.xml", Accept_Encoding="identity", If_None_Match=zipped.headers["etag"])
    assert crossed.status_code == 304
    assert crossed.headers["etag"] == plain.headers["etag"]


def test_small_files_are_not_gzipped(server: Running) -> None:
    response = server.get("/rss.xml", Accept_Encoding="gzip")  # under 500 bytes
    assert "content-encoding" not in response.headers
    assert response.content == FILES["rss.xml"]


def test_no_gzip_when_the_client_does_not_accept_it(server: Running) -> None:
    response = server.get("/atom.xml", Accept_Encoding="identity")
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(len(FILES["atom.xml"]))
    assert response.content == FILES["atom.xml"]


# -- WebSub --------------------------------------------------------------------------------------


def test_feed_documents_advertise_the_configured_hubs_and_themselves(project: Project, feeds: Path) -> None:
    hubs = ["https://hub.example.org/", "https://pubsubhubbub.example.net/hub"]
    with Running(project.configure(feed={"hubs": hubs})) as server:
        for path in ("/atom.xml", "/rss.xml", "/feed.json", "/tags/economy.xml", "/feeds/archive/2026-10.xml"):
            self_url = "https://news.example.org/feeds/" + path.removeprefix("/feeds").lstrip("/")
            assert server.get(path).headers.get_list("link") == [
                '<https://hub.example.org/>; rel="hub"',
                '<https://pubsubhubbub.example.net/hub>; rel="hub"',
                f'<{self_url}>; rel="self"',
            ], path
        assert server.get("/feed.xsl").headers.get_list("link") == []


def test_without_hubs_a_feed_names_only_itself(server: Running) -> None:
    links = server.get("/atom.xml").headers.get_list("link")
    assert links == ['<https://news.example.org/feeds/atom.xml>; rel="self"']


# -- what is never served ---------------------------------------------------------------------------

TRAVERSALS = [
    "/../publisher.toml",
    "/%2e%2e/publisher.toml",
    "/%2E%2E/publisher.toml",
    "/tags/../../publisher.db",
    "/..%2fpublisher.toml",
    "/%2e%2e%2fpublisher.toml",
    "/tags/..%2f..%2fpublisher.db",
    "/atom.xml/../../publisher.toml",
    "/feeds/../publisher.toml",
    "/feeds/..%2f..%2fsite/publisher.toml",
    "/..%5cpublisher.toml",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/feeds//etc/passwd",
    f"/{'../' * 12}etc/passwd",
    "/atom.xml%00.json",
    "http://127.0.0.1/../publisher.toml",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_no_path_reaches_a_file_outside_the_feeds_folder(server: Running, project: Project, target: str) -> None:
    project.open_store().close()  # publisher.db beside publisher.toml, one level above feeds/
    secrets = [project.config_path.read_bytes(), (project.root / "publisher.db").read_bytes()[:16]]
    assert server.raw_get("/atom.xml") == (200, FILES["atom.xml"])  # the raw client does reach the server

    status, body = server.raw_get(target)
    assert status == 404, body
    assert not any(secret in body for secret in secrets)
    assert b"root:" not in body


def test_a_symlink_out_of_the_feeds_folder_is_not_followed(server: Running, project: Project, feeds: Path) -> None:
    (feeds / "leak.xml").symlink_to(project.config_path)
    response = server.get("/leak.xml")
    assert response.status_code == 404
    assert project.config_path.read_bytes() not in response.content


# A temp file write_atomic leaves for a moment, one in tags/, and a hidden folder.
HIDDEN_FILES = [".atom.xml.k2j3h4.tmp", "tags/.economy.xml.q9w8e7.tmp", ".git/config"]
HIDDEN = ["/.atom.xml.k2j3h4.tmp", "/%2eatom.xml.k2j3h4.tmp", "/tags/.economy.xml.q9w8e7.tmp", "/.git/config"]


@pytest.mark.parametrize("path", HIDDEN)
def test_dotfiles_are_not_served(server: Running, feeds: Path, path: str) -> None:
    for name in HIDDEN_FILES:
        (feeds / name).parent.mkdir(parents=True, exist_ok=True)
        (feeds / name).write_bytes(b"HALF-WRITTEN")
    response = server.get(path)
    assert response.status_code == 404
    assert b"HALF-WRITTEN" not in response.content
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_fifo_in_the_folder_is_404_and_does_not_stall_the_server(server: Running, feeds: Path) -> None:
    os.mkfifo(feeds / "pipe.xml")
    assert server.get("/pipe.xml").status_code == 404
    assert server.get("/atom.xml").status_code == 200


@pytest.mark.parametrize("path", ["/", "/tags", "/tags/", "/archive/", "/feeds", "/feeds/", "/feeds/tags/"])
def test_folders_are_404_not_listings(server: Running, path: str) -> None:
    response = server.get(path)
    assert response.status_code == 404
    assert b"economy" not in response.content


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_only_get_and_head_are_allowed(server: Running, method: str) -> None:
    response = server.request(method, "/atom.xml")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.content != FILES["atom.xml"]


# -- the access log ---------------------------------------------------------------------------------


def test_the_access_log_has_a_line_per_request_without_the_query(project: Project, feeds: Path) -> None:
    lines: list[str] = []
    with Running(project.config(), access_log=lines.append) as server:
        server.get("/atom.xml?s=SECRET-TOKEN&t=SIG")
        etag = server.get("/feeds/rss.xml").headers["etag"]
        server.get("/feeds/rss.xml", If_None_Match=etag)
        server.get("/missing.xml?x=SECRET-TOKEN")
        server.request("POST", "/atom.xml")
        server.get("/unsubscribe?s=SECRET-TOKEN")  # recipients = "to": the Starlette part, 404
    peer = r'127\.0\.0\.1:\d+ - "'
    expected = [
        r"GET /atom\.xml HTTP/1\.1\" 200 OK",
        r"GET /feeds/rss\.xml HTTP/1\.1\" 200 OK",
        r"GET /feeds/rss\.xml HTTP/1\.1\" 304 Not Modified",
        r"GET /missing\.xml HTTP/1\.1\" 404 Not Found",
        r"POST /atom\.xml HTTP/1\.1\" 405 Method Not Allowed",
        r"GET /unsubscribe HTTP/1\.1\" 404 Not Found",
    ]
    assert len(lines) == len(expected), lines
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(peer + pattern, line), line


# -- the command ---------------------------------------------------------------------------------


def _serve_command(project: Project, port: int) -> list[str]:
    return [sys.executable, "-m", "publisher", "--config", str(project.config_path), "serve", "--port", str(port)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def serve_process(project: Project, feeds: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    port = _free_port()
    stderr_path = tmp_path / "serve-stderr.log"
    with child_process(_serve_command(project, port), cwd=project.root, stderr=stderr_path) as process:
        yield process, port, stderr_path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_serve_command_serves_until_a_signal_and_exits_0(
    serve_process: tuple[subprocess.Popen[str], int, Path], feeds: Path, signum: signal.Signals
) -> None:
    process, port, stderr_path = serve_process
    assert process.stdout is not None
    line = readline_within(process.stdout, TIMEOUT, "`publisher serve`")
    assert line == f"serve: http://127.0.0.1:{port}/ (feeds from {feeds})\n", line + stderr_path.read_text()

    response = httpx.get(f"http://127.0.0.1:{port}/feeds/atom.xml", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["content-type"] == ATOM
    assert response.content == FILES["atom.xml"]
    assert "server" not in response.headers  # server_header off

    process.send_signal(signum)
    rest, _ = process.communicate(timeout=TIMEOUT)
    stderr = stderr_path.read_text()
    assert process.returncode == 0, stderr
    assert rest == ""
    # the access log, on stderr; uvicorn's start and stop chatter is left out
    assert re.fullmatch(r'publisher: 127\.0\.0\.1:\d+ - "GET /feeds/atom\.xml HTTP/1\.1" 200 OK\n', stderr), stderr


def test_with_json_logs_the_access_log_is_json_records(project: Project, feeds: Path, tmp_path: Path) -> None:
    port = _free_port()
    command = [*_serve_command(project, port)]
    command.insert(3, "--log-format=json")  # before the command, after "-m publisher"
    stderr_path = tmp_path / "serve-stderr.log"
    with child_process(command, cwd=project.root, stderr=stderr_path) as process:
        assert process.stdout is not None
        line = readline_within(process.stdout, TIMEOUT, "`publisher serve`")
        assert line.startswith("serve: "), line + stderr_path.read_text()
        assert httpx.get(f"http://127.0.0.1:{port}/atom.xml?s=TOKEN", timeout=TIMEOUT).status_code == 200
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0
    records = [json.loads(line) for line in stderr_path.read_text().splitlines()]
    assert len(records) == 1, records
    assert records[0]["logger"] == "publisher.access"
    assert re.fullmatch(r'127\.0\.0\.1:\d+ - "GET /atom\.xml HTTP/1\.1" 200 OK', records[0]["message"]), records


def test_a_taken_port_is_one_error_line_and_exit_1(project: Project) -> None:
    with listen("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            _serve_command(project, port), capture_output=True, text=True, cwd=project.root, timeout=TIMEOUT
        )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines == [f"publisher: error: serve: cannot listen on 127.0.0.1:{port}: {os.strerror(errno.EADDRINUSE)}"]


def test_a_port_out_of_range_is_refused_not_wrapped_around(project: Project) -> None:
    result = project.cli("serve", "--port", "99999")  # getaddrinfo alone would bind port 34463
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "publisher: error: serve: cannot listen on 127.0.0.1:99999: ports are 0 to 65535\n"
