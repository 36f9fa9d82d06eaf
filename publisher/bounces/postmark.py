"""Postmark's bounce and spam complaint webhooks: one JSON record per request.

Postmark signs nothing; it offers HTTP basic auth in the webhook URL
(``https://postmark:SECRET@news.example.org/webhooks/postmark``) and custom headers. The
password of the basic auth, or the header ``X-Webhook-Secret``, must be the secret in
[bounces] postmark_secret_env, compared in constant time. Postmark sends no signed time, so
a replay is caught by the record's ``ID`` alone (kept for good). Records: ``RecordType``
``Bounce`` (``Type`` tells hard from soft; auto-replies and the like are not bounces) and
``SpamComplaint``. The digest and batch come back in ``Metadata``, as publisher sent them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime

from publisher.bounces.events import Forged, MailEvent, Malformed, from_iso, obj, same, text
from publisher.states import MailEventKind

NAME = "postmark"
HEADER = "x-webhook-secret"
_HARD = ("HardBounce", "BadEmailAddress", "ManuallyDeactivated", "SpamNotification", "Blocked", "DMARCPolicy")
_SOFT = ("SoftBounce", "Transient", "DnsError", "Unknown")


class Postmark:
    name = NAME

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def events(self, body: bytes, headers: Mapping[str, str], now: datetime) -> list[MailEvent]:
        if not same(self.secret, _given(headers)):
            raise Forged("Postmark webhook secret does not match")
        try:
            record = json.loads(body)
        except ValueError:
            raise Malformed("not JSON") from None
        if not isinstance(record, dict) or not isinstance(record.get("Email"), str) or "ID" not in record:
            raise Malformed("not a Postmark bounce or spam complaint record")
        kind = _kind(record)
        if kind is None:
            return []
        metadata = obj(record.get("Metadata"))
        return [
            MailEvent(
                provider=NAME,
                event_id=f"{record.get('RecordType')}:{record['ID']}",
                kind=kind,
                address=record["Email"],
                occurred_at=from_iso(record.get("BouncedAt"), now),
                digest_id=text(metadata.get("digest_id")),
                batch_key=text(metadata.get("batch_key")),
                detail=text(record.get("Description")) or text(record.get("Details")),
            )
        ]


def _given(headers: Mapping[str, str]) -> str:
    """The secret the request carries: the basic-auth password, else the header."""
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")[2]
        except (ValueError, binascii.Error):
            return ""
    return headers.get(HEADER, "")


def _kind(record: dict[str, object]) -> MailEventKind | None:
    if record.get("RecordType") == "SpamComplaint" or record.get("Type") == "SpamComplaint":
        return MailEventKind.COMPLAINT
    if record.get("RecordType") != "Bounce":
        return None
    if record.get("Type") in _HARD:
        return MailEventKind.HARD_BOUNCE
    if record.get("Type") in _SOFT:
        return MailEventKind.SOFT_BOUNCE
    return None  # AutoResponder, AddressChange, Subscribe...: the reader is still there
