"""Which failures are tried again, how long to wait, and when to give up: within a run
(``[mailer] retries`` and ``max_retry_seconds``) and across runs (``max_attempts``).

Every test sends for real, through the webhook provider, to a recording HTTP server on
127.0.0.1. Waits between attempts go to a recorder (and, where the total time matters, to a
fake clock) instead of ``time.sleep``, so no test waits for a backoff.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from publisher import dispatch
from publisher.delivery import build_mailer
from publisher.delivery.base import HttpMailer
from publisher.errors import ConfigError
from tests.conftest import NOW, Project
from tests.delivery_helpers import assert_no_secret, last_digest, read_journal
from tests.endpoint import Answer, Endpoint, Request

KEY = "wh_Rk3Tz8Lq5Vn2Xc7P"  # distinctive: any 4 characters of it in output are a leak
ENV = {"PUBLISHER_MAILER_KEY": KEY}


@pytest.fixture(autouse=True)
def _no_key_from_the_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLISHER_MAILER_KEY", raising=False)


def use_webhook(project: Project, url: str, **settings: Any) -> None:
    project.configure(mailer={"provider": "webhook", "url": url, "retries": 0, "timeout": 5, **settings})


class Script:
    """Answers in turn, then ``then`` for every request after them."""

    def __init__(self, *answers: Answer, then: Answer = (200, None, {})) -> None:
        self.answers = deque(answers)
        self.then = then

    def __call__(self, request: Request) -> Answer:
        return self.answers.popleft() if self.answers else self.then


class FakeClock:
    """Time that passes only when slept: ``sleep`` records the wait and moves the clock on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeClock:
    return FakeClock()


def mailer_for(project: Project, fake_time: FakeClock) -> HttpMailer:
    """The configured mailer, waiting on ``fake_time`` instead of the real clock."""
    mailer = build_mailer(project.config())
    assert isinstance(mailer, HttpMailer)
    mailer.sleep, mailer.clock = fake_time.sleep, fake_time.clock
    return mailer


@pytest.fixture
def send(project: Project, fake_time: FakeClock) -> Iterator[Any]:
    """``send()`` sends (or continues) the digest once, as `publisher run` would, on fake time."""
    assert project.cli("ingest", str(project.articles)).exit_code == 0
    with closing(project.open_store()) as store:

        def send_once() -> dispatch.SendResult:
            config = project.config()
            return dispatch.send_digest(config, store, mailer_for(project, fake_time), NOW)

        yield send_once


# -- which answers are passing -----------------------------------------------------------------

PASSING = [408, 429, 500, 502, 503, 504]
# 425 answers TLS early data, which is never sent; 501 and 505+ say the server cannot do it at all.
LASTING = [400, 401, 403, 404, 409, 413, 422, 425, 501, 505, 507, 511]


@pytest.mark.parametrize("status", PASSING + LASTING)
def test_only_the_passing_statuses_are_tried_again(project: Project, endpoint: Endpoint, status: int) -> None:
    use_webhook(project, endpoint.url, retries=0)
    endpoint.handler = Script((status, {"message": f"refused  with\n{status}, as asked"}, {}))

    result = project.cli("run", env=ENV)

    assert result.exit_code == 1
    digest, [batch] = read_journal(project)
    assert batch.last_error is not None and batch.last_error.endswith(f"HTTP {status}: refused with {status}, as asked")
    if status in PASSING:
        assert (digest.state, batch.state) == ("pending", "pending")
        assert "will retry on the next run" in result.stderr
    else:
        assert (digest.state, batch.state) == ("incomplete", "failed")
        assert "1 batch failed" in result.stderr
    assert len(endpoint.requests) == 1


# -- waits within a run ----------------------------------------------------------------------


def test_retry_after_in_seconds_is_waited_for(
    project: Project, endpoint: Endpoint, fake_time: FakeClock, send: Any
) -> None:
    use_webhook(project, endpoint.url, retries=2)
    endpoint.handler = Script((429, {"message": "slow down"}, {"Retry-After": "1"}))

    result = send()

    assert result.state == "sent", result.message
    assert fake_time.waits == [1.0]
    first, second = endpoint.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]


def test_retry_after_as_an_http_date_is_waited_for(
    project: Project, endpoint: Endpoint, fake_time: FakeClock, send: Any
) -> None:
    use_webhook(project, endpoint.url, retries=2)
    # An HTTP date has whole seconds: two seconds ahead is between one and two seconds away.
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    endpoint.handler = Script((503, {"message": "maintenance"}, {"Retry-After": when}))

    result = send()

    assert result.state == "sent", result.message
    [wait] = fake_time.waits
    assert 0.5 < wait <= 2.0
    assert len(endpoint.requests) == 2


@pytest.mark.parametrize(
    ("asked", "waits", "state"),
    [("60", [60.0], "sent"), ("300", [], "pending")],
    ids=["within-budget", "beyond-budget"],
)
def test_retry_after_is_honoured_within_the_time_budget_and_never_cut_short(
    project: Project, endpoint: Endpoint, fake_time: FakeClock, send: Any, asked: str, waits: list[float], state: str
) -> None:
    use_webhook(project, endpoint.url, retries=2, max_retry_seconds=120)
    endpoint.handler = Script((429, {"message": "quota"}, {"Retry-After": asked}))

    result = send()

    # Asked for more than is left of the budget, it is not retried early: the next run sends it.
    assert (result.state, fake_time.waits) == (state, waits), result.message
    assert len(endpoint.requests) == len(waits) + 1


def test_backoff_grows_and_has_jitter(project: Project, endpoint: Endpoint, fake_time: FakeClock) -> None:
    use_webhook(project, endpoint.url, retries=3)
    assert project.cli("ingest", str(project.articles)).exit_code == 0
    busy = (503, {"message": "busy"}, {})
    firsts = []
    with closing(project.open_store()) as store:
        for _ in range(2):
            endpoint.handler = Script(busy, busy, busy)
            fake_time.waits.clear()
            result = dispatch.send_test(project.config(), store, mailer_for(project, fake_time), ["a@example.net"], NOW)
            assert result.state == "sent", result.message
            low = [0.5, 1.0, 2.0]  # 0.5 s doubling, each plus up to 1 s at random
            assert len(fake_time.waits) == 3
            assert all(step <= wait <= step + 1 for step, wait in zip(low, fake_time.waits, strict=True))
            firsts.append(fake_time.waits[0])
    assert firsts[0] != firsts[1]  # the jitter: two sends do not retry in step


def test_retries_stop_when_the_time_budget_is_spent(
    project: Project, endpoint: Endpoint, fake_time: FakeClock, send: Any
) -> None:
    use_webhook(project, endpoint.url, retries=100, max_retry_seconds=10)
    endpoint.handler = Script(then=(503, {"message": "down for good"}, {}))

    result = send()

    assert result.state == "pending", result.message
    # Backoff 0.5-1.5, 1-2, 2-3, 4-5, 8-9 s: 10 s hold three or four waits, not the 100 retries.
    assert 3 <= len(fake_time.waits) <= 4
    assert sum(fake_time.waits) <= 10
    assert len(endpoint.requests) == len(fake_time.waits) + 1
    assert "HTTP 503: down for good" in result.message


def test_a_retry_after_that_does_not_fit_what_is_left_ends_the_retries(
    project: Project, endpoint: Endpoint, fake_time: FakeClock, send: Any
) -> None:
    use_webhook(project, endpoint.url, retries=5, max_retry_seconds=10)
    endpoint.handler = Script(then=(429, {"message": "quota"}, {"Retry-After": "6"}))

    result = send()

    assert result.state == "pending", result.message
    assert fake_time.waits == [6.0]  # a second 6 s would end after 10 s
    assert len(endpoint.requests) == 2


# -- across runs -----------------------------------------------------------------------------


def test_a_batch_still_failing_after_max_attempts_runs_is_failed_and_left_alone(
    project: Project, endpoint: Endpoint
) -> None:
    use_webhook(project, endpoint.url, max_attempts=3)
    endpoint.handler = Script(then=(503, {"message": f"unavailable (Bearer {KEY})"}, {}))

    for _ in range(2):
        pending = project.cli("run", env=ENV)
        assert pending.exit_code == 1
        assert "will retry on the next run" in pending.stderr
    given_up = project.cli("run", env=ENV)

    assert given_up.exit_code == 1
    digest, [batch] = read_journal(project)
    assert (digest.state, batch.state, batch.attempts) == ("incomplete", "failed", 3)
    assert batch.last_error is not None
    assert batch.last_error.startswith(f"gave up after 3 attempts: webhook: {endpoint.url}: HTTP 503: unavailable")
    assert "1 batch failed" in given_up.stderr and "gave up after 3 attempts" in given_up.stderr
    assert_no_secret(batch.last_error, KEY)
    assert_no_secret(given_up.stderr, KEY)
    assert len(endpoint.requests) == 3

    later = project.cli("run", env=ENV)

    assert later.exit_code == 1, later.output  # the digest waits for the operator: every run says so
    assert "nothing new" in later.stdout
    [reminder] = later.stderr.splitlines()
    assert "not sent to everyone" in reminder and "publisher digest resume --retry-failed" in reminder
    assert len(endpoint.requests) == 3  # not retried silently

    endpoint.handler = None
    reopened = project.cli("digest", "resume", "--retry-failed", env=ENV)

    assert reopened.exit_code == 0, reopened.output
    assert len(endpoint.requests) == 4
    assert len({r.headers["idempotency-key"] for r in endpoint.requests}) == 1
    assert len({r.body for r in endpoint.requests}) == 1
    assert last_digest(project).state == "sent"


def test_a_batch_reopened_after_giving_up_gets_max_attempts_more(project: Project, endpoint: Endpoint) -> None:
    use_webhook(project, endpoint.url, max_attempts=2)
    endpoint.handler = Script(then=(502, {"message": "bad gateway"}, {}))
    assert project.cli("run", env=ENV).exit_code == 1
    assert project.cli("run", env=ENV).exit_code == 1
    assert read_journal(project)[1][0].state == "failed"

    reopened = project.cli("digest", "resume", "--retry-failed", env=ENV)

    # Still failing, but it had a fresh count: pending, for the next run, not failed at once.
    assert reopened.exit_code == 1
    assert "will retry on the next run" in reopened.stderr
    digest, [batch] = read_journal(project)
    assert (digest.state, batch.state, batch.attempts) == ("pending", "pending", 1)

    again = project.cli("run", env=ENV)

    assert again.exit_code == 1
    digest, [batch] = read_journal(project)
    assert (digest.state, batch.state, batch.attempts) == ("incomplete", "failed", 2)
    assert len(endpoint.requests) == 4


# -- settings --------------------------------------------------------------------------------


def test_retry_settings_have_defaults(project: Project) -> None:
    mailer = project.configure(mailer={"provider": "webhook", "url": "https://hooks.example.org/"}).mailer

    assert (mailer.retries, mailer.max_retry_seconds, mailer.max_attempts) == (2, 120.0, 10)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("max_retry_seconds", 0, "expected a positive number, got 0"),
        ("max_retry_seconds", "2m", "expected a positive number, got '2m'"),
        ("max_attempts", 0, "must be at least 1, got 0"),
        ("max_attempts", 2.5, "expected an integer, got float"),
    ],
)
def test_bad_retry_settings_are_refused_naming_the_key(project: Project, key: str, value: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        project.configure(mailer={key: value})

    assert str(refused.value) == f"{project.config_path}: [mailer] {key}: {problem}"
