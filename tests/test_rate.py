"""The send rate: ``[mailer] rate`` messages a second and ``[mailer] concurrency`` requests in
flight, so that a provider's limit is never reached by design.

The limiter (publisher.pacing) runs on a fake clock: no test waits for it, and the times it
chose are exact. Concurrency is real: a recording HTTP server on 127.0.0.1 holds requests until
as many as expected are in flight at once (threading primitives, no sleeps) and counts them.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from functools import partial
from typing import Any

import pytest

from publisher import dispatch, journal
from publisher.delivery import build_mailer
from publisher.errors import ConfigError
from publisher.pacing import Pace
from tests.conftest import NOW, Project
from tests.delivery_helpers import UNSUBSCRIBE_SECRET, add_subscribers, read_journal
from tests.endpoint import Answer, Endpoint, Request

WAIT = 10.0  # seconds: longest a held request waits for the others before the test fails


@pytest.fixture(autouse=True)
def _unsubscribe_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISHER_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)


class FakeClock:
    """Time that passes only when slept."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def most_in_one_second(sends: list[tuple[float, int]]) -> int:
    """The most messages (time, count) sent in any one second [t, t + 1)."""
    return max(sum(n for t, n in sends if start <= t < start + 1) for start, _ in sends)


def paced(rate: float, sizes: list[int]) -> list[tuple[float, int]]:
    """When each request of ``sizes`` messages went, one after the other, at ``rate``."""
    fake = FakeClock()
    pace = Pace(rate, clock=fake.clock, sleep=fake.sleep)
    sends = []
    for size in sizes:
        pace.wait(size)
        sends.append((fake.now, size))
    return sends


# -- the limiter -------------------------------------------------------------------------------


def test_ten_batches_of_100_at_200_a_second_are_spread_over_four_and_a_half_seconds() -> None:
    sends = paced(200, [100] * 10)

    assert [t for t, _ in sends] == [n * 0.5 for n in range(10)]
    assert most_in_one_second(sends) == 200


@pytest.mark.parametrize("size", [1, 30, 150, 199, 200])
def test_no_second_holds_more_than_the_rate_whatever_the_batch_size(size: int) -> None:
    sends = paced(200, [size] * 20)

    assert most_in_one_second(sends) <= 200
    # As many whole batches a second as fit, spread evenly; the next second starts the next lot.
    fit = 200 // size
    assert [t for t, _ in sends] == pytest.approx([n // fit + (n % fit) * size / 200 for n in range(20)])


def test_batches_of_mixed_sizes_keep_the_rate_in_every_second() -> None:
    sizes = [random.Random(seed).randint(1, 200) for seed in range(300)]

    sends = paced(200, sizes)

    assert most_in_one_second(sends) <= 200
    assert sends[-1][0] >= (sum(sizes) - sizes[-1]) / 200  # never faster than the rate on average


def test_a_batch_larger_than_the_rate_waits_in_proportion() -> None:
    sends = paced(200, [300, 300, 100, 300])

    # The last 300 also waits a second after the 100: together they are more than 200.
    assert [t for t, _ in sends] == [0.0, 1.5, 3.0, 4.0]


def test_no_rate_means_no_wait() -> None:
    assert paced(0, [1000] * 5) == [(0.0, 1000)] * 5


def test_threads_sharing_the_limiter_take_turns() -> None:
    """Eight threads at once, on a clock that stands still: each wait is the start it was given,
    and no thread reads the clock (to reserve its start) while another is doing so."""
    starts: list[float] = []
    lock = threading.Lock()
    reading = most_reading = 0

    def clock() -> float:
        nonlocal reading, most_reading
        with lock:
            reading += 1
            most_reading = max(most_reading, reading)
        time.sleep(0)  # let the other threads run: one could cut in here if nothing kept it out
        with lock:
            reading -= 1
        return 0.0

    def sleep(seconds: float) -> None:
        with lock:
            starts.append(seconds)

    pace = Pace(200, clock=clock, sleep=sleep)
    go = threading.Barrier(8)

    def sender() -> None:
        go.wait(WAIT)
        for _ in range(5):
            pace.wait(100)

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)

    assert most_reading == 1
    # 40 requests, each given its own half second (the first one at once, with no wait).
    assert sorted(starts) == [n * 0.5 for n in range(1, 40)]


# -- the rate in a real send -------------------------------------------------------------------


@pytest.fixture
def fake_pace(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """dispatch's limiter on a fake clock (it still reads its rate from [mailer] rate)."""
    fake = FakeClock()
    monkeypatch.setattr(dispatch, "Pace", partial(Pace, clock=fake.clock, sleep=fake.sleep))
    return fake


def test_a_send_keeps_to_the_configured_rate(project: Project, endpoint: Endpoint, fake_pace: FakeClock) -> None:
    project.configure(mailer={"provider": "webhook", "url": endpoint.url, "rate": 200, "batch_size": 100})
    add_subscribers(project, 1000)
    sends: list[tuple[float, int]] = []

    def record(request: Request) -> Answer:
        sends.append((fake_pace.now, len(request.json()["recipients"])))
        return 200, None, {}

    endpoint.handler = record

    result = project.cli("run")

    assert result.exit_code == 0, result.output
    assert sends == [(n * 0.5, 100) for n in range(10)]
    assert most_in_one_second(sends) == 200
    assert read_journal(project)[0].state == "sent"


def test_the_rate_is_shared_by_all_the_sending_threads(
    project: Project, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four threads, one limiter: the starts it hands out are still half a second apart."""
    starts: list[float] = []
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            starts.append(seconds)

    monkeypatch.setattr(dispatch, "Pace", partial(Pace, clock=lambda: 0.0, sleep=sleep))
    project.configure(
        mailer={"provider": "webhook", "url": endpoint.url, "rate": 200, "batch_size": 100, "concurrency": 4}
    )
    add_subscribers(project, 1000)

    result = project.cli("run")

    assert result.exit_code == 0, result.output
    assert len(endpoint.requests) == 10
    assert sorted(starts) == [n * 0.5 for n in range(1, 10)]


# -- requests in flight ------------------------------------------------------------------------


class InFlight:
    """A handler that holds each request until ``together`` are in flight, and counts them.

    When the held requests are let go, it also reads the journal: every batch claimed is one of
    them, so no request beyond those can be on its way.
    """

    def __init__(self, project: Project, together: int) -> None:
        self.project = project
        self.lock = threading.Lock()
        self.now = self.most = 0
        self.claimed: list[int] = []
        self.broken = False
        self.together = threading.Barrier(together, action=self._look, timeout=WAIT)

    def _look(self) -> None:
        _, planned = read_journal(self.project)
        self.claimed.append(sum(b.state == journal.SENDING for b in planned))

    def __call__(self, request: Request) -> Answer:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            self.together.wait()
        except threading.BrokenBarrierError:
            self.broken = True  # fewer than `together` came: the test fails on it
        finally:
            with self.lock:
                self.now -= 1
        return 200, None, {}


@pytest.fixture
def in_flight(project: Project, endpoint: Endpoint, request: pytest.FixtureRequest) -> Iterator[InFlight]:
    handler = InFlight(project, request.param)
    endpoint.handler = handler
    yield handler
    handler.together.abort()  # nobody stays held after the test


@pytest.mark.parametrize("in_flight", [1, 4], indirect=True, ids=["one", "four"])
def test_exactly_concurrency_requests_are_in_flight_at_once(
    project: Project, endpoint: Endpoint, in_flight: InFlight
) -> None:
    concurrency = in_flight.together.parties
    project.configure(mailer={"provider": "webhook", "url": endpoint.url, "batch_size": 1, "concurrency": concurrency})
    readers = add_subscribers(project, 3 * concurrency)

    result = project.cli("run")

    assert result.exit_code == 0, result.output
    assert not in_flight.broken, "fewer requests in flight at once than [mailer] concurrency"
    assert in_flight.most == concurrency
    assert in_flight.claimed == [concurrency] * 3
    assert sorted(r.json()["recipients"][0]["email"] for r in endpoint.requests) == readers
    digest, planned = read_journal(project)
    assert (digest.state, [b.state for b in planned]) == ("sent", ["accepted"] * len(readers))


def test_a_passing_failure_starts_no_new_batch_and_lets_the_others_finish(project: Project, endpoint: Endpoint) -> None:
    project.configure(
        mailer={"provider": "webhook", "url": endpoint.url, "batch_size": 1, "concurrency": 3, "retries": 0}
    )
    add_subscribers(project, 9)
    assert project.cli("ingest", str(project.articles)).exit_code == 0
    three = threading.Barrier(3, timeout=WAIT)
    failure_reported = threading.Event()

    def answer(request: Request) -> Answer:
        three.wait()  # batches 1, 2 and 3 in flight together
        if request.headers["idempotency-key"].endswith("-0002"):
            return 503, {"message": "overloaded"}, {}
        # The others answer only once batch 2's failure is known: a new batch may start only
        # if the run failed to stop.
        assert failure_reported.wait(WAIT)
        return 200, None, {}

    def on_batch(report: dispatch.BatchReport) -> None:
        if report.state == journal.PENDING:
            failure_reported.set()

    endpoint.handler = answer
    config = project.config()
    with closing(project.open_store()) as store:
        result = dispatch.send_digest(config, store, build_mailer(config), NOW, on_batch=on_batch)

    assert result.state == "pending", result.message
    assert "2 of 9 batches accepted so far" in result.message and "HTTP 503: overloaded" in result.message
    assert len(endpoint.requests) == 3
    _, planned = read_journal(project)
    assert [(b.state, b.attempts) for b in planned] == [
        ("accepted", 1),
        ("pending", 1),
        ("accepted", 1),
        *[("pending", 0)] * 6,
    ]


class Interrupted(BaseException):
    """Like KeyboardInterrupt: not an Exception, so nothing on the way catches it."""


def test_an_interruption_starts_no_new_batch(project: Project, endpoint: Endpoint) -> None:
    project.configure(mailer={"provider": "webhook", "url": endpoint.url, "batch_size": 1, "retries": 0})
    add_subscribers(project, 5)
    assert project.cli("ingest", str(project.articles)).exit_code == 0
    interrupted = threading.Event()

    def answer(request: Request) -> Answer:
        if not request.headers["idempotency-key"].endswith("-0001"):
            assert interrupted.wait(WAIT)  # batch 2 (already started, maybe) ends after the Ctrl-C
        return 200, None, {}

    def on_batch(report: dispatch.BatchReport) -> None:
        interrupted.set()
        raise Interrupted  # Ctrl-C while batch 1's outcome is shown

    endpoint.handler = answer
    config = project.config()
    with closing(project.open_store()) as store, pytest.raises(Interrupted):
        dispatch.send_digest(config, store, build_mailer(config), NOW, on_batch=on_batch)

    assert len(endpoint.requests) <= 2
    digest, planned = read_journal(project)
    assert digest.state == "pending"
    assert [b.attempts for b in planned[2:]] == [0, 0, 0]  # never started


# -- settings --------------------------------------------------------------------------------


def test_rate_settings_have_defaults(project: Project) -> None:
    mailer = project.configure(mailer={"provider": "webhook", "url": "https://hooks.example.org/"}).mailer

    assert (mailer.rate, mailer.concurrency) == (0.0, 1)
    assert project.configure(mailer={"rate": 12.5, "concurrency": 8}).mailer.rate == 12.5


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("rate", -1, "expected messages per second (0 for no limit), got -1"),
        ("rate", True, "expected messages per second (0 for no limit), got True"),
        ("rate", "10/s", "expected messages per second (0 for no limit), got '10/s'"),
        ("rate", float("inf"), "expected messages per second (0 for no limit), got inf"),
        ("concurrency", 0, "must be at least 1, got 0"),
    ],
)
def test_bad_rate_settings_are_refused_naming_the_key(project: Project, key: str, value: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        project.configure(mailer={key: value})

    assert str(refused.value) == f"{project.config_path}: [mailer] {key}: {problem}"
