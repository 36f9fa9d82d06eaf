"""Secrets come from the environment only and never come out: not in output, logs, errors or files.

For each HTTP provider a real ``publisher`` process sends to an endpoint on 127.0.0.1 that
refuses everything and echoes the credentials it was sent (every credential header, then the
request body) back in its error, in each field a provider reads its errors from. Then all an
operator or a log collector could see is searched:

- stdout and stderr of ``publisher -v run`` (the text log with debug records), of ``publisher
  -v --log-format json digest resume --retry-failed`` (the JSON log), of ``publisher digest
  test`` and of ``publisher status``;
- the stored errors: ``digests.last_error`` and every ``batches.last_error``;
- every file under the project: the SQLite store, the feeds, the outbox, any log file;
- for ``publisher serve``, its log while unsubscribe links are used, and the pages it answers.

What must not be there: any 4 characters of the API key, the AWS secret key, the AWS session
token or the HMAC unsubscribe secret (they hold ``~``, ``.``, ``/`` or ``+`` every few
characters, so no token, id or text made elsewhere can match by chance), nor 12 characters of
their base64 forms (Basic auth). The secrets are distinctive on purpose; the endpoint's records
show that each one was really sent, and the stored errors say ``[redacted]`` where it was.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from publisher import journal, subscribers
from tests.conftest import Project, child_process, readline_within
from tests.delivery_helpers import subscribe
from tests.endpoint import Answer, Endpoint, Request
from tests.test_server import TIMEOUT, _free_port

KEY = "Kq~7Vz.2Lm~9Rt.4Wn~8Bx"
UNSUBSCRIBE_SECRET = "Hm~4cK.9qZ~2xW.7vB~3nT"
ACCESS_KEY = "AKIAQ7EXAMPLE3TZ9WLD"  # names the AWS key; not a secret, and sent as it is
SECRET_KEY = "Sk/7Wq~8Rt.3Yz~6Bn+1Mv~4Lp.0Xd~5Ge/2Fa"
SESSION_TOKEN = "St~4Cv.7Bn~0Mq/3Wr~6Ty+9Up~2Io.5Pa"
USER = "publisher-api"  # listmonk's API user
ENV = {
    "PUBLISHER_MAILER_KEY": KEY,
    "PUBLISHER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET,
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_SESSION_TOKEN": SESSION_TOKEN,
}
SECRETS = {
    "API key": KEY,
    "HMAC unsubscribe secret": UNSUBSCRIBE_SECRET,
    "AWS secret key": SECRET_KEY,
    "AWS session token": SESSION_TOKEN,
}
# Basic auth forms, from the first base64 character that depends on the key (what comes before
# encodes the user name alone).
ENCODED = {
    f"base64 of {prefix}KEY": base64.b64encode(f"{prefix}{KEY}".encode()).decode()[len(prefix) // 3 * 4 :]
    for prefix in ("api:", f"{USER}:", "")
}
READERS = ["ada@example.org", "grace@example.net"]
# Each provider's settings; all but the list owners send to the local list of READERS.
PROVIDERS: dict[str, dict[str, Any]] = {
    "webhook": {},
    "mailgun": {"domain": "mg.example.org"},
    "sendgrid": {},
    "postmark": {},
    "resend": {},
    "ses": {"region": "eu-west-1"},
    "listmonk": {"lists": [3, 7], "username": USER},
    "buttondown": {},
}
LIST_OWNERS = {"listmonk", "buttondown"}
# The long Authorization of SES (a signature) last: errors are cut at 300 characters.
CREDENTIAL_HEADERS = ("x-amz-security-token", "x-postmark-server-token", "x-api-key", "authorization")


def leaks(text: str | None) -> list[str]:
    """Every secret, or base64 form of one, that ``text`` holds a piece of."""
    text = text or ""
    found = [
        f"{what} ({secret[i : i + 4]!r})"
        for what, secret in SECRETS.items()
        for i in range(len(secret) - 3)
        if secret[i : i + 4] in text
    ]
    found += [
        f"{what} ({encoded[i : i + 12]!r})"
        for what, encoded in ENCODED.items()
        for i in range(len(encoded) - 11)
        if encoded[i : i + 12] in text
    ]
    return found


def assert_no_secret(text: str | None, where: str) -> None:
    found = leaks(text)
    assert not found, f"{where}: {found}\n{text}"


def echo(request: Request) -> Answer:
    """Refuse, quoting the credentials and the body back, in every provider's error fields."""
    sent = [f"{name}: {request.headers[name]}" for name in CREDENTIAL_HEADERS if name in request.headers]
    text = f"refused {'; '.join(sent)}; body: {request.body[:400].decode('utf-8', 'replace')}"
    body = {
        "message": text,
        "Message": text,
        "ErrorCode": 10,
        "errors": [{"message": text}],
        "detail": text,
        "name": "validation_error",
        "error": text,
    }
    return 401, body, {"x-amzn-ErrorType": "UnrecognizedClientException"}


def publisher(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """``publisher ARGS`` as a process of its own, with every secret (and only ours) in its environment."""
    outside = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "PUBLISHER_"))}
    return subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(project.config_path), *args],
        cwd=project.root,
        env=outside | ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )


def stored_errors(project: Project) -> list[str]:
    """digests.last_error of every digest and batches.last_error of every batch."""
    store = project.open_store()
    try:
        errors = []
        for digest in store.recent_digests(10):
            errors.append(digest.last_error or "")
            errors += [batch.last_error or "" for batch in journal.batches_of(store, digest.id)]
        return errors
    finally:
        store.close()


def every_file(root: Path) -> dict[str, str]:
    """Each file under ``root``, its bytes as Latin-1 (a secret is ASCII: it would show as itself)."""
    return {
        str(path.relative_to(root)): path.read_bytes().decode("latin-1") for path in root.rglob("*") if path.is_file()
    }


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_failing_send_shows_no_secret_anywhere(project: Project, endpoint: Endpoint, provider: str) -> None:
    endpoint.handler = echo
    project.configure(
        mailer={"provider": provider, "url": endpoint.url, "retries": 0, "timeout": 5, **PROVIDERS[provider]}
    )
    if provider not in LIST_OWNERS:
        subscribe(project, READERS)

    runs = {"run": publisher(project, "-v", "run")}
    runs["digest resume"] = publisher(project, "-v", "--log-format", "json", "digest", "resume", "--retry-failed")
    project.add_article("second.md", "# A second story\n\nSomething new for a test digest.\n")
    assert project.cli("ingest", str(project.articles)).exit_code == 0
    runs["digest test"] = publisher(project, "digest", "test", "--to", "editor@example.org")
    runs["status"] = publisher(project, "status")

    # The endpoint was really sent a secret, and quoted it back.
    echoed = [echo(request)[1]["message"] for request in endpoint.requests]
    assert any(secret in text for text in echoed for secret in (KEY, SESSION_TOKEN, *ENCODED.values())), echoed
    assert [done.returncode for done in runs.values()] == [1, 1, 1, 0], {n: d.stderr for n, d in runs.items()}
    assert "[redacted]" in runs["run"].stdout + runs["run"].stderr
    errors = stored_errors(project)
    assert any("[redacted]" in error for error in errors), errors  # the echo reached the stored error
    for name, done in runs.items():
        assert_no_secret(done.stdout, f"{provider}: {name}: stdout")
        assert_no_secret(done.stderr, f"{provider}: {name}: stderr")
    for error in errors:
        assert_no_secret(error, f"{provider}: stored error")
    for name, data in every_file(project.root).items():
        assert_no_secret(data, f"{provider}: {name}")


# A real Resend key is re_ and letters, digits and _: it reads as an environment variable's name.
NAME_LIKE_KEY = "re_Qz7xKv2Wm9RtJp4Ld8Nc3Hf6Yb"


@pytest.mark.parametrize(
    "key",
    [
        KEY,
        NAME_LIKE_KEY,
    ],
    ids=["key", "key-that-looks-like-a-name"],
)
def test_a_key_written_into_the_config_is_refused_without_being_repeated(project: Project, key: str) -> None:
    """Secrets are read from the environment only: the config names the variable. A key put
    there by mistake is an error that names the setting and does not print the key."""
    project.configure(mailer={"provider": "resend", "url": "https://api.resend.example/"})
    toml = project.config_path.read_text(encoding="utf-8")
    assert 'api_key_env = "PUBLISHER_MAILER_KEY"' in toml
    project.config_path.write_text(toml.replace("PUBLISHER_MAILER_KEY", key), encoding="utf-8")

    done = publisher(project, "run")

    assert done.returncode == 2
    assert "[mailer] api_key_env" in done.stderr
    found = [key[i : i + 4] for i in range(len(key) - 3) if key[i : i + 4] in done.stdout + done.stderr]
    assert not found, done.stderr


def test_the_serve_log_and_pages_show_no_secret_when_links_are_used(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():  # child_process passes this process's environment on
        monkeypatch.setenv(name, value)
    subscribe(project, READERS)
    store = project.open_store()
    try:
        tokens = [s.token for s in subscribers.listing(store)]
    finally:
        store.close()
    base = project.config().digest.unsubscribe_url
    good = [subscribers.unsubscribe_url(base, UNSUBSCRIBE_SECRET.encode(), token) for token in tokens]
    forged = subscribers.unsubscribe_url(base, b"a-guessed-secret-0123456789", tokens[0])
    port = _free_port()
    command = [sys.executable, "-m", "publisher", "--config", str(project.config_path), "-v", "serve"]
    stderr = tmp_path / "serve.log"
    with child_process([*command, "--port", str(port)], cwd=project.root, stderr=stderr) as process:
        assert process.stdout is not None
        line = readline_within(process.stdout, TIMEOUT, "`publisher serve`")
        assert line.startswith(f"serve: http://127.0.0.1:{port}/"), line + stderr.read_text()
        pages = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as client:
            for url in (good[0], forged, good[1]):
                path = urlsplit(url)._replace(scheme="", netloc="").geturl()
                pages.append(client.get(path))
                pages.append(client.post(path, data={"List-Unsubscribe": "One-Click"}))
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=TIMEOUT)

    assert [page.status_code for page in pages] == [200, 200, 400, 400, 200, 200]
    log = stderr.read_text()
    assert '"POST /unsubscribe HTTP/1.1" 400' in log  # the log saw the forged link too
    assert_no_secret(log, "serve log")
    assert_no_secret(line + out, "serve stdout")
    for page in pages:
        assert_no_secret(page.text, f"page {page.status_code}")
        assert_no_secret(str(page.headers), "response headers")
