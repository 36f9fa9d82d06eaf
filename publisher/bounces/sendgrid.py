"""SendGrid's Signed Event Webhook: a JSON array of events, signed with ECDSA P-256.

``X-Twilio-Email-Event-Webhook-Signature`` is the base64 DER signature (SHA-256) of the
``X-Twilio-Email-Event-Webhook-Timestamp`` value followed by the raw body; the verification
key (public, shown in SendGrid's settings) is [bounces] sendgrid_public_key. Events: ``bounce``
(``type`` ``blocked`` is a soft bounce, ``bounce`` a hard one), ``dropped`` for a bounced or
invalid address, and ``spamreport``. Each has its ``sg_event_id``; the custom args publisher
sent (``digest_id``, ``batch_key``) come back as fields of the event.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from publisher.bounces.events import Forged, MailEvent, Malformed, fresh, from_unix, text
from publisher.states import MailEventKind

NAME = "sendgrid"
SIGNATURE = "x-twilio-email-event-webhook-signature"
TIMESTAMP = "x-twilio-email-event-webhook-timestamp"
_DROPPED_AS_BOUNCE = ("Bounced Address", "Invalid", "Invalid SMTPAPI header")


def public_key(value: str) -> ec.EllipticCurvePublicKey:
    """The verification key SendGrid shows (base64 DER), or ValueError saying what is wrong."""
    try:
        key = serialization.load_der_public_key(base64.b64decode(value, validate=True))
    except (ValueError, binascii.Error):
        raise ValueError("not a base64 public key as SendGrid shows it") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not an ECDSA P-256 key")
    return key


class SendGrid:
    name = NAME

    def __init__(self, key: ec.EllipticCurvePublicKey, tolerance: timedelta) -> None:
        self.key = key
        self.tolerance = tolerance

    def events(self, body: bytes, headers: Mapping[str, str], now: datetime) -> list[MailEvent]:
        timestamp, signature = headers.get(TIMESTAMP, ""), headers.get(SIGNATURE, "")
        try:
            raw = base64.b64decode(signature, validate=True)
            self.key.verify(raw, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError, binascii.Error):
            raise Forged("SendGrid signature does not match") from None
        fresh(from_unix(timestamp), now, self.tolerance)
        try:
            items = json.loads(body)
        except ValueError:
            raise Malformed("not JSON") from None
        if not isinstance(items, list):
            raise Malformed("not a JSON array of events")
        found = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("email"), str):
                continue
            kind = _kind(item)
            if kind is None or not isinstance(item.get("sg_event_id"), str):
                continue
            found.append(
                MailEvent(
                    provider=NAME,
                    event_id=item["sg_event_id"],
                    kind=kind,
                    address=item["email"],
                    occurred_at=from_unix(item.get("timestamp", timestamp)),
                    digest_id=text(item.get("digest_id")),
                    batch_key=text(item.get("batch_key")),
                    detail=text(item.get("reason")),
                )
            )
        return found


def _kind(item: dict[str, object]) -> MailEventKind | None:
    event = item.get("event")
    if event == "spamreport":
        return MailEventKind.COMPLAINT
    if event == "bounce":
        return MailEventKind.SOFT_BOUNCE if item.get("type") == "blocked" else MailEventKind.HARD_BOUNCE
    if event == "dropped" and item.get("reason") in _DROPPED_AS_BOUNCE:
        return MailEventKind.HARD_BOUNCE
    return None
