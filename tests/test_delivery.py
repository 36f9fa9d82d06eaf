"""Handing the digest to the mailing endpoint, against a real HTTP server on 127.0.0.1.

The ``endpoint`` fixture records every request; each test reads the requests back the way the
receiving service would (JSON, urlencoded form, Basic auth) and checks the store's digest state
after each run: sent only once accepted, pending after any failure, never sent twice.
"""

from __future__ import annotations

import base64
import email
import email.policy
import errno
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from publisher.delivery import Recipient
from publisher.delivery.mailgun import form_data, recipient_variables
from publisher.store import Digest
from tests.conftest import SAMPLE_TITLE, Project
from tests.delivery_helpers import UNSUBSCRIBE_SECRET, add_subscribers, assert_no_secret, batches, last_digest
from tests.endpoint import Endpoint, Request
from tests.fakes.mailgun import form, form_of

KEY = "mk_7Hq2Vx9PzR4tLw8N"  # distinctive: any 4 characters of it in output are a leak
BASIC = "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
ENV = {"PUBLISHER_MAILER_KEY": KEY}
DOMAIN = "mg.example.org"
FORM_CONTENT_TYPE = "multipart/form-data; boundary="


@pytest.fixture(autouse=True)
def _no_key_from_the_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test decides whether the key is set; a developer's own environment must not leak in."""
    monkeypatch.delenv("PUBLISHER_MAILER_KEY", raising=False)


def use_webhook(project: Project, url: str, **settings: Any) -> None:
    project.configure(mailer={"provider": "webhook", "url": url, "retries": 0, "timeout": 5, **settings})


def use_mailgun(project: Project, url: str, **settings: Any) -> None:
    project.configure(
        mailer={"provider": "mailgun", "url": url, "domain": DOMAIN, "retries": 0, "timeout": 5, **settings}
    )


def use(provider: str, project: Project, url: str, **settings: Any) -> None:
    {"webhook": use_webhook, "mailgun": use_mailgun}[provider](project, url, **settings)


def key_of(digest: Digest, batch: int = 1) -> str:
    """The idempotency key of a digest's batch: the digest id and the batch number."""
    return f"{digest.id}-{batch:04d}"


def digest_id_of(provider: str, request: Request) -> str:
    """The digest a request carries, as the receiving service would read it."""
    if provider == "webhook":
        assert request.headers["idempotency-key"] == request.json()["key"]
        return str(request.json()["id"])
    [value] = [v for k, v in form_of(request) if k == "v:digest-id"]
    return value


def read_eml(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


# -- what goes over the wire ------------------------------------------------------------------


def test_webhook_posts_the_digest_as_json_with_idempotency_key_and_bearer_key(
    project: Project, endpoint: Endpoint
) -> None:
    use_webhook(project, endpoint.url + "/hooks/digest")

    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    [request] = endpoint.requests
    digest = last_digest(project)
    assert (request.method, request.path) == ("POST", "/hooks/digest")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == key_of(digest)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["user-agent"].startswith("publisher/")
    body = request.json()
    assert set(body) == {
        "id",
        "key",
        "test",
        "subject",
        "from",
        "to",
        "recipients",
        "personal",
        "html",
        "text",
        "headers",
        "articles",
    }
    assert (body["id"], body["key"], body["test"]) == (digest.id, key_of(digest), False)
    assert body["recipients"] == [
        {"email": "subscribers@lists.example.org", "unsubscribe_url": "https://news.example.org/unsubscribe"}
    ]
    assert body["subject"] == "Example News: 1 new" == digest.subject
    assert body["from"] == "Example News <news@example.org>"
    assert body["to"] == ["subscribers@lists.example.org"]
    assert SAMPLE_TITLE in body["html"] and body["html"].lstrip().lower().startswith(("<!doctype", "<html"))
    assert SAMPLE_TITLE in body["text"] and "<p>" not in body["text"]
    assert body["headers"]["List-Unsubscribe"] == "<https://news.example.org/unsubscribe>"
    assert "List-Unsubscribe-Post" not in body["headers"]  # a link that names nobody: no one-click (RFC 8058)
    assert body["headers"]["Message-ID"] == f"<{digest.id}@example.org>"
    [article] = body["articles"]
    assert set(article) == {"id", "title", "url"}
    assert article["title"] == SAMPLE_TITLE
    assert article["url"].startswith("https://news.example.org/kremlin-condemns-us-approval")
    assert article["url"] in body["html"]
    assert (digest.state, digest.last_error) == ("sent", None)
    [batch] = batches(project, digest)
    assert (batch.key, batch.state, batch.provider_id, batch.attempts) == (
        key_of(digest),
        "accepted",
        "<1@endpoint.test>",
        1,
    )
    assert f"digest {digest.id}: 1 article, accepted by {endpoint.url}/hooks/digest" in result.stdout


def test_webhook_without_a_key_sends_no_authorization_header(project: Project, endpoint: Endpoint) -> None:
    use_webhook(project, endpoint.url)

    result = project.cli("run")

    assert result.exit_code == 0, result.output
    [request] = endpoint.requests
    assert "authorization" not in request.headers
    assert request.headers["idempotency-key"] == key_of(last_digest(project))
    assert last_digest(project).state == "sent"


def test_mailgun_posts_multipart_to_the_messages_api_with_basic_auth(project: Project, endpoint: Endpoint) -> None:
    use_mailgun(project, endpoint.url)

    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    [request] = endpoint.requests
    digest = last_digest(project)
    assert (request.method, request.path) == ("POST", f"/v3/{DOMAIN}/messages")
    assert request.headers["content-type"].startswith(FORM_CONTENT_TYPE)
    assert request.headers["authorization"] == BASIC
    assert base64.b64decode(request.headers["authorization"].split()[1]).decode() == f"api:{KEY}"
    form = form_of(request)
    fields: dict[str, list[str]] = {}
    for name, value in form:
        fields.setdefault(name, []).append(value)
    for single in ("from", "subject", "text", "html", "h:List-Unsubscribe"):
        assert len(fields.get(single, [])) == 1, f"{single}: {fields.get(single)}"
    assert fields["from"] == ["Example News <news@example.org>"]
    assert fields["to"] == ["subscribers@lists.example.org"]
    assert fields["subject"] == ["Example News: 1 new"]
    assert SAMPLE_TITLE in fields["html"][0]
    assert SAMPLE_TITLE in fields["text"][0]
    assert fields["h:List-Unsubscribe"] == ["<https://news.example.org/unsubscribe>"]
    assert "h:List-Unsubscribe-Post" not in fields  # a link that names nobody: no one-click (RFC 8058)
    assert fields["v:digest-id"] == [digest.id]
    assert fields["v:batch-key"] == [key_of(digest)]
    assert json.loads(fields["recipient-variables"][0]) == {
        "subscribers@lists.example.org": {
            "unsubscribe_url": "https://news.example.org/unsubscribe",
            "unsubscribe_url_html": "https://news.example.org/unsubscribe",
            "batch": key_of(digest),
        }
    }
    [batch] = batches(project, digest)
    assert (batch.state, batch.provider_id) == ("accepted", "<1@endpoint.test>")
    assert digest.state == "sent"
    assert "queued by Mailgun as <1@endpoint.test>" in result.stdout


@pytest.mark.parametrize("command", [["run"], ["digest", "send"]], ids=["run", "digest-send"])
def test_mailgun_without_its_key_is_a_config_error_before_any_work(
    project: Project, endpoint: Endpoint, command: list[str]
) -> None:
    use_mailgun(project, endpoint.url)
    before = sorted(p.name for p in project.root.iterdir())

    result = project.cli(*command)

    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("publisher: error: publisher.toml: [mailer] api_key_env: ")
    assert "PUBLISHER_MAILER_KEY is not set" in line
    assert result.stdout == ""
    assert endpoint.requests == []
    assert sorted(p.name for p in project.root.iterdir()) == before  # no store, no feed, no outbox


# -- failures: pending, one line, exit 1, delivered once on the next run -------------------------


@pytest.mark.parametrize("provider", ["webhook", "mailgun"])
def test_rejected_digest_stays_pending_and_the_next_run_delivers_it_once(
    project: Project, endpoint: Endpoint, provider: str
) -> None:
    use(provider, project, endpoint.url)
    endpoint.reply(500, {"message": "Upstream   relay\nunavailable, try later"})

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    [line] = failed.stderr.splitlines()
    digest = last_digest(project)
    assert line.startswith(f"digest {digest.id}: not sent, will retry on the next run: {provider}: ")
    assert line.endswith("HTTP 500: Upstream relay unavailable, try later")
    assert (digest.state, digest.attempts, digest.sent_at) == ("pending", 1, None)
    assert digest.last_error is not None and "HTTP 500: Upstream relay unavailable, try later" in digest.last_error
    assert len(endpoint.requests) == 1

    retried = project.cli("run", env=ENV)

    assert retried.exit_code == 0, retried.output
    assert len(endpoint.requests) == 2
    digest = last_digest(project)
    assert (digest.state, digest.attempts, digest.last_error) == ("sent", 2, None)
    first, second = endpoint.requests
    assert digest_id_of(provider, first) == digest_id_of(provider, second) == digest.id
    assert first.body == second.body  # the same frozen digest, byte for byte
    assert first.headers.get("idempotency-key") == second.headers.get("idempotency-key")

    third = project.cli("run", env=ENV)

    assert third.exit_code == 0, third.output
    assert "nothing new" in third.stdout
    assert len(endpoint.requests) == 2
    assert last_digest(project).id == digest.id


def test_digest_send_exits_1_on_failure_and_delivers_once_on_the_next_send(
    project: Project, endpoint: Endpoint
) -> None:
    use_webhook(project, endpoint.url)
    assert project.cli("ingest", str(project.articles)).exit_code == 0
    endpoint.reply(429, {"error": "Too many requests from this account"})

    failed = project.cli("digest", "send", env=ENV)

    assert failed.exit_code == 1
    assert failed.stdout == ""
    [line] = failed.stderr.splitlines()
    assert "not sent, will retry on the next run" in line and "HTTP 429: Too many requests from this account" in line
    pending = last_digest(project)
    assert pending.state == "pending"
    assert pending.last_error is not None and "Too many requests from this account" in pending.last_error

    sent = project.cli("digest", "send", env=ENV)
    again = project.cli("digest", "send", env=ENV)

    assert sent.exit_code == 0, sent.output
    assert again.exit_code == 0, again.output
    assert "nothing new" in again.stdout
    assert [r.headers["idempotency-key"] for r in endpoint.requests] == [key_of(pending), key_of(pending)]
    assert last_digest(project).state == "sent"


class Silent:
    """A TCP port where connections are accepted (by the kernel's backlog) and never answered."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def received(self) -> bytes:
        """What the client sent on its first connection, read after the client gave up and closed."""
        self.sock.settimeout(5)
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        return data


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.sock.close()


@pytest.mark.parametrize("provider", ["webhook", "mailgun"])
def test_unreachable_endpoint_leaves_the_digest_pending(
    project: Project, endpoint: Endpoint, refused_url: str, provider: str
) -> None:
    use(provider, project, refused_url)

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    [line] = failed.stderr.splitlines()
    assert "not sent, will retry on the next run" in line and "cannot connect" in line
    digest = last_digest(project)
    assert digest.state == "pending"
    assert digest.last_error is not None and "cannot connect" in digest.last_error

    use(provider, project, endpoint.url)
    assert project.cli("run", env=ENV).exit_code == 0
    assert project.cli("run", env=ENV).exit_code == 0

    [request] = endpoint.requests
    assert digest_id_of(provider, request) == digest.id
    assert last_digest(project).state == "sent"


def test_endpoint_that_never_answers_times_out_and_the_same_digest_is_resent(
    project: Project, endpoint: Endpoint, silent: Silent
) -> None:
    use_webhook(project, silent.url, timeout=0.5)

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    [line] = failed.stderr.splitlines()
    assert line.endswith(f"webhook: {silent.url}: no answer within 0.5s")
    digest = last_digest(project)
    assert digest.state == "pending"
    assert digest.last_error is not None and "no answer within 0.5s" in digest.last_error
    unanswered = silent.received().decode()
    assert unanswered.startswith("POST /hook HTTP/1.1\r\n")
    assert f"idempotency-key: {key_of(digest)}\r\n" in unanswered.lower()

    use_webhook(project, endpoint.url)
    assert project.cli("run", env=ENV).exit_code == 0
    assert project.cli("run", env=ENV).exit_code == 0

    [request] = endpoint.requests
    assert request.headers["idempotency-key"] == key_of(digest)
    assert unanswered.endswith(request.body.decode())  # the very same JSON body
    assert last_digest(project).state == "sent"


def test_one_retry_recovers_from_a_single_503_within_the_run(project: Project, endpoint: Endpoint) -> None:
    use_webhook(project, endpoint.url, retries=1)
    endpoint.reply(503, {"message": "Service temporarily unavailable"})

    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    first, second = endpoint.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == key_of(last_digest(project))
    assert first.body == second.body
    digest = last_digest(project)
    assert (digest.state, digest.attempts, digest.last_error) == ("sent", 1, None)


def test_a_refusal_that_cannot_change_fails_the_batch_and_is_not_retried_silently(
    project: Project, endpoint: Endpoint
) -> None:
    use_webhook(project, endpoint.url, retries=1)
    endpoint.reply(400, {"message": "'to' address is not allowed"})

    result = project.cli("run", env=ENV)

    assert result.exit_code == 1
    assert len(endpoint.requests) == 1  # not retried within the run
    digest = last_digest(project)
    assert digest.state == "incomplete"
    assert digest.last_error is not None and digest.last_error.endswith("HTTP 400: 'to' address is not allowed")
    [batch] = batches(project, digest)
    assert batch.state == "failed"
    assert "1 batch failed" in result.stderr and "HTTP 400: 'to' address is not allowed" in result.stderr

    again = project.cli("run", env=ENV)  # nor by the next run, which says it waits for the operator

    assert again.exit_code == 1, again.output
    assert "--retry-failed" in again.stderr
    assert len(endpoint.requests) == 1
    assert "nothing new" in again.stdout

    retried = project.cli("digest", "resume", "--retry-failed", env=ENV)  # only when the operator asks

    assert retried.exit_code == 0, retried.output
    assert [r.headers["idempotency-key"] for r in endpoint.requests] == [key_of(digest)] * 2
    assert last_digest(project).state == "sent"


# -- secrets ------------------------------------------------------------------------------------


def assert_no_credentials(text: str | None) -> None:
    """No part of the key, nor the Basic credentials made from it."""
    assert_no_secret(text, KEY)
    assert BASIC.split()[1][:12] not in (text or ""), f"the Basic credentials in: {text!r}"


@pytest.mark.parametrize(("provider", "sent_auth"), [("webhook", f"Bearer {KEY}"), ("mailgun", BASIC)])
def test_api_key_echoed_by_the_endpoint_is_redacted_everywhere(
    project: Project, endpoint: Endpoint, provider: str, sent_auth: str
) -> None:
    use(provider, project, endpoint.url)
    endpoint.reply(401, {"message": f"Invalid credentials: Authorization: {sent_auth}"})

    failed = project.cli("run", env=ENV)
    status = project.cli("status", env=ENV)

    assert failed.exit_code == 1
    [request] = endpoint.requests
    assert request.headers["authorization"] == sent_auth  # the endpoint echoed what it was really sent
    digest = last_digest(project)
    assert digest.last_error is not None and "HTTP 401: Invalid credentials: Authorization:" in digest.last_error
    assert "[redacted]" in digest.last_error
    assert "[redacted]" in failed.stderr
    assert f"last error: {digest.last_error}" in status.stdout
    for text in (failed.stdout, failed.stderr, digest.last_error, status.stdout, status.stderr):
        assert_no_credentials(text)


def test_a_long_error_is_cut_after_redaction_so_no_part_of_the_key_survives(
    project: Project, endpoint: Endpoint
) -> None:
    use_webhook(project, endpoint.url)
    endpoint.reply(500, {"message": "e" * 296 + KEY + " was rejected"})

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    digest = last_digest(project)
    assert digest.last_error is not None and "e" * 296 in digest.last_error
    assert_no_credentials(digest.last_error)
    assert_no_credentials(failed.stderr)


def test_real_process_output_holds_neither_the_key_nor_the_url_token(project: Project, endpoint: Endpoint) -> None:
    """As an operator sees it: a separate process, with its own logging set up by the CLI."""
    use_webhook(project, endpoint.url + "/hook?token=T0k3nInQuery")
    endpoint.reply(502, {"message": f"bad gateway for Bearer {KEY}"})

    done = subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(project.config_path), "run"],
        cwd=project.root,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1, done.stderr
    [request] = endpoint.requests
    assert request.path == "/hook?token=T0k3nInQuery"  # the token was used, just never shown
    assert request.headers["authorization"] == f"Bearer {KEY}"
    [line] = done.stderr.splitlines()
    assert line.endswith(f"webhook: {endpoint.url}/hook: HTTP 502: bad gateway for Bearer [redacted]")
    for text in (done.stdout, done.stderr, last_digest(project).last_error):
        assert_no_credentials(text)
        assert "T0k3nInQuery" not in (text or "")


def test_credentials_in_a_webhook_url_are_not_printed(project: Project, refused_url: str) -> None:
    use_webhook(project, refused_url.replace("://", "://hookuser:hookpass@") + "/hook?token=T0k3nInQuery")

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    [line] = failed.stderr.splitlines()
    assert f"webhook: {refused_url}/hook: cannot connect" in line
    for text in (failed.stdout, failed.stderr, last_digest(project).last_error):
        assert text is not None and "hookpass" not in text and "T0k3nInQuery" not in text


# -- outbox -------------------------------------------------------------------------------------


def test_outbox_writes_the_digest_as_an_eml_file_named_by_its_id(project: Project) -> None:
    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    digest = last_digest(project)
    assert digest.state == "sent"
    assert sorted(p.name for p in project.outbox.iterdir()) == [f"{digest.id}.eml"]  # no temp files left
    data = (project.outbox / f"{digest.id}.eml").read_bytes()
    assert data == digest.message
    message = read_eml(data)
    assert message["Message-ID"] == f"<{digest.id}@example.org>"
    html = message.get_body(("html",))
    assert html is not None and SAMPLE_TITLE in html.get_content()
    assert_no_credentials(data.decode("ascii"))

    again = project.cli("run", env=ENV)

    assert "nothing new" in again.stdout
    assert sorted(p.name for p in project.outbox.iterdir()) == [f"{digest.id}.eml"]


def test_outbox_write_that_fails_midway_leaves_no_file_and_the_digest_pending(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        """The disk fills up while a file inside the outbox is written (other files are fine)."""
        st = os.fstat(fd)
        if project.outbox.is_dir() and any(
            (p.stat().st_dev, p.stat().st_ino) == (st.st_dev, st.st_ino) for p in project.outbox.iterdir()
        ):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)

    failed = project.cli("run")

    assert failed.exit_code == 1
    [line] = failed.stderr.splitlines()
    assert "not sent, will retry on the next run: outbox: cannot write" in line
    assert line.endswith("No space left on device")
    assert list(project.outbox.iterdir()) == []  # neither a partial .eml nor a stray temp file
    assert last_digest(project).state == "pending"
    assert project.feed.exists()  # the rest of the cycle ran

    monkeypatch.undo()
    retried = project.cli("run")

    assert retried.exit_code == 0, retried.output
    digest = last_digest(project)
    assert digest.state == "sent"
    assert [p.name for p in project.outbox.iterdir()] == [f"{digest.id}.eml"]
    assert Path(project.outbox / f"{digest.id}.eml").read_bytes() == digest.message


class _KeepAlive(BaseHTTPRequestHandler):
    """Answers 200 and keeps the connection open, as a provider's API does; records the client
    port each request came from (one port, one connection)."""

    protocol_version = "HTTP/1.1"
    ports: list[int]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.ports.append(self.client_address[1])
        body = b'{"id": "kept"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_send_keeps_its_connections_from_one_batch_to_the_next(project: Project) -> None:
    handler = type("Handler", (_KeepAlive,), {"ports": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        use_webhook(project, f"http://127.0.0.1:{server.server_port}/hook", batch_size=1, concurrency=1)
        add_subscribers(project, 6)

        result = project.cli("run", env={**ENV, "PUBLISHER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET})
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    assert result.exit_code == 0, result.output
    assert len(handler.ports) == 6
    # One request in flight at once, from at most two threads (one sends while the other gets
    # the next batch ready), each keeping its connection: not a connection per request.
    assert len(set(handler.ports)) <= 2


def test_a_mailgun_form_reads_back_as_sent_and_its_boundary_is_in_no_value() -> None:
    fields = [("from", "A <a@example.org>"), ("to", "b@example.net"), ("to", "c@example.net")]
    fields += [("html", "<p>é &amp; \r\n--x</p>\n"), ("text", "line\nline\r\n"), ("o:tag", "")]
    body, content_type = form_data(fields, "d1-0001")
    boundary = content_type.partition("boundary=")[2]

    assert form(content_type, body) == fields
    assert form_data(fields, "d1-0001") == (body, content_type)  # the same bytes every time
    with pytest.raises(ValueError, match="CloseBoundaryNotFound"):
        form(content_type, body[: -len("--\r\n")])

    # An article quoting the boundary cannot cut the form: another boundary is taken.
    quoting = [*fields, ("h:X-Quote", f"--{boundary}")]
    body, content_type = form_data(quoting, "d1-0001")
    assert boundary not in content_type
    assert form(content_type, body) == quoting


@pytest.mark.parametrize(
    ("email", "link"),
    [
        ("ann+news@example.net", "https://news.example.org/unsubscribe?s=tok_en-1&t=sig"),
        ("zoë@example.net", "https://news.example.org/désabonner?s=tok&t=sig"),  # not ASCII
        ("ann@example.net", 'https://news.example.org/u?list="a\\b"&s=tok'),  # a quote, a backslash
        ("ann@example.net", "https://news.example.org/u?x=<1>'&s=tok"),  # HTML-escaped too
    ],
)
def test_mailgun_recipient_variables_read_back_as_each_readers_values(email: str, link: str) -> None:
    other = Recipient("bob@example.net", "https://news.example.org/unsubscribe?s=bob&t=sig")

    text = recipient_variables((Recipient(email, link), other), "d1-0001")

    html = link.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;")
    html = html.replace('"', "&#34;")
    assert json.loads(text) == {
        email: {"unsubscribe_url": link, "unsubscribe_url_html": html, "batch": "d1-0001"},
        "bob@example.net": {
            "unsubscribe_url": other.unsubscribe_url,
            "unsubscribe_url_html": other.unsubscribe_url.replace("&", "&amp;"),
            "batch": "d1-0001",
        },
    }
