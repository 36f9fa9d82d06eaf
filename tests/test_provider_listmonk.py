"""listmonk, driven through the real CLI against a fake of its campaigns API on 127.0.0.1.

The fake (tests/fakes/listmonk.py) checks the API user's token, the campaign fields and the
status transitions as listmonk does, and answers with listmonk's ``{"data"}`` and
``{"message"}`` shapes.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from publisher.digest import UNSUBSCRIBE_PLACEHOLDER
from tests.conftest import SAMPLE_TITLE, Project
from tests.delivery_helpers import assert_no_secret, last_digest, read_journal
from tests.endpoint import Answer, Endpoint, Request
from tests.fakes.listmonk import FakeListmonk

USER = "publisher-api"
KEY = "lm_Vb8Jq3Ns6Tz1Xc4W"  # distinctive: any 4 characters of it in output are a leak
ENV = {"PUBLISHER_MAILER_KEY": KEY}
LISTS = [3, 7]


@pytest.fixture(autouse=True)
def _no_key_from_the_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLISHER_MAILER_KEY", raising=False)


@pytest.fixture
def listmonk(project: Project, endpoint: Endpoint) -> FakeListmonk:
    fake = FakeListmonk(user=USER, key=KEY, lists={3: "Weekly", 7: "Friends"}, subscribers={"editor@example.org"})
    endpoint.handler = fake.handle
    project.configure(
        mailer={
            "provider": "listmonk",
            "url": endpoint.url,
            "lists": LISTS,
            "username": USER,
            "retries": 0,
            "timeout": 5,
        }
    )
    return fake


def calls(endpoint: Endpoint) -> list[str]:
    return [f"{r.method} {r.route}" for r in endpoint.requests]


def test_the_digest_becomes_a_campaign_to_the_configured_lists_and_is_started(
    project: Project, endpoint: Endpoint, listmonk: FakeListmonk
) -> None:
    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    digest, [batch] = read_journal(project)
    assert calls(endpoint) == ["GET /api/campaigns", "POST /api/campaigns", "PUT /api/campaigns/1/status"]
    for request in endpoint.requests:
        assert request.headers["authorization"] == f"token {USER}:{KEY}"
    look_up, create, start = endpoint.requests
    assert parse_qs(urlsplit(look_up.path).query)["query"] == [digest.id]
    body = create.json()
    assert body["name"] == digest.id
    assert body["subject"] == digest.subject == "Example News: 1 new"
    assert body["lists"] == LISTS
    assert body["from_email"] == "Example News <news@example.org>"
    assert (body["type"], body["content_type"], body["messenger"]) == ("regular", "html", "email")
    assert SAMPLE_TITLE in body["body"] and SAMPLE_TITLE in body["altbody"]
    for part in (body["body"], body["altbody"]):
        assert "{{ UnsubscribeURL }}" in part  # listmonk puts each subscriber's own link there
        assert UNSUBSCRIBE_PLACEHOLDER not in part
    assert start.json() == {"status": "running"}
    [campaign] = listmonk.started()
    assert (campaign["status"], [entry["id"] for entry in campaign["lists"]]) == ("running", LISTS)
    assert (digest.state, batch.state, batch.provider_id) == ("sent", "accepted", "1")
    assert "campaign 1 started by listmonk" in result.stdout


def test_a_crash_between_create_and_start_is_finished_by_starting_the_draft(
    project: Project, endpoint: Endpoint, listmonk: FakeListmonk
) -> None:
    listmonk.fail("PUT", "/status", 500, "Error updating campaign: database unavailable")

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    digest, [batch] = read_journal(project)
    assert (digest.state, batch.state) == ("pending", "pending")
    line = failed.stderr.splitlines()[-1]
    assert line.startswith(f"digest {digest.id}: not sent, will retry on the next run: listmonk: ")
    assert line.endswith("HTTP 500: Error updating campaign: database unavailable")
    assert [c["status"] for c in listmonk.campaigns.values()] == ["draft"]

    again = project.cli("run", env=ENV)

    assert again.exit_code == 0, again.output
    assert calls(endpoint)[3:] == ["GET /api/campaigns", "PUT /api/campaigns/1/status"]  # no second campaign
    assert [c["status"] for c in listmonk.campaigns.values()] == ["running"]
    assert last_digest(project).state == "sent"


def test_a_campaign_already_started_is_not_created_or_started_again(
    project: Project, endpoint: Endpoint, listmonk: FakeListmonk
) -> None:
    """listmonk started it but the answer was lost (a 502 from a proxy): the next run finds it running."""

    def start_then_lose_the_answer(request: Request) -> Answer:
        answer = listmonk.handle(request)
        if request.route.endswith("/status"):
            return 502, b"Bad Gateway", {"Content-Type": "text/plain"}
        return answer

    endpoint.handler = start_then_lose_the_answer
    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    assert "HTTP 502: Bad Gateway" in failed.stderr

    endpoint.handler = listmonk.handle
    again = project.cli("run", env=ENV)

    assert again.exit_code == 0, again.output
    assert calls(endpoint)[3:] == ["GET /api/campaigns"]
    assert len(listmonk.campaigns) == 1
    digest, [batch] = read_journal(project)
    assert (digest.state, batch.provider_id) == ("sent", "1")


def test_a_campaign_cancelled_in_listmonk_fails_the_batch_for_the_operator_to_decide(
    project: Project, endpoint: Endpoint, listmonk: FakeListmonk
) -> None:
    listmonk.fail("PUT", "/status", 503, "Service Unavailable")
    assert project.cli("run", env=ENV).exit_code == 1
    listmonk.campaigns[1]["status"] = "cancelled"  # the operator's doing, in listmonk's admin

    again = project.cli("run", env=ENV)

    assert again.exit_code == 1
    digest, [batch] = read_journal(project)
    assert (digest.state, batch.state) == ("incomplete", "failed")
    assert batch.last_error is not None and "campaign 1 (" in batch.last_error and "is cancelled" in batch.last_error
    assert calls(endpoint)[3:] == ["GET /api/campaigns"]


@pytest.mark.parametrize("status", [429, 500, 502])
def test_a_passing_failure_leaves_the_digest_pending_and_the_next_run_sends_it_once(
    project: Project, endpoint: Endpoint, listmonk: FakeListmonk, status: int
) -> None:
    listmonk.fail("POST", "/api/campaigns", status, "Too many requests" if status == 429 else "Internal error")

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    digest, [batch] = read_journal(project)
    assert (digest.state, batch.state) == ("pending", "pending")
    assert f"HTTP {status}: " in failed.stderr
    assert listmonk.campaigns == {}

    again = project.cli("run", env=ENV)

    assert again.exit_code == 0, again.output
    assert len(listmonk.campaigns) == 1 and len(listmonk.started()) == 1
    assert last_digest(project).state == "sent"


def test_a_refusal_fails_the_batch_with_listmonks_words_and_is_not_retried(
    project: Project, endpoint: Endpoint, listmonk: FakeListmonk
) -> None:
    listmonk.fail("POST", "/api/campaigns", 400, "Invalid length for subject.")

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    digest, [batch] = read_journal(project)
    assert (digest.state, batch.state) == ("incomplete", "failed")
    assert batch.last_error is not None and batch.last_error.endswith("HTTP 400: Invalid length for subject.")
    assert "1 batch failed" in failed.stderr

    again = project.cli("run", env=ENV)

    assert again.exit_code == 1, again.output  # the digest waits for the operator, and says so
    assert "--retry-failed" in again.stderr
    assert "nothing new" in again.stdout
    assert len(endpoint.requests) == 2  # the look-up and the refused create, nothing since
    assert listmonk.campaigns == {}


def test_wrong_credentials_are_refused_for_good_and_the_key_never_shown(
    project: Project, endpoint: Endpoint, listmonk: FakeListmonk
) -> None:
    listmonk.key = "lm_the_right_one_000"

    failed = project.cli("run", env=ENV)
    status = project.cli("status", env=ENV)

    assert failed.exit_code == 1
    digest, [batch] = read_journal(project)
    assert batch.state == "failed"
    assert batch.last_error is not None and batch.last_error.endswith("HTTP 403: Invalid API credentials")
    for text in (failed.stdout, failed.stderr, digest.last_error, batch.last_error, status.stdout, status.stderr):
        assert_no_secret(text, KEY)


def test_an_error_echoing_the_credentials_is_redacted(
    project: Project, endpoint: Endpoint, listmonk: FakeListmonk
) -> None:
    listmonk.fail("GET", "/api/campaigns", 400, f"bad header: token {USER}:{KEY}")

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    digest, [batch] = read_journal(project)
    assert batch.last_error is not None and "bad header: token [redacted]" in batch.last_error
    for text in (failed.stdout, failed.stderr, digest.last_error, batch.last_error):
        assert_no_secret(text, KEY)


@pytest.mark.parametrize(
    ("mailer", "env", "shown"),
    [
        ({"username": ""}, ENV, "publisher.toml: [mailer] username: missing (the listmonk API user"),
        ({}, {}, "publisher.toml: [mailer] api_key_env: environment variable PUBLISHER_MAILER_KEY is not set"),
    ],
    ids=["no-user", "no-key"],
)
def test_missing_credentials_are_a_config_error_before_any_request(
    project: Project,
    endpoint: Endpoint,
    listmonk: FakeListmonk,
    mailer: dict[str, str],
    env: dict[str, str],
    shown: str,
) -> None:
    project.configure(mailer=mailer)

    result = project.cli("run", env=env)

    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"publisher: error: {shown}")
    assert endpoint.requests == []


def test_a_test_send_mails_a_draft_to_listmonk_subscribers_and_never_starts_it(
    project: Project, endpoint: Endpoint, listmonk: FakeListmonk
) -> None:
    assert project.cli("ingest", str(project.articles)).exit_code == 0

    result = project.cli("digest", "test", "--to", "editor@example.org", env=ENV)

    assert result.exit_code == 0, result.output
    assert calls(endpoint) == ["GET /api/campaigns", "POST /api/campaigns", "POST /api/campaigns/1/test"]
    [campaign] = listmonk.campaigns.values()
    assert campaign["status"] == "draft"
    assert campaign["name"].startswith("test-")
    test = endpoint.requests[2].json()
    assert test["subscribers"] == ["editor@example.org"]
    assert test["subject"].startswith("[TEST] ")
    assert "{{ UnsubscribeURL }}" in test["body"]
    assert listmonk.tests == [(1, ["editor@example.org"], test)]
    assert listmonk.started() == []
    assert "test digest sent to editor@example.org" in result.stdout


def test_a_test_send_to_someone_listmonk_does_not_know_says_so(
    project: Project, endpoint: Endpoint, listmonk: FakeListmonk
) -> None:
    assert project.cli("ingest", str(project.articles)).exit_code == 0

    result = project.cli("digest", "test", "--to", "stranger@example.net", env=ENV)

    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("test digest: not sent: listmonk: ")
    assert line.endswith("/api/campaigns/1/test: HTTP 400: Subscriber not found.")
    assert listmonk.tests == [] and listmonk.started() == []


def test_template_syntax_in_an_article_reaches_listmonk_as_text_not_as_template(
    project: Project, endpoint: Endpoint, listmonk: FakeListmonk
) -> None:
    """listmonk renders bodies as Go templates: an article's braces must not become code."""
    project.add_article("braces.md", "---\ntitle: 'Costs {{ .Subscriber.Email }}'\n---\nSay {{ template \"x\" }}.\n")

    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    body = next(r for r in endpoint.requests if r.method == "POST").json()
    for part in (body["body"], body["altbody"]):
        assert "{{ .Subscriber" not in part and '{{ template "x"' not in part
        assert part.count("{{") == part.count("{{ UnsubscribeURL }}") >= 1  # only listmonk's own tag
    assert "&#123;&#123; .Subscriber.Email &#125;&#125;" in body["body"]  # reads the same in a mail client
    assert "{\u200b{ .Subscriber.Email }\u200b}" in body["altbody"]
