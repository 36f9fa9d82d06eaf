"""Amazon SES (API v2): ``POST {url}/v2/email/outbound-emails``, signed with AWS Signature V4.

Each reader gets their own copy (batch_size 1): the whole MIME message from
:func:`publisher.delivery.personal.message`, To them alone with their own unsubscribe link,
sent as ``Content.Raw``. The batch key goes along as an email tag, so SES event records
(bounces, complaints) can be matched to the journal. SES has no idempotency key: a request
that may have arrived is not repeated (``idempotent = False``).

Credentials come from the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
optional AWS_SESSION_TOKEN), not from ``[mailer] api_key_env``; the signing is httpx-auth's.
"""

from __future__ import annotations

import base64
import os
import re
from email.utils import parseaddr

import httpx
from httpx_auth import AWS4Auth

from publisher import http
from publisher.config import SesConfig
from publisher.delivery import Envelope, Receipt, Recipient, personal
from publisher.delivery.base import HttpMailer, json_field
from publisher.errors import ConfigError, DeliveryError

# SES's own error types that mean "later": throttling and sending-rate/quota limits.
RETRYABLE_TYPES = ("TooManyRequestsException", "LimitExceededException", "ThrottlingException")
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")  # SES allows only these in tag names and values


def build(settings: SesConfig) -> SesMailer:
    def required(name: str) -> str:
        value = os.environ.get(name)
        if not value:
            raise ConfigError(
                settings.where("provider"),
                f"environment variable {name} is not set (SES requests are signed with AWS credentials)",
            )
        return value

    access_key, secret_key = required("AWS_ACCESS_KEY_ID"), required("AWS_SECRET_ACCESS_KEY")
    return SesMailer(settings, access_key, secret_key, os.environ.get("AWS_SESSION_TOKEN") or None)


class SesMailer(HttpMailer[SesConfig]):
    name = "ses"
    idempotent = False  # SES has no idempotency key: a blind resend may mail twice
    batch_size = 1  # one reader per request: each copy is personal

    def __init__(self, config: SesConfig, access_key: str, secret_key: str, session_token: str | None) -> None:
        super().__init__(config, None)
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token

    def secrets(self) -> list[str]:
        # The Authorization header carries only the key id and a signature, but an endpoint
        # echoing the request must not leak either secret.
        return [self.secret_key, *([self.session_token] if self.session_token else []), *super().secrets()]

    def send(self, envelope: Envelope) -> Receipt:
        if not envelope.recipients:  # an empty local list
            return Receipt(provider_id=None, detail="no recipients")
        ids = [self._send_one(envelope, recipient) for recipient in envelope.recipients]
        return Receipt(provider_id=ids[-1], detail=f"accepted by SES as {', '.join(i or '?' for i in ids)}")

    def _send_one(self, envelope: Envelope, recipient: Recipient) -> str | None:
        tags = [{"Name": "batch", "Value": _tag(envelope.key)}]
        if envelope.test:
            tags.append({"Name": "test", "Value": "true"})
        payload = {
            # The bare address: the display name travels in the message's own From header,
            # RFC 2047-encoded when it needs to be, which this JSON field would not be.
            "FromEmailAddress": parseaddr(envelope.digest.sender)[1],
            "Destination": {"ToAddresses": [recipient.email]},
            "Content": {"Raw": {"Data": base64.b64encode(personal.message(envelope, recipient)).decode("ascii")}},
            "EmailTags": tags,
        }
        auth = AWS4Auth(self.access_key, self.secret_key, self.config.region, "ses", security_token=self.session_token)
        url = f"{self.config.url}/v2/email/outbound-emails"
        response = self.with_retries(lambda: self.post(url, json=payload, auth=auth))
        return json_field(response, "MessageId")

    def refused(self, where: str, response: httpx.Response, reason: str | None = None) -> DeliveryError:
        """SES's error type and message; throttling and limit errors are worth a later try."""
        kind = _error_type(response)
        message = reason if reason is not None else _error_message(response)
        error = super().refused(where, response, f"{kind}: {message}" if kind else message)
        if kind in RETRYABLE_TYPES and not error.retryable:
            error.retryable = True
            error.retry_after = http.retry_after(response)
        return error


def _error_type(response: httpx.Response) -> str:
    """``MessageRejected`` from ``x-amzn-ErrorType: MessageRejected:http://...`` or the body's ``__type``."""
    kind = response.headers.get("x-amzn-ErrorType", "")
    if not kind:
        try:
            body = response.json()
        except ValueError:
            body = None
        kind = str(body.get("__type", "")) if isinstance(body, dict) else ""
    # AWS may append a namespace after ':' or give a qualified name ending in '#Type'.
    return str(kind).split(":", 1)[0].rsplit("#", 1)[-1].strip()


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    if isinstance(body, dict):
        text = body.get("message") or body.get("Message")
        if text:
            return str(text)
    return http.error_text(response)


def _tag(value: str) -> str:
    return _TAG_UNSAFE.sub("_", value)[:256]
