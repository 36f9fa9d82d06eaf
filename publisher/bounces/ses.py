"""Amazon SES bounce and complaint notifications, delivered by an SNS topic over HTTPS.

Every SNS message is signed with the key of a certificate SNS publishes: ``SigningCertURL``
must be an https URL on ``sns.<region>.amazonaws.com`` (any other host is refused before it
is fetched), and the signature (``SignatureVersion`` 1: SHA1, 2: SHA256, PKCS#1 v1.5) covers
the message's fields in the order AWS documents. Only the topics in [bounces] ses_topics are
taken: any AWS account can sign a message for a topic of its own.

A ``SubscriptionConfirmation`` is confirmed by fetching its ``SubscribeURL`` (checked the same
way). A ``Notification`` carries the SES record in ``Message``: ``notificationType`` (or
``eventType``, for a configuration set's event publishing) ``Bounce`` with ``bounceType``
``Permanent`` (hard) or ``Transient`` (soft), or ``Complaint``. The batch comes back as the
``batch`` tag publisher sent; the SNS ``MessageId`` is the event's id. ``fetch`` (a URL to its
bytes) is a module attribute so that tests can stand in for AWS.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from publisher import http
from publisher.bounces.events import Forged, MailEvent, Malformed, fresh, from_iso, obj, text
from publisher.states import MailEventKind

NAME = "ses"
_SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
_MAX_FETCH = 64_000  # a certificate is a few KB; a confirmation answer less
# The fields each message type signs, in this order (a missing optional one is left out).
_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


def _fetch(url: str) -> bytes:
    """GET an SNS URL (already checked): the bytes, or Forged when it cannot be had."""
    try:
        with httpx.Client(timeout=10, follow_redirects=False, headers={"User-Agent": http.USER_AGENT}) as client:
            response = client.get(url)
    except httpx.HTTPError as exc:
        raise Forged(f"cannot fetch {http.printable_url(url)}: {type(exc).__name__}") from None
    if not response.is_success or len(response.content) > _MAX_FETCH:
        raise Forged(f"{http.printable_url(url)} answered HTTP {response.status_code}")
    return response.content


fetch: Callable[[str], bytes] = _fetch


def sns_url(url: object) -> str:
    """``url`` when it is an https URL on an SNS host; Forged otherwise."""
    parts = urlsplit(url if isinstance(url, str) else "")
    if parts.scheme != "https" or parts.username or parts.port or not _SNS_HOST.fullmatch(parts.hostname or ""):
        raise Forged("not an SNS URL")
    return str(url)


class Ses:
    name = NAME

    def __init__(self, topics: tuple[str, ...], tolerance: timedelta) -> None:
        self.topics = frozenset(topics)
        self.tolerance = tolerance

    def events(self, body: bytes, headers: Mapping[str, str], now: datetime) -> list[MailEvent]:
        try:
            message = json.loads(body)
        except ValueError:
            raise Forged("not an SNS message") from None
        if not isinstance(message, dict) or not all(isinstance(v, str) for v in message.values()):
            raise Forged("not an SNS message")
        verify(message)
        if message.get("TopicArn") not in self.topics:
            raise Forged("a topic not in [bounces] ses_topics")
        fresh(from_iso(message.get("Timestamp"), datetime.min.replace(tzinfo=now.tzinfo)), now, self.tolerance)
        if message["Type"] == "SubscriptionConfirmation":
            fetch(sns_url(message.get("SubscribeURL")))
            return []
        if message["Type"] != "Notification":
            return []
        try:
            record = json.loads(message.get("Message", ""))
        except ValueError:
            raise Malformed("Message is not an SES record") from None
        if not isinstance(record, dict):
            raise Malformed("Message is not an SES record")
        return _events(message["MessageId"], record, now)


def verify(message: dict[str, str]) -> None:
    """Raise Forged unless ``message`` carries a valid SNS signature (see the module docstring)."""
    fields = _SIGNED.get(message.get("Type", ""))
    algorithm = _HASHES.get(message.get("SignatureVersion", ""))
    if fields is None or algorithm is None or "MessageId" not in message:
        raise Forged("not a signed SNS message")
    signed = "".join(f"{name}\n{message[name]}\n" for name in fields if name in message).encode()
    key = _certificate(sns_url(message.get("SigningCertURL"))).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Forged("the signing certificate has no RSA key")
    try:
        raw = base64.b64decode(message.get("Signature", ""), validate=True)
        key.verify(raw, signed, padding.PKCS1v15(), algorithm())
    except (InvalidSignature, ValueError, binascii.Error):
        raise Forged("SNS signature does not match") from None


@functools.lru_cache(maxsize=16)
def _certificate(url: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(fetch(url))
    except ValueError:
        raise Forged("the signing certificate cannot be read") from None


def _events(message_id: str, record: dict[str, Any], now: datetime) -> list[MailEvent]:
    kind_name = record.get("notificationType") or record.get("eventType")
    mail = obj(record.get("mail"))
    tags = obj(mail.get("tags"))
    batch = tags.get("batch")
    batch_key = text(batch[0]) if isinstance(batch, list) and batch else None
    if kind_name == "Bounce" and isinstance(record.get("bounce"), dict):
        part = record["bounce"]
        hard = part.get("bounceType") == "Permanent"
        kind = MailEventKind.HARD_BOUNCE if hard else MailEventKind.SOFT_BOUNCE
        people = part.get("bouncedRecipients")
    elif kind_name == "Complaint" and isinstance(record.get("complaint"), dict):
        part = record["complaint"]
        kind = MailEventKind.COMPLAINT
        people = part.get("complainedRecipients")
    else:
        return []  # deliveries, opens...
    found = []
    for person in people if isinstance(people, list) else []:
        if not isinstance(person, dict) or not isinstance(person.get("emailAddress"), str):
            continue
        found.append(
            MailEvent(
                provider=NAME,
                event_id=message_id,
                kind=kind,
                address=person["emailAddress"],
                occurred_at=from_iso(part.get("timestamp"), now),
                batch_key=batch_key,
                detail=text(person.get("diagnosticCode")) or text(part.get("bounceSubType")),
            )
        )
    return found
