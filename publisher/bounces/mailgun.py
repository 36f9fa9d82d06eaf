"""Mailgun's webhooks: a JSON body ``{"signature": {...}, "event-data": {...}}``.

The signature is the hex HMAC-SHA256 of ``timestamp + token`` under the account's webhook
signing key, inside the body. Events: ``failed`` with ``severity`` ``permanent`` (a hard
bounce) or ``temporary`` (a soft one), and ``complained``. The token is the event's id:
Mailgun's own ``event-data.id`` is only unique within a day. The digest and batch come back
as the user variables publisher sent (``v:digest-id``, ``v:batch-key``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timedelta

from publisher.bounces.events import Forged, MailEvent, Malformed, fresh, from_unix, obj, text
from publisher.states import MailEventKind

NAME = "mailgun"


class Mailgun:
    name = NAME

    def __init__(self, signing_key: str, tolerance: timedelta) -> None:
        self.key = signing_key.encode()
        self.tolerance = tolerance

    def events(self, body: bytes, headers: Mapping[str, str], now: datetime) -> list[MailEvent]:
        try:
            payload = json.loads(body)
            signature = payload["signature"]
            timestamp, token, given = str(signature["timestamp"]), str(signature["token"]), str(signature["signature"])
        except (ValueError, TypeError, KeyError):
            raise Forged("no Mailgun signature in the body") from None
        expected = hmac.new(self.key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given.encode("ascii", "replace").decode()):
            raise Forged("Mailgun signature does not match")
        fresh(from_unix(timestamp), now, self.tolerance)
        data = payload.get("event-data")
        if not isinstance(data, dict) or not isinstance(data.get("recipient"), str):
            raise Malformed("no event-data with a recipient")
        kind = _kind(data)
        if kind is None:
            return []
        variables = obj(data.get("user-variables"))
        status = obj(data.get("delivery-status"))
        return [
            MailEvent(
                provider=NAME,
                event_id=token,
                kind=kind,
                address=data["recipient"],
                occurred_at=from_unix(data.get("timestamp", timestamp)),
                digest_id=text(variables.get("digest-id")),
                batch_key=text(variables.get("batch-key")),
                detail=text(status.get("description")) or text(status.get("message")) or text(data.get("reason")),
            )
        ]


def _kind(data: dict[str, object]) -> MailEventKind | None:
    event = data.get("event")
    if event == "complained":
        return MailEventKind.COMPLAINT
    if event == "failed":
        return MailEventKind.HARD_BOUNCE if data.get("severity") == "permanent" else MailEventKind.SOFT_BOUNCE
    return None  # delivered, opened, ...: not the list's business here
