"""Tell WebSub hubs that a feed changed (W3C WebSub Recommendation, section "Publishing").

After the feed writer reports which documents changed, :func:`notify` sends every configured
hub one ``POST hub.mode=publish&hub.url=<topic>`` (form-encoded) per changed topic. Hubs answer
2xx (usually 204 or 202). Connection errors, timeouts, 408/425/429 and 5xx are retried with
exponential backoff and jitter, or after the hub's own ``Retry-After`` (capped); any other
answer is final. Each ping ends in a :class:`PingResult`; nothing here raises for a failed one,
and one failing hub or topic never stops the others.

Within ``publisher run`` (:func:`announce`) a hub is asked once per run, not retried within it:
the first ping it fails for a passing reason marks it down for this run (one line, whatever the
number of feeds), and what it was owed is kept in the store (:class:`Backlog`) and tried again
on a later run, after a backoff that doubles with each failed run (1 minute to 6 hours, or
the hub's own ``Retry-After``). All the pings of one run share a time budget, so a hub that
does not answer costs a run seconds, not minutes. A feed that no longer exists is not pinged.

Hub URLs may carry a token (``user:pass@`` or a query string): it is sent to the hub but never
appears in a result, not even when the hub echoes it back in an error.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from publisher import http
from publisher.store import Store

BUDGET = 15.0  # seconds that all the pings of one run may take
TIMEOUT = 5.0  # seconds one ping may take, within the budget
FIRST_BACKOFF, LONGEST_BACKOFF = timedelta(minutes=1), timedelta(hours=6)
_SETTING = "websub_pending"  # the backlog, as JSON, in the store's settings


@dataclass(frozen=True)
class PingResult:
    hub: str  # the hub URL without credentials or query string: safe to print
    topic: str
    ok: bool
    message: str  # one line for the operator
    retry: bool = False  # failed for a passing reason (timeout, 5xx...): worth trying next run
    wait: float | None = None  # the hub's Retry-After, in seconds


def notify(
    hubs: Sequence[str],
    topics: Sequence[str],
    *,
    timeout: float = 10.0,
    retries: int = 2,
    sleep: Callable[[float], None] = time.sleep,
) -> list[PingResult]:
    """POST ``hub.mode=publish&hub.url=<topic>`` to every hub for every topic.

    One result per (hub, topic) pair, hubs in the given order and topics within each hub;
    repeated hubs or topics are notified once. ``retries`` is the number of attempts after the
    first for a transient failure; ``sleep`` does the waiting between attempts (tests pass a
    recorder). Never raises for a failed ping.
    """
    results: list[PingResult] = []
    for hub in dict.fromkeys(hubs):
        where = http.printable_url(hub)
        secrets = http.url_secrets(hub)
        with httpx.Client(timeout=timeout, follow_redirects=False, headers={"User-Agent": http.USER_AGENT}) as client:
            for topic in dict.fromkeys(topics):
                results.append(_ping(client, hub, topic, where, secrets, timeout, retries, sleep))
    return results


class _Failed(Exception):
    """One attempt failed; ``retryable`` says whether the same POST may succeed later."""

    def __init__(
        self, reason: str, *, retryable: bool, retry_after: float | None = None, timed_out: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.timed_out = timed_out


def _ping(
    client: httpx.Client,
    hub: str,
    topic: str,
    where: str,
    secrets: list[str],
    timeout: float,
    retries: int,
    sleep: Callable[[float], None],
) -> PingResult:
    attempts = 0

    def attempt() -> None:
        nonlocal attempts
        attempts += 1
        _post(client, hub, topic, timeout)

    retrying = http.retrying(retries, sleep)
    shown_topic = http.one_line(topic)
    try:
        retrying(attempt)
    except _Failed as failure:
        reason = http.shorten(http.redact(failure.reason, secrets))
        if failure.retryable:
            outcome = f"gave up after {attempts} attempt{'s' if attempts > 1 else ''}"
        else:
            outcome = "permanent, not retried"
        message = f"websub: {where} not notified of {shown_topic}: {reason} ({outcome})"
        return PingResult(hub=where, topic=topic, ok=False, message=message, retry=failure.retryable)
    return PingResult(hub=where, topic=topic, ok=True, message=f"websub: {where} accepted {shown_topic}")


def _post(client: httpx.Client, hub: str, topic: str, timeout: float) -> None:
    """POST once; any failure becomes a :class:`_Failed` with the hub's own words."""
    try:
        response = client.post(hub, data={"hub.mode": "publish", "hub.url": topic}, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise _Failed(f"no answer within {timeout:g}s", retryable=True, timed_out=True) from exc
    except httpx.ConnectError as exc:
        raise _Failed(f"cannot connect ({http.describe(exc)})", retryable=True) from exc
    except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
        raise _Failed(f"connection lost ({http.describe(exc)})", retryable=True) from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # a hub URL httpx cannot use, and the like
        raise _Failed(f"cannot send ({http.describe(exc)})", retryable=False) from exc
    if response.is_success:
        return
    status = response.status_code
    retryable = http.retryable_status(status)
    reason = f"HTTP {status}: {http.error_text(response) or response.reason_phrase}"
    raise _Failed(reason, retryable=retryable, retry_after=http.retry_after(response) if retryable else None)


@dataclass(frozen=True)
class HubState:
    """What a hub is owed: the topics it missed, since when it fails, when to try it again."""

    hub: str  # printable: no credentials
    topics: tuple[str, ...]
    failures: int = 0  # runs in a row that found it down
    retry_at: datetime | None = None  # not asked before this moment
    error: str | None = None  # the last failure, one line


class Backlog:
    """The pings owed to each hub, kept in the store between runs (keyed by a hash of the
    hub's URL, so that no token in it is written to the store)."""

    def __init__(self, entries: dict[str, HubState], legacy: tuple[str, ...] = (), stored: str | None = None) -> None:
        self.entries = entries
        self.legacy = legacy  # the old format: topics owed to every hub
        self.stored = stored  # as read from the store: an unchanged backlog is not written again

    @classmethod
    def load(cls, store: Store) -> Backlog:
        stored = store.setting(_SETTING)
        try:
            data = json.loads(stored or "{}")
        except ValueError:
            data = {}  # unreadable: a backlog is worth less than a run that stops on it
        if isinstance(data, list):
            return cls({}, tuple(str(t) for t in data), stored)
        entries = {}
        for key, entry in (data.get("hubs") or {}).items():
            retry_at = entry.get("retry_at")
            entries[key] = HubState(
                hub=str(entry.get("hub", "")),
                topics=tuple(str(t) for t in entry.get("topics", [])),
                failures=int(entry.get("failures", 0)),
                retry_at=datetime.fromisoformat(retry_at) if retry_at else None,
                error=entry.get("error"),
            )
        return cls(entries, stored=stored)

    def save(self, store: Store, previous: Backlog | None = None) -> None:
        """Write the backlog, unless it is what ``previous`` read from the store."""
        hubs = {
            key: {
                "hub": e.hub,
                "topics": list(e.topics),
                "failures": e.failures,
                "retry_at": e.retry_at.isoformat() if e.retry_at else None,
                "error": e.error,
            }
            for key, e in sorted(self.entries.items())
        }
        text = json.dumps({"format": 2, "hubs": hubs}, sort_keys=True)
        if previous is None or text != (previous.stored or json.dumps({"format": 2, "hubs": {}})):
            store.put_setting(_SETTING, text)

    def hubs(self) -> list[HubState]:
        return [e for _, e in sorted(self.entries.items()) if e.topics]

    def owed(self, hub: str) -> HubState:
        entry = self.entries.get(_key(hub))
        if entry is None:
            return HubState(hub=http.printable_url(hub), topics=self.legacy)
        return HubState(entry.hub, (*entry.topics, *self.legacy), entry.failures, entry.retry_at, entry.error)


def announce(
    hubs: Sequence[str],
    changed: Sequence[str],
    backlog: Backlog,
    now: datetime,
    *,
    exists: Callable[[str], bool],
    budget: float = BUDGET,
    timeout: float = TIMEOUT,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[list[PingResult], Backlog]:
    """Ping every hub for the ``changed`` topics and what it is owed, as one run does.

    Returns one result per ping sent, plus one line for each hub found down, waiting out its
    backoff, or cut short by the budget; and the new backlog. Topics for which ``exists`` is
    false (a feed removed since) are dropped. Never raises for a failed ping.
    """
    deadline = monotonic() + budget
    results: list[PingResult] = []
    kept: dict[str, HubState] = {}
    for hub in dict.fromkeys(hubs):
        owed = backlog.owed(hub)
        topics = [topic for topic in dict.fromkeys([*owed.topics, *changed]) if exists(topic)]
        if not topics:
            continue
        if owed.retry_at is not None and now < owed.retry_at:
            kept[_key(hub)] = HubState(owed.hub, tuple(topics), owed.failures, owed.retry_at, owed.error)
            message = (
                f"websub: {owed.hub} is down ({owed.error}); {_feeds(len(topics))} to announce, "
                f"next try after {owed.retry_at.isoformat()}"
            )
            results.append(PingResult(hub=owed.hub, topic=topics[0], ok=False, message=message, retry=True))
            continue
        sent, left = _send_all(hub, topics, deadline, timeout, monotonic)
        results.extend(r for r in sent if r.ok or not r.retry)
        down = next((r for r in sent if not r.ok and r.retry), None)
        if down is not None:
            failures = owed.failures + 1
            wait = max(min(FIRST_BACKOFF * 2 ** (failures - 1), LONGEST_BACKOFF), _asked(down))
            error = down.message
            state = HubState(owed.hub, tuple(left), failures, now + wait, error)
            kept[_key(hub)] = state
            message = (
                f"websub: {owed.hub} is down ({error}); {_feeds(len(left))} to announce, "
                f"next try after {state.retry_at.isoformat() if state.retry_at else ''}"
            )
            results.append(PingResult(hub=owed.hub, topic=left[0], ok=False, message=message, retry=True))
        elif left:  # the budget ran out before this hub's turn ended: not its fault
            kept[_key(hub)] = HubState(owed.hub, tuple(left))
            message = f"websub: {owed.hub}: {_feeds(len(left))} left for the next run (the {budget:g} s budget ran out)"
            results.append(PingResult(hub=owed.hub, topic=left[0], ok=False, message=message, retry=True))
    return results, Backlog(kept)


def _send_all(
    hub: str, topics: list[str], deadline: float, timeout: float, monotonic: Callable[[], float]
) -> tuple[list[PingResult], list[str]]:
    """Ping ``hub`` for each topic until it fails for a passing reason or the time is up;
    the results, and the topics left (the failed one first)."""
    where, secrets = http.printable_url(hub), http.url_secrets(hub)
    results: list[PingResult] = []
    with httpx.Client(timeout=timeout, follow_redirects=False, headers={"User-Agent": http.USER_AGENT}) as client:
        for i, topic in enumerate(topics):
            left = deadline - monotonic()
            if left <= 0:
                return results, topics[i:]
            shown = http.one_line(topic)
            try:
                _post(client, hub, topic, min(timeout, left))
            except _Failed as failure:
                if failure.timed_out and left < timeout:
                    return results, topics[i:]  # cut short by the budget: the hub may be fine
                reason = http.shorten(http.redact(failure.reason, secrets))
                if failure.retryable:
                    down = PingResult(where, topic, ok=False, message=reason, retry=True, wait=failure.retry_after)
                    results.append(down)
                    return results, topics[i:]
                message = f"websub: {where} not notified of {shown}: {reason} (permanent, not retried)"
                results.append(PingResult(where, topic, ok=False, message=message))
                continue
            results.append(PingResult(where, topic, ok=True, message=f"websub: {where} accepted {shown}"))
    return results, []


def _asked(down: PingResult) -> timedelta:
    """The hub's own Retry-After, capped at a day."""
    return timedelta(seconds=min(down.wait or 0.0, 86400.0))


def _feeds(n: int) -> str:
    return f"{n} {'feed' if n == 1 else 'feeds'}"


def _key(hub: str) -> str:
    return hashlib.sha256(hub.encode()).hexdigest()[:16]
