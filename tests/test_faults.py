"""Each fault of a struggling endpoint, through the real CLI: what the journal says afterwards,
the exit status and the one-line outcome, and what each reader finally gets once the fault
has cleared.

The endpoint is tests/faults.py, a real TCP server on 127.0.0.1 that keeps its own record of
the requests it took. The webhook sends an Idempotency-Key, which the server honours: every
reader ends up in its record exactly once. Mailgun has no key: a request that may have been
taken is held as in doubt, never resent without ``--resend-in-doubt``, and shown by ``status``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import Result

from publisher import journal
from tests.conftest import Project
from tests.faults import FaultServer, accept_then_drop, hang, reset, slow, status

KEY = "flt_K3y8Qw2Zr5Tx9Lm4"  # distinctive: it must never show in any output
SECRET = "unsubscribe-secret-for-the-fault-tests"
ENV = {"PUBLISHER_MAILER_KEY": KEY, "PUBLISHER_UNSUBSCRIBE_SECRET": SECRET}
READERS = [f"reader{n}@example.net" for n in range(1, 6)]  # batches of 2: three requests
PROVIDERS = ["webhook", "mailgun"]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def sending_to(project: Project, server: FaultServer, provider: str, **mailer: Any) -> None:
    """The five READERS on the local list, in batches of two, through ``provider`` at ``server``."""
    settings: dict[str, Any] = {"provider": provider, "retries": 0, "timeout": 1, "batch_size": 2} | mailer
    if provider == "webhook":
        settings["url"] = f"{server.url}/hook"
    else:
        settings |= {"url": server.url, "domain": "mg.example.org"}
    project.configure(
        digest={"recipients": "subscribers", "secret_env": "PUBLISHER_UNSUBSCRIBE_SECRET"}, mailer=settings
    )
    assert project.cli("subscribers", "add", *READERS).exit_code == 0


def where(server: FaultServer, provider: str = "webhook") -> str:
    """How a message names the request's target."""
    return f"{provider}: {server.url}/" + ("hook" if provider == "webhook" else "v3/mg.example.org/messages")


def cli(project: Project, *args: str) -> Result:
    result = project.cli(*args, env=ENV)
    assert KEY not in result.output
    return result


def outcome(result: Result) -> str:
    """The last line of a send: its outcome, which must fit on one line."""
    return result.output.rstrip("\n").splitlines()[-1]


def journal_states(project: Project) -> tuple[str, list[str]]:
    store = project.open_store()
    try:
        digest = store.last_digest()
        assert digest is not None
        return digest.state, [batch.state for batch in journal.batches_of(store, digest.id)]
    finally:
        store.close()


def keys(server: FaultServer) -> list[str]:
    """The batch of each request that arrived, by its number in the digest (``0002``)."""
    return [seen.batch[-4:] for seen in server.requests]


def taken(server: FaultServer) -> Counter[str]:
    """How often the server took a request for each reader."""
    return Counter(server.recipients())


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("code", "retry_after", "text"),
    [(500, None, "Internal Server Error"), (503, None, "Service Unavailable"), (429, "0", "Too Many Requests")],
    ids=["500", "503", "429"],
)
def test_a_refusal_to_try_again_stops_the_run_and_the_next_one_sends_the_rest(
    project: Project, server: FaultServer, provider: str, code: int, retry_after: str | None, text: str
) -> None:
    sending_to(project, server, provider)
    server.script({2: status(code, retry_after)})

    stopped = cli(project, "run")

    assert stopped.exit_code == 1
    line = outcome(stopped)
    assert "(1 of 3 batches accepted so far): not sent" in line
    assert line.endswith(f"not sent, will retry on the next run: {where(server, provider)}: HTTP {code}: {text}")
    assert journal_states(project) == ("pending", ["accepted", "pending", "pending"])
    assert keys(server) == ["0001", "0002"]  # batch 3 waits: the endpoint is struggling

    continued = cli(project, "digest", "resume")

    assert continued.exit_code == 0, continued.output
    assert outcome(continued).endswith("1 article, 3 batches accepted, 5 recipients")
    assert journal_states(project) == ("sent", ["accepted"] * 3)
    assert keys(server) == ["0001", "0002", "0002", "0003"]
    assert taken(server) == Counter(READERS)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_retry_after_is_waited_for_within_the_run(project: Project, server: FaultServer, provider: str) -> None:
    sending_to(project, server, provider, retries=1)
    server.script({1: status(429, retry_after="2")})

    result = cli(project, "run")

    assert result.exit_code == 0, result.output
    first, again = server.requests[:2]
    # The backoff alone would wait at most 1.5 s before the second attempt.
    assert again.at - first.at >= 2.0
    assert keys(server) == ["0001", "0001", "0002", "0003"]
    assert journal_states(project) == ("sent", ["accepted"] * 3)
    assert taken(server) == Counter(READERS)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_slow_answer_within_the_timeout_is_accepted(project: Project, server: FaultServer, provider: str) -> None:
    sending_to(project, server, provider, timeout=1)
    server.script({2: slow(0.4)})

    result = cli(project, "run")

    assert result.exit_code == 0, result.output
    assert server.requests[2].at - server.requests[1].at >= 0.4
    assert keys(server) == ["0001", "0002", "0003"]
    assert journal_states(project) == ("sent", ["accepted"] * 3)
    assert taken(server) == Counter(READERS)


def test_a_hang_past_the_timeout_is_resent_with_its_key_on_the_next_run(project: Project, server: FaultServer) -> None:
    sending_to(project, server, "webhook", timeout=0.5)
    server.script({2: hang()})

    stopped = cli(project, "run")

    assert stopped.exit_code == 1
    assert outcome(stopped).endswith(f"not sent, will retry on the next run: {where(server)}: no answer within 0.5s")
    assert journal_states(project) == ("pending", ["accepted", "pending", "pending"])

    continued = cli(project, "digest", "resume")

    assert continued.exit_code == 0, continued.output
    assert keys(server) == ["0001", "0002", "0002", "0003"]
    assert journal_states(project) == ("sent", ["accepted"] * 3)
    assert taken(server) == Counter(READERS)


@pytest.mark.parametrize("retries", [0, 1])
def test_an_accepted_request_whose_answer_was_lost_is_taken_once_by_an_endpoint_that_dedupes(
    project: Project, server: FaultServer, retries: int
) -> None:
    sending_to(project, server, "webhook", retries=retries)
    server.script({2: accept_then_drop()})

    first = cli(project, "run")

    if retries:  # retried within the run, with the same key
        assert first.exit_code == 0, first.output
    else:
        assert first.exit_code == 1
        assert "connection lost before an answer (Server disconnected without sending a response.)" in outcome(first)
        assert journal_states(project) == ("pending", ["accepted", "pending", "pending"])
        assert cli(project, "digest", "resume").exit_code == 0
    assert keys(server) == ["0001", "0002", "0002", "0003"]
    assert journal_states(project) == ("sent", ["accepted"] * 3)
    assert [taken.batch[-4:] for taken in server.accepted] == ["0001", "0002", "0003"]
    assert taken(server) == Counter(READERS)


def test_a_reset_connection_is_retried_with_its_key_within_the_run(project: Project, server: FaultServer) -> None:
    sending_to(project, server, "webhook", retries=1)
    server.script({2: reset()})

    result = cli(project, "run")

    assert result.exit_code == 0, result.output
    assert keys(server) == ["0001", "0002", "0002", "0003"]
    assert journal_states(project) == ("sent", ["accepted"] * 3)
    assert taken(server) == Counter(READERS)


IN_DOUBT = {
    "hang": (hang, "no answer within 0.5s"),
    "reset": (reset, "connection lost before an answer ([Errno 104] Connection reset by peer)"),
    "accept_then_drop": (
        accept_then_drop,
        "connection lost before an answer (Server disconnected without sending a response.)",
    ),
}


@pytest.mark.parametrize("fault", IN_DOUBT)
def test_a_request_mailgun_may_have_taken_is_in_doubt_and_never_resent_without_the_flag(
    project: Project, server: FaultServer, fault: str
) -> None:
    make, reason = IN_DOUBT[fault]
    sending_to(project, server, "mailgun", retries=1, timeout=0.5)  # retries: none for a batch in doubt
    server.script({2: make()})
    url = where(server, "mailgun")

    result = cli(project, "run")

    assert result.exit_code == 1
    line = outcome(result)
    assert "2 of 3 batches accepted (3 recipients); 1 batch in doubt (check the provider's log, then " in line
    assert line.endswith(f"`publisher digest resume --resend-in-doubt`): batch 2: {url}: {reason}")
    assert journal_states(project) == ("incomplete", ["accepted", "in_doubt", "accepted"])
    assert keys(server) == ["0001", "0002", "0003"]

    again = cli(project, "digest", "resume")

    assert again.exit_code == 1
    assert (
        "nothing resumed without a flag (1 batch in doubt: --resend-in-doubt; see `publisher status`)" in again.stderr
    )
    assert server.count == 3
    shown = cli(project, "status").stdout
    assert "incomplete; batches: 2 accepted, 0 failed, 1 in doubt, 0 pending; 3 of 5 recipients reached" in shown
    assert f"  batch 2 in doubt: {url}: {reason}\n" in shown
    store = project.open_store()
    try:
        digest = store.last_digest()
        assert digest is not None
    finally:
        store.close()
    assert f"look for {digest.id}-0002 in mailgun's log" in shown
    if fault == "accept_then_drop":  # it was taken: a resend would mail READERS[2:4] twice
        assert taken(server) == Counter(READERS)
        return
    assert taken(server) == Counter(READERS[:2] + READERS[4:])  # not taken: the operator may resend

    resent = cli(project, "digest", "resume", "--resend-in-doubt")

    assert resent.exit_code == 0, resent.output
    assert keys(server) == ["0001", "0002", "0003", "0002"]
    assert journal_states(project) == ("sent", ["accepted"] * 3)
    assert taken(server) == Counter(READERS)
