"""Mailgun's messages API: ``POST {url}/v3/{domain}/messages``, Basic auth ``api:KEY``.

A batch of up to 1,000 recipients goes in one request with ``recipient-variables``, so that
Mailgun sends each recipient a copy addressed to them alone, with their own unsubscribe link
(``%recipient.unsubscribe_url%`` in the body and the List-Unsubscribe header).
"""

from __future__ import annotations

import json

from markupsafe import escape

from publisher import http
from publisher.config import Config
from publisher.delivery import Envelope, Receipt
from publisher.delivery.base import HttpMailer, json_field, require_key

UNSUBSCRIBE_VARIABLE = "%recipient.unsubscribe_url%"
UNSUBSCRIBE_HTML_VARIABLE = "%recipient.unsubscribe_url_html%"  # Mailgun inserts values as they are


def build(config: Config) -> MailgunMailer:
    return MailgunMailer(config.mailer, require_key(config, "Mailgun needs an API key"))


class MailgunMailer(HttpMailer):
    name = "mailgun"
    idempotent = False  # Mailgun has no idempotency key: a blind resend may mail twice
    batch_size = 1000  # Mailgun's limit of recipients per message

    def secrets(self) -> list[str]:
        # Basic auth sends base64("api:KEY"): an endpoint echoing the header leaks the key in it.
        return [*super().secrets(), http.basic_auth("api", self.key or "")]

    def send(self, envelope: Envelope) -> Receipt:
        digest = envelope.digest
        url = f"{self.config.url}/v3/{self.config.domain}/messages"
        variables = {
            r.email: {
                "unsubscribe_url": r.unsubscribe_url,
                "unsubscribe_url_html": str(escape(r.unsubscribe_url)),
                "batch": envelope.key,
            }
            for r in envelope.recipients
        }
        # A dict (a list value repeats the field): httpx takes a list of pairs as raw content.
        fields: dict[str, str | list[str]] = {
            "from": digest.sender,
            "to": [r.email for r in envelope.recipients],
            "subject": digest.subject,
            "text": digest.personal(digest.text, UNSUBSCRIBE_VARIABLE),
            "html": digest.personal(digest.html, UNSUBSCRIBE_HTML_VARIABLE),
            "recipient-variables": json.dumps(variables),
        }
        fields |= {f"h:{name}": digest.personal(value, UNSUBSCRIBE_VARIABLE) for name, value in digest.headers.items()}
        fields["v:digest-id"] = digest.id
        fields["v:batch-key"] = envelope.key
        if envelope.test:
            fields["o:tag"] = "test"
        auth = ("api", self.key or "")
        response = self.with_retries(lambda: self.post(url, data=fields, auth=auth))
        provider_id = json_field(response, "id")
        return Receipt(provider_id=provider_id, detail=f"queued by Mailgun as {provider_id}")
