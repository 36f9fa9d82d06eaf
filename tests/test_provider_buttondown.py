"""Buttondown, driven through the real CLI against a fake of its API on 127.0.0.1.

The fake (tests/fakes/buttondown.py) checks the token, the idempotency key and the fields as
Buttondown does, and answers with Buttondown's own success and error shapes.
"""

from __future__ import annotations

from typing import Any

import pytest

from publisher.digest import UNSUBSCRIBE_PLACEHOLDER
from tests.conftest import SAMPLE_TITLE, Project
from tests.delivery_helpers import assert_no_secret, last_digest, read_journal
from tests.endpoint import Answer, Endpoint, Request
from tests.fakes.buttondown import FakeButtondown

KEY = "bd_Qm7Zt2Kp9Xw4Rn6V"  # distinctive: any 4 characters of it in output are a leak
ENV = {"PUBLISHER_MAILER_KEY": KEY}


@pytest.fixture(autouse=True)
def _no_key_from_the_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLISHER_MAILER_KEY", raising=False)


@pytest.fixture
def buttondown(project: Project, endpoint: Endpoint) -> FakeButtondown:
    fake = FakeButtondown(key=KEY)
    endpoint.handler = fake.handle
    project.configure(mailer={"provider": "buttondown", "url": endpoint.url, "retries": 0, "timeout": 5})
    return fake


def test_the_digest_becomes_one_email_that_buttondown_sends_at_once(
    project: Project, endpoint: Endpoint, buttondown: FakeButtondown
) -> None:
    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    [request] = endpoint.requests
    digest, [batch] = read_journal(project)
    assert (request.method, request.route) == ("POST", "/v1/emails")
    assert request.headers["authorization"] == f"Token {KEY}"
    assert request.headers["x-idempotency-key"] == batch.key == f"{digest.id}-0001"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert set(body) == {"subject", "body", "status"}
    assert body["status"] == "about_to_send"
    assert body["subject"] == digest.subject == "Example News: 1 new"
    assert SAMPLE_TITLE in body["body"]
    assert "{{ unsubscribe_url }}" in body["body"]  # Buttondown puts each reader's own link there
    assert UNSUBSCRIBE_PLACEHOLDER not in body["body"]
    [email] = buttondown.sent()
    assert (digest.state, batch.state, batch.provider_id) == ("sent", "accepted", email["id"])
    assert f"accepted by Buttondown as {email['id']}" in result.stdout


def test_the_same_key_twice_creates_one_email(project: Project, endpoint: Endpoint, buttondown: FakeButtondown) -> None:
    """The answer is lost on the way back (a 502 from a proxy): the next run repeats the request."""

    def answer_lost(request: Request) -> Answer:
        buttondown.handle(request)
        return 502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}

    endpoint.handler = answer_lost
    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    assert "not sent, will retry on the next run" in failed.stderr
    assert len(buttondown.sent()) == 1  # Buttondown took it nonetheless

    endpoint.handler = buttondown.handle
    again = project.cli("run", env=ENV)

    assert again.exit_code == 0, again.output
    first, second = endpoint.requests
    assert first.headers["x-idempotency-key"] == second.headers["x-idempotency-key"]
    assert first.body == second.body
    [email] = buttondown.sent()  # still one
    digest, [batch] = read_journal(project)
    assert (digest.state, batch.attempts, batch.provider_id) == ("sent", 2, email["id"])

    third = project.cli("run", env=ENV)

    assert third.exit_code == 0, third.output
    assert "nothing new" in third.stdout
    assert len(endpoint.requests) == 2


@pytest.mark.parametrize(
    ("status", "body", "headers", "shown"),
    [
        (429, {"detail": "Request was throttled. Expected available in 1 second."}, {"Retry-After": "0"}, "HTTP 429"),
        (500, {"detail": "A server error occurred."}, {}, "HTTP 500: A server error occurred."),
        (503, b"upstream connect error", {"Content-Type": "text/plain"}, "HTTP 503: upstream connect error"),
    ],
    ids=["429", "500", "503-text"],
)
def test_a_passing_failure_leaves_the_digest_pending_and_the_next_run_sends_it_once(
    project: Project,
    endpoint: Endpoint,
    buttondown: FakeButtondown,
    status: int,
    body: Any,
    headers: dict[str, str],
    shown: str,
) -> None:
    buttondown.fail(status, body, headers)

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    line = failed.stderr.splitlines()[-1]  # the outcome, after the progress lines
    digest, [batch] = read_journal(project)
    assert line.startswith(f"digest {digest.id}: not sent, will retry on the next run: buttondown: ")
    assert shown in line
    assert (digest.state, batch.state) == ("pending", "pending")
    assert buttondown.sent() == []

    again = project.cli("run", env=ENV)

    assert again.exit_code == 0, again.output
    assert len(buttondown.sent()) == 1
    assert [r.headers["x-idempotency-key"] for r in endpoint.requests] == [batch.key, batch.key]
    assert last_digest(project).state == "sent"


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (
            {"code": "subject_invalid", "detail": "The subject is too long."},
            "HTTP 400: subject_invalid: The subject is",
        ),
        ({"subject": ["This field is required."]}, "HTTP 400: subject: This field is required."),
    ],
    ids=["code-detail", "field-errors"],
)
def test_a_refusal_fails_the_batch_with_buttondowns_words_and_is_not_retried(
    project: Project, endpoint: Endpoint, buttondown: FakeButtondown, body: dict[str, Any], shown: str
) -> None:
    buttondown.fail(400, body)

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    digest, [batch] = read_journal(project)
    assert (digest.state, batch.state) == ("incomplete", "failed")
    assert batch.last_error is not None and shown in batch.last_error
    assert "1 batch failed" in failed.stderr and shown in failed.stderr

    again = project.cli("run", env=ENV)

    assert again.exit_code == 1, again.output  # the digest waits for the operator, and says so
    assert "--retry-failed" in again.stderr
    assert "nothing new" in again.stdout
    assert len(endpoint.requests) == 1
    assert buttondown.sent() == []


def test_a_wrong_key_is_refused_for_good_and_never_shown(
    project: Project, endpoint: Endpoint, buttondown: FakeButtondown
) -> None:
    buttondown.key = "bd_the_right_one_0000"

    failed = project.cli("run", env=ENV)
    status = project.cli("status", env=ENV)

    assert failed.exit_code == 1
    [request] = endpoint.requests
    assert request.headers["authorization"] == f"Token {KEY}"
    digest, [batch] = read_journal(project)
    assert (digest.state, batch.state) == ("incomplete", "failed")
    assert batch.last_error is not None and "HTTP 401: Please provide a valid API key" in batch.last_error
    for text in (failed.stdout, failed.stderr, digest.last_error, batch.last_error, status.stdout, status.stderr):
        assert_no_secret(text, KEY)


def test_an_error_echoing_the_key_is_redacted(project: Project, endpoint: Endpoint, buttondown: FakeButtondown) -> None:
    buttondown.fail(400, {"code": "body_invalid", "detail": f"Bad header Authorization: Token {KEY}"})

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    digest, [batch] = read_journal(project)
    assert (
        batch.last_error is not None and "body_invalid: Bad header Authorization: Token [redacted]" in batch.last_error
    )
    for text in (failed.stdout, failed.stderr, digest.last_error, batch.last_error):
        assert_no_secret(text, KEY)


def test_without_the_key_it_is_a_config_error_before_any_request(
    project: Project, endpoint: Endpoint, buttondown: FakeButtondown
) -> None:
    result = project.cli("run")

    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("publisher: error: publisher.toml: [mailer] api_key_env: ")
    assert "PUBLISHER_MAILER_KEY is not set" in line
    assert endpoint.requests == []


def test_a_test_send_mails_a_draft_to_the_given_addresses_only(
    project: Project, endpoint: Endpoint, buttondown: FakeButtondown
) -> None:
    assert project.cli("ingest", str(project.articles)).exit_code == 0

    result = project.cli("digest", "test", "--to", "editor@example.org", "--to", "proof@example.net", env=ENV)

    assert result.exit_code == 0, result.output
    create, send_draft = endpoint.requests
    assert (create.method, create.route) == ("POST", "/v1/emails")
    body = create.json()
    assert body["status"] == "draft"
    assert body["subject"].startswith("[TEST] ")
    assert "{{ unsubscribe_url }}" in body["body"]
    [draft] = buttondown.emails.values()
    assert (send_draft.method, send_draft.route) == ("POST", f"/v1/emails/{draft['id']}/send-draft")
    assert send_draft.headers["authorization"] == f"Token {KEY}"
    assert send_draft.json() == {"recipients": ["editor@example.org", "proof@example.net"]}
    assert buttondown.previews == [(draft["id"], ["editor@example.org", "proof@example.net"])]
    assert buttondown.sent() == []  # the subscribers got nothing
    assert "test digest sent to editor@example.org, proof@example.net" in result.stdout

    store = project.open_store()
    try:
        assert store.last_digest() is None  # nothing marked
    finally:
        store.close()


def test_template_syntax_in_an_article_reaches_buttondown_as_text_not_as_template(
    project: Project, endpoint: Endpoint, buttondown: FakeButtondown
) -> None:
    """Buttondown renders the body as a template: an article's braces must not become code."""
    project.add_article(
        "braces.md", "---\ntitle: 'Costs {{ subscriber.email }} {% if x %}'\n---\nSay {{ secret }} and {#.\n"
    )

    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    body = endpoint.requests[0].json()["body"]
    assert "{{ subscriber" not in body and "{{ secret" not in body and "{%" not in body and "{#" not in body
    assert "&#123;&#123; subscriber.email &#125;&#125;" in body  # reads the same in a mail client
    assert body.count("{{") == body.count("{{ unsubscribe_url }}") >= 1  # only our own tag is template code
