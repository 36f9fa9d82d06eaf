"""Postmark's batch API: ``POST {url}/email/batch``, header ``X-Postmark-Server-Token: KEY``.

A batch of up to 500 recipients goes in one request as 500 messages, each addressed to one
reader and carrying their own unsubscribe link, on the ``[mailer] message_stream`` stream.
Postmark answers 200 with one result per message, in order: ``ErrorCode`` 0 is accepted, any
other code is that address refused (an inactive recipient, say) while the rest go out.
Postmark has no idempotency key, so a request in doubt is not repeated blindly.
"""

from __future__ import annotations

from typing import Any

import httpx

from publisher import http
from publisher.config import PostmarkConfig
from publisher.delivery import Envelope, Receipt, personal
from publisher.delivery.base import HttpMailer, require_key
from publisher.errors import DeliveryError


def build(settings: PostmarkConfig) -> PostmarkMailer:
    return PostmarkMailer(settings, require_key(settings, "Postmark needs an API key"))


class PostmarkMailer(HttpMailer[PostmarkConfig]):
    name = "postmark"
    idempotent = False  # no idempotency key: a blind resend may mail twice
    batch_size = 500  # Postmark's limit of messages per batch request

    def send(self, envelope: Envelope) -> Receipt:
        digest = envelope.digest
        messages = [
            {
                "From": digest.sender,
                "To": r.email,
                "Subject": digest.subject,
                "HtmlBody": personal.html(digest, r.unsubscribe_url),
                "TextBody": personal.text(digest, r.unsubscribe_url),
                "MessageStream": self.config.message_stream,
                "Headers": [
                    *(
                        {"Name": name, "Value": value}
                        for name, value in digest.unsubscribe_headers(r.unsubscribe_url).items()
                    ),
                    {"Name": "List-Id", "Value": digest.headers["List-Id"]},
                ],
                "Metadata": {"digest_id": digest.id, "batch_key": envelope.key},
            }
            for r in envelope.recipients
        ]
        url = f"{self.config.url}/email/batch"
        headers = {"X-Postmark-Server-Token": self.key or "", "Accept": "application/json"}
        response = self.with_retries(lambda: self.post(url, json=messages, headers=headers))
        where = f"{self.name}: {http.printable_url(url)}"
        results = _results(response, len(messages))
        if results is None:
            # Postmark took the request but its answer cannot tell who was sent what.
            raise DeliveryError(
                f"{where}: unreadable answer to a batch it accepted", retryable=False, maybe_delivered=True
            )
        accepted: list[str] = []
        rejected: dict[str, str] = {}
        for recipient, result in zip(envelope.recipients, results, strict=True):
            if result.get("ErrorCode") == 0:
                accepted.append(str(result.get("MessageID")))
            else:
                rejected[recipient.email] = self.clean(f"{result.get('ErrorCode')}: {result.get('Message')}")
        if not accepted:
            first = next(iter(rejected.values()))
            raise DeliveryError(f"{where}: Postmark refused every message: {first}", retryable=False)
        detail = f"{len(accepted)} of {len(results)} messages accepted by Postmark"
        if rejected:
            address, why = next(iter(rejected.items()))  # the first; the journal keeps them all
            detail += f"; {len(rejected)} refused: {address}: {why}" + (" ..." if len(rejected) > 1 else "")
        return Receipt(provider_id=accepted[0], detail=self.clean(detail), rejected=rejected)

    def refused(self, where: str, response: httpx.Response, reason: str | None = None) -> DeliveryError:
        if reason is None:
            error = _object(response)
            if error.get("Message"):
                reason = f"{error['Message']} (Postmark error {error.get('ErrorCode')})"
        return super().refused(where, response, reason)


def _results(response: httpx.Response, count: int) -> list[dict[str, Any]] | None:
    """One result object per message sent, or None when the answer is not that."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, list) or len(body) != count or not all(isinstance(r, dict) for r in body):
        return None
    return body


def _object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
