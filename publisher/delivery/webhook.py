"""A JSON webhook: the operator's own endpoint, or any relay that takes JSON.

``POST [mailer] url`` with ``Idempotency-Key: <batch key>`` and, when a key is set,
``Authorization: Bearer <key>``. The body holds the digest once (HTML and text with the
placeholder for the unsubscribe link) and each recipient with their own link, so the endpoint
can personalize; ``personal`` says which string to replace (and ``personal_preferences``, when
the digest links to the preferences page, the string each recipient's ``preferences_url`` replaces).
"""

from __future__ import annotations

from publisher import http
from publisher.config import WebhookConfig
from publisher.delivery import Envelope, Receipt
from publisher.delivery.base import HttpMailer, json_field
from publisher.message import PREFERENCES_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER, preferences_link


def build(settings: WebhookConfig) -> WebhookMailer:
    return WebhookMailer(settings, settings.api_key())


class WebhookMailer(HttpMailer[WebhookConfig]):
    name = "webhook"
    idempotent = True  # the endpoint gets the batch key as Idempotency-Key
    batch_size = 1000

    def send(self, envelope: Envelope) -> Receipt:
        digest = envelope.digest
        headers = {"Idempotency-Key": envelope.key}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        readers = [{"email": r.email, "unsubscribe_url": r.unsubscribe_url} for r in envelope.recipients]
        payload: dict[str, object] = {
            "id": digest.id,
            "key": envelope.key,
            "test": envelope.test,
            "subject": digest.subject,
            "from": digest.sender,
            "to": [r.email for r in envelope.recipients],
            "recipients": readers,
            "personal": UNSUBSCRIBE_PLACEHOLDER,
            "html": digest.html,
            "text": digest.text,
            "headers": digest.headers,
            "articles": digest.articles,
        }
        if PREFERENCES_PLACEHOLDER in digest.text:  # the footer links to the readers' preferences page
            payload["personal_preferences"] = PREFERENCES_PLACEHOLDER
            payload["recipients"] = [
                {**reader, "preferences_url": preferences_link(digest.preferences_url, reader["unsubscribe_url"])}
                for reader in readers
            ]
        response = self.with_retries(lambda: self.post(self.config.url, json=payload, headers=headers))
        where = http.printable_url(self.config.url)
        return Receipt(provider_id=json_field(response, "id"), detail=f"accepted by {where}")
