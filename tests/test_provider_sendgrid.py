"""The SendGrid mailer against a fake of SendGrid's v3 mail send API (tests/fakes/sendgrid.py).

Each test runs the real CLI against the fake on 127.0.0.1 and reads back what SendGrid would
have done: one copy per reader, each with their own unsubscribe link, and the journal's
account of every batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import SAMPLE_TITLE, Project
from tests.delivery_helpers import (
    UNSUBSCRIBE_SECRET,
    add_subscribers,
    assert_no_secret,
    assert_own_link,
    batches,
    last_digest,
    tokens,
)
from tests.endpoint import Endpoint
from tests.fakes.sendgrid import LIMIT, FakeSendGrid

KEY = "SG.Qz7xKv2Wm9Rt.Jp4Ld8Nc3Hf6Yb"  # distinctive: any 4 characters of it in output are a leak
ENV = {"PUBLISHER_MAILER_KEY": KEY, "PUBLISHER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET}


@pytest.fixture(autouse=True)
def _no_secrets_from_the_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sendgrid(project: Project, endpoint: Endpoint) -> Iterator[FakeSendGrid]:
    fake = FakeSendGrid(key=KEY)
    endpoint.handler = fake.handle
    use_sendgrid(project, endpoint.url)
    yield fake


def use_sendgrid(project: Project, url: str, **settings: Any) -> None:
    project.configure(mailer={"provider": "sendgrid", "url": url, "retries": 0, "timeout": 5, **settings})


# -- what goes over the wire --------------------------------------------------------------------


def test_a_digest_to_the_configured_address_is_one_request_as_sendgrid_wants_it(
    project: Project, endpoint: Endpoint, sendgrid: FakeSendGrid
) -> None:
    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    [request] = endpoint.requests
    assert (request.method, request.path) == ("POST", "/v3/mail/send")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    mail = request.json()
    assert set(mail) == {"personalizations", "from", "subject", "content", "headers", "custom_args"}
    assert mail["from"] == {"email": "news@example.org", "name": "Example News"}
    assert [p["to"] for p in mail["personalizations"]] == [[{"email": "subscribers@lists.example.org"}]]
    assert [part["type"] for part in mail["content"]] == ["text/plain", "text/html"]
    digest = last_digest(project)
    [batch] = batches(project, digest)
    assert mail["custom_args"] == {"digest_id": digest.id, "batch_key": batch.key}
    assert "List-Unsubscribe-Post" not in mail["headers"]  # a link that names nobody: no one-click (RFC 8058)
    [copy] = sendgrid.copies("subscribers@lists.example.org")
    assert copy.subject == "Example News: 1 new" == digest.subject
    assert SAMPLE_TITLE in copy.html and SAMPLE_TITLE in copy.text
    assert copy.headers["List-Unsubscribe"] == "<https://news.example.org/unsubscribe>"
    assert "https://news.example.org/unsubscribe" in copy.html
    assert "https://news.example.org/unsubscribe" in copy.text
    assert sendgrid.accepted == [batch.provider_id]
    assert (digest.state, batch.state) == ("sent", "accepted")
    assert f"queued by SendGrid as {batch.provider_id}" in result.stdout


def test_one_more_reader_than_sendgrid_takes_makes_two_requests_each_reader_once_with_their_own_link(
    project: Project, endpoint: Endpoint, sendgrid: FakeSendGrid
) -> None:
    readers = add_subscribers(project, LIMIT + 1)

    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    first, second = (r.json() for r in endpoint.requests)
    assert (len(first["personalizations"]), len(second["personalizations"])) == (LIMIT, 1)
    keys = [b.key for b in batches(project, last_digest(project))]
    assert [first["custom_args"]["batch_key"], second["custom_args"]["batch_key"]] == keys
    assert sorted(sendgrid.delivered) == readers
    holders = tokens(project)
    for address in readers:
        [copy] = sendgrid.copies(address)
        assert "-unsubscribe_url-" not in copy.html + copy.text
        for part in (copy.html, copy.text, copy.headers["List-Unsubscribe"]):
            assert_own_link(holders, address, part)
    assert last_digest(project).state == "sent"


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_after", "text"),
    [(429, "1", "too many requests"), (503, None, "service unavailable")],
    ids=["429", "503"],
)
def test_a_passing_refusal_leaves_the_batch_pending_and_the_next_run_delivers_once(
    project: Project, endpoint: Endpoint, sendgrid: FakeSendGrid, status: int, retry_after: str | None, text: str
) -> None:
    sendgrid.fail(status, retry_after=retry_after)

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    assert f"not sent, will retry on the next run: sendgrid: {endpoint.url}/v3/mail/send: HTTP {status}: {text}" in (
        failed.stderr
    )
    digest = last_digest(project)
    [batch] = batches(project, digest)
    assert (digest.state, batch.state) == ("pending", "pending")
    assert batch.last_error is not None and f"HTTP {status}: {text}" in batch.last_error
    assert sendgrid.delivered == {}

    retried = project.cli("run", env=ENV)

    assert retried.exit_code == 0, retried.output
    assert len(endpoint.requests) == 2
    assert len(sendgrid.copies("subscribers@lists.example.org")) == 1
    [batch] = batches(project, digest)
    assert (last_digest(project).state, batch.state, batch.attempts) == ("sent", "accepted", 2)


def test_a_429_with_retry_after_0_is_retried_within_the_run(
    project: Project, endpoint: Endpoint, sendgrid: FakeSendGrid
) -> None:
    use_sendgrid(project, endpoint.url, retries=1)
    sendgrid.fail(429, retry_after="0")

    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    assert len(endpoint.requests) == 2
    assert len(sendgrid.copies("subscribers@lists.example.org")) == 1
    assert last_digest(project).state == "sent"


def test_a_wrong_key_fails_the_batch_with_sendgrids_words_and_the_next_run_does_not_retry(
    project: Project, endpoint: Endpoint, sendgrid: FakeSendGrid
) -> None:
    sendgrid.key = "SG.another-key.for-another-account"

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    refusal = "HTTP 401: The provided authorization grant is invalid, expired, or revoked"
    assert refusal in failed.stderr
    digest = last_digest(project)
    [batch] = batches(project, digest)
    assert (digest.state, batch.state) == ("incomplete", "failed")
    assert batch.last_error is not None and batch.last_error.endswith(refusal)

    again = project.cli("run", env=ENV)

    assert again.exit_code == 1, again.output  # the digest waits for the operator, and says so
    assert "--retry-failed" in again.stderr
    assert len(endpoint.requests) == 1
    assert sendgrid.delivered == {}


def test_each_of_sendgrids_errors_is_reported_with_its_field(
    project: Project, endpoint: Endpoint, sendgrid: FakeSendGrid
) -> None:
    project.configure(digest={"from": "Example News <news@unverified.example.com>"})

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    assert "HTTP 403: The from address does not match a verified Sender Identity." in failed.stderr
    assert "(field from)" in failed.stderr
    [batch] = batches(project, last_digest(project))
    assert batch.state == "failed"


def test_the_key_echoed_in_an_error_is_redacted_everywhere(
    project: Project, endpoint: Endpoint, sendgrid: FakeSendGrid
) -> None:
    sendgrid.fail(400, f"Bad header: Authorization: Bearer {KEY}")

    failed = project.cli("run", env=ENV)
    status = project.cli("status", env=ENV)

    assert failed.exit_code == 1
    digest = last_digest(project)
    [batch] = batches(project, digest)
    assert batch.last_error is not None and "Bad header: Authorization: Bearer [redacted]" in batch.last_error
    for text in (failed.stdout, failed.stderr, batch.last_error, digest.last_error, status.stdout, status.stderr):
        assert_no_secret(text, KEY)
