"""`publisher subscribers sync-suppressions`: a provider's own suppression list, applied here.

A provider stops mailing an address it saw bounce or complain, whatever publisher asks; its
list also holds what happened before the webhooks were set up, or while they were down. Each
address on it that is still active on the local list is suppressed here too (bounced or
complained), with an event noting where that came from. The request goes through the
provider's mailer (publisher.delivery), so its key, errors and retries are the sending ones.

    postmark   GET /message-streams/{message_stream}/suppressions/dump (HardBounce, SpamComplaint;
               a ManualSuppression is a reader's own unsubscribe there, left alone)
    sendgrid   GET /v3/suppression/bounces, /invalid_emails, /spam_reports, 500 at a time
    mailgun    GET /v3/{domain}/bounces, /complaints, following ``paging.next`` on the same host
    ses        GET /v2/email/suppression/addresses (BOUNCE, COMPLAINT), following NextToken
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from publisher import subscribers
from publisher.bounces.events import array, from_iso, obj
from publisher.config import Config
from publisher.delivery import build_mailer
from publisher.delivery.base import HttpMailer
from publisher.errors import ConfigError, DeliveryError
from publisher.states import MailEventKind
from publisher.store import Store, suppressions

Listed = tuple[str, MailEventKind, datetime]  # an address, why, since when
SUPPORTED = ("postmark", "sendgrid", "mailgun", "ses")
_PAGE = 500
_MAX_PAGES = 10_000  # a provider that pages for ever must not keep the command running for ever


@dataclass(frozen=True)
class SyncResult:
    provider: str
    listed: int  # addresses on the provider's list (of the kinds taken)
    suppressed: int  # of them, active here until now


def sync(config: Config, store: Store, now: datetime) -> SyncResult:
    provider = config.mailer.provider
    if provider not in SUPPORTED:
        raise ConfigError(
            f"{config.path.name}: [mailer] provider",
            f"{provider} has no suppression list publisher can read (it can: {', '.join(SUPPORTED)})",
        )
    mailer = build_mailer(config)
    assert isinstance(mailer, HttpMailer)  # every provider in SUPPORTED is one
    reader: Callable[[HttpMailer[Any], datetime], Iterator[Listed]] = _READERS[provider]
    try:
        listed = list(reader(mailer, now))
    finally:
        mailer.close()
    suppressed = 0
    with store.transaction() as conn:
        for address, kind, when in listed:
            email_key = subscribers.key(address)
            if suppressions.suppress_listed(
                conn, provider=provider, email_key=email_key, kind=kind, occurred_at=when, now=now
            ):
                suppressed += 1
    return SyncResult(provider, len(listed), suppressed)


def _get(mailer: HttpMailer[Any], url: str, **kwargs: Any) -> Any:
    response = mailer.with_retries(lambda: mailer.request("GET", url, **kwargs))
    try:
        return response.json()
    except ValueError:
        raise DeliveryError(f"{mailer.name}: {url}: the suppression list is not JSON", retryable=False) from None


def _postmark(mailer: HttpMailer[Any], now: datetime) -> Iterator[Listed]:
    url = f"{mailer.config.url}/message-streams/{mailer.config.message_stream}/suppressions/dump"
    headers = {"X-Postmark-Server-Token": mailer.key or "", "Accept": "application/json"}
    kinds = {"HardBounce": MailEventKind.HARD_BOUNCE, "SpamComplaint": MailEventKind.COMPLAINT}
    for item in array(obj(_get(mailer, url, headers=headers)).get("Suppressions")):
        entry = obj(item)
        kind = kinds.get(entry.get("SuppressionReason", ""))
        if kind is not None and isinstance(entry.get("EmailAddress"), str):
            yield entry["EmailAddress"], kind, from_iso(entry.get("CreatedAt"), now)


def _sendgrid(mailer: HttpMailer[Any], now: datetime) -> Iterator[Listed]:
    headers = {"Authorization": f"Bearer {mailer.key}", "Accept": "application/json"}
    lists = (
        ("bounces", MailEventKind.HARD_BOUNCE),
        ("invalid_emails", MailEventKind.HARD_BOUNCE),
        ("spam_reports", MailEventKind.COMPLAINT),
    )
    for name, kind in lists:
        for page in range(_MAX_PAGES):
            url = f"{mailer.config.url}/v3/suppression/{name}"
            items = array(_get(mailer, url, headers=headers, params={"limit": _PAGE, "offset": page * _PAGE}))
            for item in items:
                entry = obj(item)
                if isinstance(entry.get("email"), str):
                    yield entry["email"], kind, _unix(entry.get("created"), now)
            if len(items) < _PAGE:
                break


def _mailgun(mailer: HttpMailer[Any], now: datetime) -> Iterator[Listed]:
    base = f"{mailer.config.url}/v3/{mailer.config.domain}"
    auth = httpx.BasicAuth("api", mailer.key or "")
    for name, kind in (("bounces", MailEventKind.HARD_BOUNCE), ("complaints", MailEventKind.COMPLAINT)):
        url: str | None = f"{base}/{name}?limit=1000"
        for _ in range(_MAX_PAGES):
            if url is None:
                break
            page = obj(_get(mailer, url, auth=auth))
            items = array(page.get("items"))
            for item in items:
                entry = obj(item)
                if isinstance(entry.get("address"), str):
                    yield entry["address"], kind, _rfc2822(entry.get("created_at"), now)
            following = obj(page.get("paging")).get("next")
            # Only on the API's own host: the key goes with every request.
            url = following if items and isinstance(following, str) and following.startswith(base + "/") else None


def _ses(mailer: HttpMailer[Any], now: datetime) -> Iterator[Listed]:
    from httpx_auth import AWS4Auth

    from publisher.delivery.ses import SesMailer

    assert isinstance(mailer, SesMailer)
    kinds = {"BOUNCE": MailEventKind.HARD_BOUNCE, "COMPLAINT": MailEventKind.COMPLAINT}
    token: str | None = None
    for _ in range(_MAX_PAGES):
        params = {"PageSize": "1000", **({"NextToken": token} if token else {})}
        auth = AWS4Auth(mailer.access_key, mailer.secret_key, mailer.config.region, "ses",
                        security_token=mailer.session_token)  # fmt: skip
        page = obj(_get(mailer, f"{mailer.config.url}/v2/email/suppression/addresses", params=params, auth=auth))
        for item in array(page.get("SuppressedDestinationSummaries")):
            entry = obj(item)
            kind = kinds.get(entry.get("Reason", ""))
            if kind is not None and isinstance(entry.get("EmailAddress"), str):
                yield entry["EmailAddress"], kind, _unix(entry.get("LastUpdateTime"), now)
        next_token = page.get("NextToken")
        if not isinstance(next_token, str) or not next_token:
            break
        token = next_token


def _unix(value: object, default: datetime) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=default.tzinfo)
        except (OverflowError, OSError, ValueError):
            return default
    return from_iso(value, default)


def _rfc2822(value: object, default: datetime) -> datetime:
    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return default
    return when if when.tzinfo is not None else when.replace(tzinfo=default.tzinfo)


_READERS: dict[str, Callable[[HttpMailer[Any], datetime], Iterator[Listed]]] = {
    "postmark": _postmark,
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "ses": _ses,
}
