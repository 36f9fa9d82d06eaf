"""Resend's webhooks, signed by Svix (the Standard Webhooks scheme).

``svix-id``, ``svix-timestamp`` and ``svix-signature`` (or their ``webhook-`` names): the
signature is an HMAC-SHA256 of ``id.timestamp.body`` under the ``whsec_...`` secret in
[bounces] resend_secret_env. The ``standardwebhooks`` library computes it; the timestamp is
checked here against publisher's clock (the library's own check reads the system time).
Events: ``email.bounced`` (``data.bounce.type`` ``Transient`` is soft, the rest hard) and
``email.complained``, for each address in ``data.to``. Resend echoes no id publisher sent,
so an event is tied to the newest batch that carried the address.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timedelta

from standardwebhooks.webhooks import Webhook

from publisher.bounces.events import Forged, MailEvent, Malformed, array, fresh, from_iso, from_unix, obj, text
from publisher.states import MailEventKind

NAME = "resend"


def webhook(secret: str) -> Webhook:
    """The verifier for a ``whsec_...`` secret, or ValueError when it is not one."""
    try:
        return Webhook(secret)
    except Exception:  # binascii.Error, the library's EmptyWebhookSecretError
        raise ValueError("not a Svix signing secret (whsec_...)") from None


class Resend:
    name = NAME

    def __init__(self, verifier: Webhook, tolerance: timedelta) -> None:
        self.verifier = verifier
        self.tolerance = tolerance

    def events(self, body: bytes, headers: Mapping[str, str], now: datetime) -> list[MailEvent]:
        msg_id = headers.get("svix-id") or headers.get("webhook-id") or ""
        stamp = headers.get("svix-timestamp") or headers.get("webhook-timestamp") or ""
        given = headers.get("svix-signature") or headers.get("webhook-signature") or ""
        if not msg_id or not given:
            raise Forged("no Svix signature headers")
        when = from_unix(stamp)
        try:
            expected = base64.b64decode(self.verifier.sign(msg_id, when, body.decode("utf-8")).partition(",")[2])
        except UnicodeDecodeError:
            raise Forged("body is not UTF-8") from None
        if not any(_matches(expected, part) for part in given.split()):
            raise Forged("Svix signature does not match")
        fresh(when, now, self.tolerance)
        try:
            payload = json.loads(body)
        except ValueError:
            raise Malformed("not JSON") from None
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            raise Malformed("no data object")
        kind = _kind(payload.get("type"), data)
        if kind is None:
            return []
        recipients = array(data.get("to"))
        bounce = obj(data.get("bounce"))
        return [
            MailEvent(
                provider=NAME,
                event_id=msg_id,
                kind=kind,
                address=address,
                occurred_at=from_iso(payload.get("created_at"), now),
                detail=text(bounce.get("message")),
            )
            for address in recipients
            if isinstance(address, str)
        ]


def _matches(expected: bytes, versioned: str) -> bool:
    version, _, signature = versioned.partition(",")
    if version != "v1":
        return False
    try:
        return hmac.compare_digest(expected, base64.b64decode(signature, validate=True))
    except (ValueError, binascii.Error):
        return False


def _kind(event: object, data: dict[str, object]) -> MailEventKind | None:
    if event == "email.complained":
        return MailEventKind.COMPLAINT
    if event == "email.bounced":
        bounce = obj(data.get("bounce"))
        transient = isinstance(bounce, dict) and bounce.get("type") == "Transient"
        return MailEventKind.SOFT_BOUNCE if transient else MailEventKind.HARD_BOUNCE
    return None
