"""Tell WebSub hubs that a feed changed (W3C WebSub Recommendation, section "Publishing").

After the feed writer reports which documents changed, :func:`notify` sends every configured
hub one ``POST hub.mode=publish&hub.url=<topic>`` (form-encoded) per changed topic. Hubs answer
2xx (usually 204 or 202). Connection errors, timeouts, 408/425/429 and 5xx are retried with
exponential backoff and jitter, or after the hub's own ``Retry-After`` (capped); any other
answer is final. Each ping ends in a :class:`PingResult`; nothing here raises for a failed one,
and one failing hub or topic never stops the others.

Hub URLs may carry a token (``user:pass@`` or a query string): it is sent to the hub but never
appears in a result, not even when the hub echoes it back in an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from publisher import http


@dataclass(frozen=True)
class PingResult:
    hub: str  # the hub URL without credentials or query string: safe to print
    topic: str
    ok: bool
    message: str  # one line for the operator
    retry: bool = False  # failed for a passing reason (timeout, 5xx...): worth trying next run


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

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


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
        response = client.post(hub, data={"hub.mode": "publish", "hub.url": topic})
    except httpx.TimeoutException as exc:
        raise _Failed(f"no answer within {timeout:g}s", retryable=True) from exc
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
