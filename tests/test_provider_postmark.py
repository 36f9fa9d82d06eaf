"""The Postmark mailer against a fake of Postmark's batch email API (tests/fakes/postmark.py).

Each test runs the real CLI against the fake on 127.0.0.1 and reads back what Postmark would
have done: one message per reader with their own unsubscribe link, refusals of single
addresses inside an accepted batch, and the journal's account of every batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from sqlalchemy import select

from publisher.schema import batch_recipients
from publisher.store import Digest
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
from tests.fakes.postmark import LIMIT, FakePostmark

KEY = "pm-7c4Qx9Vz-2Kw8-Rt5N-Lp3J-b6Hd1Fm"  # distinctive: any 4 characters of it in output are a leak
ENV = {"PUBLISHER_MAILER_KEY": KEY, "PUBLISHER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET}


@pytest.fixture(autouse=True)
def _no_secrets_from_the_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def postmark(project: Project, endpoint: Endpoint) -> Iterator[FakePostmark]:
    fake = FakePostmark(token=KEY)
    endpoint.handler = fake.handle
    use_postmark(project, endpoint.url)
    yield fake


def use_postmark(project: Project, url: str, **settings: Any) -> None:
    project.configure(mailer={"provider": "postmark", "url": url, "retries": 0, "timeout": 5, **settings})


def refusals(project: Project, digest: Digest) -> dict[str, str]:
    """Address -> why Postmark refused it, as the journal kept it."""
    with closing(project.open_store()) as store, store.transaction() as conn:
        rows = conn.execute(
            select(batch_recipients.c.email, batch_recipients.c.error).where(
                batch_recipients.c.digest_id == digest.id, batch_recipients.c.error.is_not(None)
            )
        )
        return {row.email: row.error for row in rows}


# -- what goes over the wire --------------------------------------------------------------------


def test_a_digest_to_the_configured_address_is_one_batch_as_postmark_wants_it(
    project: Project, endpoint: Endpoint, postmark: FakePostmark
) -> None:
    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    [request] = endpoint.requests
    assert (request.method, request.path) == ("POST", "/email/batch")
    assert request.headers["x-postmark-server-token"] == KEY
    assert "authorization" not in request.headers
    assert request.headers["accept"] == request.headers["content-type"] == "application/json"
    [message] = request.json()
    assert set(message) == {"From", "To", "Subject", "HtmlBody", "TextBody", "MessageStream", "Headers", "Metadata"}
    assert message["From"] == "Example News <news@example.org>"
    assert message["MessageStream"] == "broadcast"
    digest = last_digest(project)
    [batch] = batches(project, digest)
    assert message["Metadata"] == {"digest_id": digest.id, "batch_key": batch.key}
    [copy] = postmark.copies("subscribers@lists.example.org")
    assert copy.subject == "Example News: 1 new" == digest.subject
    assert SAMPLE_TITLE in copy.html and SAMPLE_TITLE in copy.text
    assert copy.headers["List-Unsubscribe"] == "<https://news.example.org/unsubscribe>"
    assert "List-Unsubscribe-Post" not in copy.headers  # a link that names nobody: no one-click (RFC 8058)
    assert "https://news.example.org/unsubscribe" in copy.html
    assert (digest.state, batch.state) == ("sent", "accepted")
    assert batch.provider_id is not None and len(batch.provider_id) == 36  # Postmark's MessageID
    assert "1 of 1 messages accepted by Postmark" in result.stdout


def test_the_configured_message_stream_is_used(project: Project, endpoint: Endpoint, postmark: FakePostmark) -> None:
    postmark.streams.add("weekly-digest")
    use_postmark(project, endpoint.url, message_stream="weekly-digest")

    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    [copy] = postmark.copies("subscribers@lists.example.org")
    assert copy.stream == "weekly-digest"


def test_one_more_reader_than_postmark_takes_makes_two_requests_each_reader_once_with_their_own_link(
    project: Project, endpoint: Endpoint, postmark: FakePostmark
) -> None:
    readers = add_subscribers(project, LIMIT + 1)

    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    first, second = (r.json() for r in endpoint.requests)
    assert (len(first), len(second)) == (LIMIT, 1)
    keys = [b.key for b in batches(project, last_digest(project))]
    assert [first[0]["Metadata"]["batch_key"], second[0]["Metadata"]["batch_key"]] == keys
    assert sorted(postmark.delivered) == readers
    holders = tokens(project)
    for address in readers:
        [copy] = postmark.copies(address)
        for part in (copy.html, copy.text, copy.headers["List-Unsubscribe"]):
            assert_own_link(holders, address, part)
    assert last_digest(project).state == "sent"


# -- refusals inside an accepted batch ----------------------------------------------------------


def test_an_inactive_address_is_recorded_as_refused_and_the_others_are_sent(
    project: Project, endpoint: Endpoint, postmark: FakePostmark
) -> None:
    readers = add_subscribers(project, 3)
    postmark.inactive.add(readers[1])

    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    assert sorted(postmark.delivered) == [readers[0], readers[2]]
    digest = last_digest(project)
    [batch] = batches(project, digest)
    assert (digest.state, batch.state) == ("sent", "accepted")
    [(address, reason)] = refusals(project, digest).items()
    assert address == readers[1]
    assert reason.startswith("406: You tried to send to recipient(s) that have been marked as inactive.")
    assert f"2 of 3 messages accepted by Postmark; 1 refused: {readers[1]}: 406: You tried" in result.stdout


def test_a_batch_postmark_refuses_message_by_message_fails_with_postmarks_words(
    project: Project, endpoint: Endpoint, postmark: FakePostmark
) -> None:
    use_postmark(project, endpoint.url, message_stream="no-such-stream")

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    refusal = "Postmark refused every message: 1235: The message stream for the provided 'ID' (no-such-stream)"
    assert refusal in failed.stderr
    digest = last_digest(project)
    [batch] = batches(project, digest)
    assert (digest.state, batch.state) == ("incomplete", "failed")
    assert batch.last_error is not None and refusal in batch.last_error
    assert postmark.delivered == {}


# -- refusals of the whole request ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_after", "text"),
    [(429, "1", "Rate limit exceeded (Postmark error 429)"), (500, None, "Internal server error (Postmark error 500)")],
    ids=["429", "500"],
)
def test_a_passing_refusal_leaves_the_batch_pending_and_the_next_run_delivers_once(
    project: Project, endpoint: Endpoint, postmark: FakePostmark, status: int, retry_after: str | None, text: str
) -> None:
    postmark.fail(status, retry_after=retry_after)

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    assert f"not sent, will retry on the next run: postmark: {endpoint.url}/email/batch: HTTP {status}: {text}" in (
        failed.stderr
    )
    digest = last_digest(project)
    [batch] = batches(project, digest)
    assert (digest.state, batch.state) == ("pending", "pending")
    assert batch.last_error is not None and batch.last_error.endswith(f"HTTP {status}: {text}")
    assert postmark.delivered == {}

    retried = project.cli("run", env=ENV)

    assert retried.exit_code == 0, retried.output
    assert len(endpoint.requests) == 2
    assert len(postmark.copies("subscribers@lists.example.org")) == 1
    [batch] = batches(project, digest)
    assert (last_digest(project).state, batch.state, batch.attempts) == ("sent", "accepted", 2)


def test_a_wrong_token_fails_the_batch_with_postmarks_words_and_the_next_run_does_not_retry(
    project: Project, endpoint: Endpoint, postmark: FakePostmark
) -> None:
    postmark.token = "another-server-token"

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    refusal = "HTTP 401: The Server Token you provided in the X-Postmark-Server-Token request header was invalid."
    assert refusal in failed.stderr and "(Postmark error 10)" in failed.stderr
    digest = last_digest(project)
    [batch] = batches(project, digest)
    assert (digest.state, batch.state) == ("incomplete", "failed")
    assert batch.last_error is not None and refusal in batch.last_error

    again = project.cli("run", env=ENV)

    assert again.exit_code == 1, again.output  # the digest waits for the operator, and says so
    assert "--retry-failed" in again.stderr
    assert len(endpoint.requests) == 1
    assert postmark.delivered == {}


def test_the_key_echoed_in_an_error_is_redacted_everywhere(
    project: Project, endpoint: Endpoint, postmark: FakePostmark
) -> None:
    postmark.fail(422, f"Invalid header X-Postmark-Server-Token: {KEY}")

    failed = project.cli("run", env=ENV)
    status = project.cli("status", env=ENV)

    assert failed.exit_code == 1
    digest = last_digest(project)
    [batch] = batches(project, digest)
    assert batch.state == "failed"
    assert batch.last_error is not None
    assert "HTTP 422: Invalid header X-Postmark-Server-Token: [redacted] (Postmark error 300)" in batch.last_error
    for text in (failed.stdout, failed.stderr, batch.last_error, digest.last_error, status.stdout, status.stderr):
        assert_no_secret(text, KEY)
