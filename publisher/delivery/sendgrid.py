"""SendGrid's v3 mail send API: ``POST {url}/v3/mail/send``, ``Authorization: Bearer KEY``.

A batch of up to 1,000 recipients goes in one request, one personalization each, so that
SendGrid sends every reader a copy addressed to them alone. The body carries the tag
``-unsubscribe_url-`` where the reader's link goes; each personalization substitutes its own
link for it and sets its own ``List-Unsubscribe``. SendGrid answers 202 with the message id
in ``X-Message-Id``; it has no idempotency key, so a request in doubt is not repeated blindly.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

import httpx
from markupsafe import escape

from publisher.config import SendgridConfig
from publisher.delivery import Envelope, Receipt
from publisher.delivery.base import HttpMailer, require_key
from publisher.errors import DeliveryError

UNSUBSCRIBE_TAG = "-unsubscribe_url-"
UNSUBSCRIBE_HTML_TAG = "-unsubscribe_url_html-"  # the link escaped for HTML (& -> &amp;)


def build(settings: SendgridConfig) -> SendGridMailer:
    return SendGridMailer(settings, require_key(settings, "SendGrid needs an API key"))


class SendGridMailer(HttpMailer[SendgridConfig]):
    name = "sendgrid"
    idempotent = False  # no idempotency key: a blind resend may mail twice
    batch_size = 1000  # SendGrid's limit of personalizations per request

    def send(self, envelope: Envelope) -> Receipt:
        digest = envelope.digest
        name, address = parseaddr(digest.sender)
        payload: dict[str, Any] = {
            "personalizations": [
                {
                    "to": [{"email": r.email}],
                    "substitutions": {
                        UNSUBSCRIBE_TAG: r.unsubscribe_url,
                        UNSUBSCRIBE_HTML_TAG: str(escape(r.unsubscribe_url)),
                    },
                    "headers": {"List-Unsubscribe": digest.unsubscribe_headers(r.unsubscribe_url)["List-Unsubscribe"]},
                }
                for r in envelope.recipients
            ],
            "from": {"email": address, "name": name} if name else {"email": address},
            "subject": digest.subject,
            # SendGrid wants text/plain before text/html.
            "content": [
                {"type": "text/plain", "value": digest.personal(digest.text, UNSUBSCRIBE_TAG)},
                {"type": "text/html", "value": digest.personal(digest.html, UNSUBSCRIBE_HTML_TAG)},
            ],
            "headers": {h: digest.headers[h] for h in ("List-Unsubscribe-Post", "List-Id") if h in digest.headers},
            "custom_args": {"digest_id": digest.id, "batch_key": envelope.key},
        }
        url = f"{self.config.url}/v3/mail/send"
        headers = {"Authorization": f"Bearer {self.key}"}
        response = self.with_retries(lambda: self.post(url, json=payload, headers=headers))
        provider_id = response.headers.get("X-Message-Id")
        return Receipt(provider_id=provider_id, detail=f"queued by SendGrid as {provider_id}")

    def refused(self, where: str, response: httpx.Response, reason: str | None = None) -> DeliveryError:
        return super().refused(where, response, reason if reason is not None else _errors(response))


def _errors(response: httpx.Response) -> str | None:
    """SendGrid's ``{"errors": [{"message", "field", "help"}]}`` as one line; None if it is not that."""
    try:
        errors = response.json()["errors"]
        texts = [
            f"{e['message']} (field {e['field']})" if e.get("field") else str(e["message"])
            for e in errors
            if isinstance(e, dict) and e.get("message")
        ]
    except (ValueError, KeyError, TypeError):
        return None
    return "; ".join(texts) or None
