"""Resend's batch API: ``POST {url}/emails/batch``, ``Authorization: Bearer KEY``.

A batch of up to 100 recipients goes in one request as 100 emails, each addressed to one
reader with their own unsubscribe link. The batch key goes as ``Idempotency-Key``: Resend
answers a repeat of the same request with the first answer and sends nothing again, so a
request in doubt may simply be repeated.
"""

from __future__ import annotations

import httpx

from publisher.config import ResendConfig
from publisher.delivery import Envelope, Receipt, personal
from publisher.delivery.base import HttpMailer, json_field, require_key
from publisher.errors import DeliveryError

# The first request with this key is still being processed: asking again later is safe.
_STILL_RUNNING = "concurrent_idempotent_requests"


def build(settings: ResendConfig) -> ResendMailer:
    return ResendMailer(settings, require_key(settings, "Resend needs an API key"))


class ResendMailer(HttpMailer[ResendConfig]):
    name = "resend"
    idempotent = True  # Resend dedupes on the Idempotency-Key for 24 hours
    batch_size = 100  # Resend's limit of emails per batch request

    def send(self, envelope: Envelope) -> Receipt:
        digest = envelope.digest
        emails = [
            {
                "from": digest.sender,
                "to": [r.email],
                "subject": digest.subject,
                "html": personal.html(digest, r.unsubscribe_url),
                "text": personal.text(digest, r.unsubscribe_url),
                "headers": {**digest.unsubscribe_headers(r.unsubscribe_url), "List-Id": digest.headers["List-Id"]},
            }
            for r in envelope.recipients
        ]
        url = f"{self.config.url}/emails/batch"
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": envelope.key}
        response = self.with_retries(lambda: self.post(url, json=emails, headers=headers))
        ids = _ids(response)
        first = ids[0] if ids else None
        count = f"{len(emails)} {'email' if len(emails) == 1 else 'emails'}"
        return Receipt(provider_id=first, detail=f"{count} queued by Resend (first id {first})")

    def refused(self, where: str, response: httpx.Response, reason: str | None = None) -> DeliveryError:
        name = json_field(response, "name")
        if reason is None and name:
            reason = f"{name}: {json_field(response, 'message') or response.reason_phrase}"
        error = super().refused(where, response, reason)
        if name == _STILL_RUNNING:
            error.retryable = True
        return error


def _ids(response: httpx.Response) -> list[str]:
    try:
        data = response.json()["data"]
        return [str(item["id"]) for item in data]
    except (ValueError, KeyError, TypeError):
        return []
