"""The bounce and complaint webhooks of ``publisher serve``: ``POST /webhooks/<provider>``.

A path answers only when its provider is set up ([bounces] and the secret in the environment,
read when the server starts); the others are 404 like any missing file. Each request:

    429   over the per-client limit (a token bucket per provider and client address)
    413   a body over MAX_BODY bytes, refused before it is all read
    403   the signature or secret does not match, or a signed timestamp is stale: nothing read
    400   signed, but not a payload the provider documents
    503   the store cannot be written: the provider retries later
    200   everything else: recorded, a replay, an event about an address not on the list, or
          an event of no interest (a delivery, an open); the same answer for all of them, so
          that nobody learns from it who is on the list
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from publisher import clock, pages
from publisher.bounces import mailgun, postmark, record, resend, sendgrid, ses
from publisher.bounces.events import Forged, MailEvent, Malformed
from publisher.config import Config
from publisher.errors import ConfigError, StoreError
from publisher.ratelimit import Limiter
from publisher.store import Store

MAX_BODY = 1_000_000  # bytes: SendGrid's batches, the largest, stay well under
PER_MINUTE, BURST = 600, 200  # per provider and client: providers send in bursts, from few addresses
_HEADERS = {"Cache-Control": "no-store"}

logger = logging.getLogger(__name__)


class Receiver(Protocol):
    name: str

    def events(self, body: bytes, headers: Mapping[str, str], now: datetime) -> list[MailEvent]: ...


def receivers(config: Config) -> list[Receiver]:
    """The providers set up in [bounces] and the environment; ConfigError for a bad secret."""
    b = config.bounces
    found: list[Receiver] = []
    if b.ses_topics:
        found.append(ses.Ses(b.ses_topics, b.tolerance))
    if key := os.environ.get(b.mailgun_key_env, ""):
        found.append(mailgun.Mailgun(key, b.tolerance))
    if b.sendgrid_public_key:
        try:
            found.append(sendgrid.SendGrid(sendgrid.public_key(b.sendgrid_public_key), b.tolerance))
        except ValueError as exc:
            raise ConfigError(f"{config.path.name}: [bounces] sendgrid_public_key", str(exc)) from None
    if secret := os.environ.get(b.postmark_secret_env, ""):
        if len(secret) < 16:
            raise ConfigError(
                f"{config.path.name}: [bounces] postmark_secret_env",
                f"environment variable {b.postmark_secret_env} is too short (use at least 16 random characters)",
            )
        found.append(postmark.Postmark(secret))
    if secret := os.environ.get(b.resend_secret_env, ""):
        try:
            found.append(resend.Resend(resend.webhook(secret), b.tolerance))
        except ValueError as exc:
            where = f"{config.path.name}: [bounces] resend_secret_env"
            raise ConfigError(where, f"environment variable {b.resend_secret_env}: {exc}") from None
    return found


def routes(config: Config, store: Store, limiter: Limiter | None = None) -> list[Route]:
    """One POST route per provider set up."""
    limits = limiter or Limiter(PER_MINUTE, BURST)
    return [
        Route(f"/webhooks/{receiver.name}", _endpoint(config, store, receiver, limits), methods=["POST"])
        for receiver in receivers(config)
    ]


def _endpoint(
    config: Config, store: Store, receiver: Receiver, limits: Limiter
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        client = request.client.host if request.client else "-"
        if not limits.allow(f"{receiver.name} {client}"):
            return _answer(429, "too many requests")
        body = await pages.body(request, MAX_BODY)
        if body is None:
            return _answer(413, "too large")
        headers = {name.lower(): value for name, value in request.headers.items()}
        now = clock.now()
        try:
            events = await run_in_threadpool(receiver.events, body, headers, now)
        except Forged as exc:
            logger.warning("bounces: %s webhook refused from %s: %s", receiver.name, client, exc)
            return _answer(403, "forbidden")
        except Malformed as exc:
            logger.warning("bounces: %s webhook: unreadable payload: %s", receiver.name, exc)
            return _answer(400, "bad request")
        try:
            await run_in_threadpool(record.record, store, events, config.bounces, now)
        except StoreError as exc:
            logger.error("bounces: %s webhook: %s", receiver.name, exc)
            return _answer(503, "unavailable")
        return _answer(200, "ok")

    return endpoint


def _answer(status: int, text: str) -> Response:
    return PlainTextResponse(text, status_code=status, headers=_HEADERS)
