"""The Resend mailer against a fake of Resend's batch emails API (tests/fakes/resend.py).

Each test runs the real CLI against the fake on 127.0.0.1 and reads back what Resend would
have done: one email per reader with their own unsubscribe link, sent once even when a
request is repeated under the same Idempotency-Key, and the journal's account of every batch.
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
from tests.fakes.resend import LIMIT, FakeResend

KEY = "re_Qz7xKv2W_m9RtJp4Ld8Nc3Hf6Yb"  # distinctive: any 4 characters of it in output are a leak
ENV = {"PUBLISHER_MAILER_KEY": KEY, "PUBLISHER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET}
TO = "subscribers@lists.example.org"


@pytest.fixture(autouse=True)
def _no_secrets_from_the_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def resend(project: Project, endpoint: Endpoint) -> Iterator[FakeResend]:
    fake = FakeResend(key=KEY)
    endpoint.handler = fake.handle
    use_resend(project, endpoint.url)
    yield fake
    fake.release()  # a held answer must not keep the server from closing


def use_resend(project: Project, url: str, **settings: Any) -> None:
    project.configure(mailer={"provider": "resend", "url": url, "retries": 0, "timeout": 5, **settings})


# -- what goes over the wire --------------------------------------------------------------------


def test_a_digest_to_the_configured_address_is_one_batch_as_resend_wants_it(
    project: Project, endpoint: Endpoint, resend: FakeResend
) -> None:
    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    [request] = endpoint.requests
    assert (request.method, request.path) == ("POST", "/emails/batch")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    digest = last_digest(project)
    [batch] = batches(project, digest)
    assert request.headers["idempotency-key"] == batch.key
    [email] = request.json()
    assert set(email) == {"from", "to", "subject", "html", "text", "headers"}
    assert (email["from"], email["to"]) == ("Example News <news@example.org>", [TO])
    [copy] = resend.copies(TO)
    assert copy.subject == "Example News: 1 new" == digest.subject
    assert SAMPLE_TITLE in copy.html and SAMPLE_TITLE in copy.text
    assert copy.headers["List-Unsubscribe"] == "<https://news.example.org/unsubscribe>"
    assert "List-Unsubscribe-Post" not in copy.headers  # a link that names nobody: no one-click (RFC 8058)
    assert "https://news.example.org/unsubscribe" in copy.html
    assert (digest.state, batch.state, batch.provider_id) == ("sent", "accepted", resend.issued[0])
    assert f"1 email queued by Resend (first id {batch.provider_id})" in result.stdout


def test_one_more_reader_than_resend_takes_makes_two_requests_each_reader_once_with_their_own_link(
    project: Project, endpoint: Endpoint, resend: FakeResend
) -> None:
    readers = add_subscribers(project, LIMIT + 1)

    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    first, second = endpoint.requests
    assert (len(first.json()), len(second.json())) == (LIMIT, 1)
    keys = [b.key for b in batches(project, last_digest(project))]
    assert [first.headers["idempotency-key"], second.headers["idempotency-key"]] == keys
    assert sorted(resend.delivered) == readers
    holders = tokens(project)
    for address in readers:
        [copy] = resend.copies(address)
        for part in (copy.html, copy.text, copy.headers["List-Unsubscribe"]):
            assert_own_link(holders, address, part)
    assert last_digest(project).state == "sent"


# -- repeats under the same key --------------------------------------------------------------------


def test_an_answer_lost_after_resend_sent_the_batch_is_asked_again_and_nothing_is_sent_twice(
    project: Project, endpoint: Endpoint, resend: FakeResend
) -> None:
    use_resend(project, endpoint.url, timeout=0.5)
    resend.lose_next_answer(5)

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    assert f"resend: {endpoint.url}/emails/batch: no answer within 0.5s" in failed.stderr
    digest = last_digest(project)
    [batch] = batches(project, digest)
    assert (digest.state, batch.state) == ("pending", "pending")  # not in doubt: the key makes a resend safe
    assert len(resend.copies(TO)) == 1  # Resend did send it
    resend.release()

    retried = project.cli("run", env=ENV)

    assert retried.exit_code == 0, retried.output
    first, second = endpoint.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == batch.key
    assert first.body == second.body
    assert len(resend.copies(TO)) == 1  # the repeat got the first answer, and no second email
    [batch] = batches(project, digest)
    assert (last_digest(project).state, batch.state, batch.attempts) == ("sent", "accepted", 2)


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name", "retry_after", "text"),
    [
        (429, None, "1", "rate_limit_exceeded: Too many requests."),
        (500, None, None, "internal_server_error: An unexpected error occurred."),
        (409, "concurrent_idempotent_requests", None, "concurrent_idempotent_requests: Same idempotency key used"),
    ],
    ids=["429", "500", "409-concurrent"],
)
def test_a_passing_refusal_leaves_the_batch_pending_and_the_next_run_delivers_once(
    project: Project,
    endpoint: Endpoint,
    resend: FakeResend,
    status: int,
    name: str | None,
    retry_after: str | None,
    text: str,
) -> None:
    resend.fail(status, name=name, retry_after=retry_after)

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    assert f"not sent, will retry on the next run: resend: {endpoint.url}/emails/batch: HTTP {status}: {text}" in (
        failed.stderr
    )
    digest = last_digest(project)
    [batch] = batches(project, digest)
    assert (digest.state, batch.state) == ("pending", "pending")
    assert batch.last_error is not None and f"HTTP {status}: {text}" in batch.last_error
    assert resend.delivered == {}

    retried = project.cli("run", env=ENV)

    assert retried.exit_code == 0, retried.output
    assert len(endpoint.requests) == 2
    assert len(resend.copies(TO)) == 1
    [batch] = batches(project, digest)
    assert (last_digest(project).state, batch.state, batch.attempts) == ("sent", "accepted", 2)


def test_a_wrong_key_fails_the_batch_with_resends_words_and_the_next_run_does_not_retry(
    project: Project, endpoint: Endpoint, resend: FakeResend
) -> None:
    resend.key = "re_another_key_for_another_team"

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    refusal = "HTTP 403: invalid_api_key: API key is invalid"
    assert refusal in failed.stderr
    digest = last_digest(project)
    [batch] = batches(project, digest)
    assert (digest.state, batch.state) == ("incomplete", "failed")
    assert batch.last_error is not None and batch.last_error.endswith(refusal)

    again = project.cli("run", env=ENV)

    assert again.exit_code == 1, again.output  # the digest waits for the operator, and says so
    assert "--retry-failed" in again.stderr
    assert len(endpoint.requests) == 1
    assert resend.delivered == {}


def test_the_key_echoed_in_a_validation_error_is_redacted_everywhere(
    project: Project, endpoint: Endpoint, resend: FakeResend
) -> None:
    resend.fail(422, f"Invalid `authorization` header: Bearer {KEY}", name="validation_error")

    failed = project.cli("run", env=ENV)
    status = project.cli("status", env=ENV)

    assert failed.exit_code == 1
    digest = last_digest(project)
    [batch] = batches(project, digest)
    assert batch.state == "failed"
    assert batch.last_error is not None
    assert "HTTP 422: validation_error: Invalid `authorization` header: Bearer [redacted]" in batch.last_error
    for text in (failed.stdout, failed.stderr, batch.last_error, digest.last_error, status.stdout, status.stderr):
        assert_no_secret(text, KEY)
