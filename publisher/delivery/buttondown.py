"""Buttondown: the digest becomes one email to the newsletter's own subscribers.

``POST {url}/v1/emails`` with ``Authorization: Token KEY``, ``X-Idempotency-Key: <batch key>``
and ``{"subject", "body", "status": "about_to_send"}``: Buttondown sends it at once. Buttondown
answers a repeated key with the first answer and creates nothing new, so a send interrupted by
a crash or a timeout may simply be repeated (``idempotent = True``).

The body is the digest's HTML with Buttondown's ``{{ unsubscribe_url }}`` where each reader's
own link goes. A test send creates the email as a draft and asks Buttondown to mail that draft
to the given addresses (``POST /v1/emails/{id}/send-draft``); subscribers get nothing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import httpx

from publisher import http
from publisher.config import ButtondownConfig
from publisher.delivery import Envelope, Receipt, personal
from publisher.delivery.base import HttpMailer, json_field, require_key
from publisher.errors import DeliveryError

UNSUBSCRIBE_VARIABLE = "{{ unsubscribe_url }}"


class EmailStatus(StrEnum):
    """The states a new Buttondown email is created in (Buttondown's own names)."""

    DRAFT = "draft"  # a test: sent to the given addresses from the draft
    ABOUT_TO_SEND = "about_to_send"  # sent to the subscribers at once


def build(settings: ButtondownConfig) -> ButtondownMailer:
    return ButtondownMailer(settings, require_key(settings, "Buttondown needs an API key"))


class ButtondownMailer(HttpMailer[ButtondownConfig]):
    name = "buttondown"
    idempotent = True  # Buttondown honours X-Idempotency-Key
    batch_size = 0  # no recipients of ours in a request
    owns_list = True  # Buttondown sends to its own subscribers

    def send(self, envelope: Envelope) -> Receipt:
        digest = envelope.digest
        payload = {
            "subject": digest.subject,
            "body": digest.personal(personal.guard_braces_html(digest.html), UNSUBSCRIBE_VARIABLE),
            "status": (EmailStatus.DRAFT if envelope.test else EmailStatus.ABOUT_TO_SEND).value,
        }
        created = self._post("/v1/emails", payload, envelope.key)
        email_id = json_field(created, "id")
        if not envelope.test:
            return Receipt(provider_id=email_id, detail=f"accepted by Buttondown as {email_id}")
        if email_id is None:
            raise DeliveryError("buttondown: the draft was created without an id; cannot send it", retryable=False)
        recipients = [r.email for r in envelope.recipients]
        self._post(f"/v1/emails/{email_id}/send-draft", {"recipients": recipients}, f"{envelope.key}-send-draft")
        return Receipt(provider_id=email_id, detail=f"test sent by Buttondown from draft {email_id}")

    def _post(self, path: str, payload: dict[str, Any], key: str) -> httpx.Response:
        headers = {"Authorization": f"Token {self.key}", "X-Idempotency-Key": key}
        url = f"{self.config.url}{path}"
        return self.with_retries(lambda: self.post(url, json=payload, headers=headers))

    def refused(self, where: str, response: httpx.Response, reason: str | None = None) -> DeliveryError:
        return super().refused(where, response, reason if reason is not None else _reason(response))


def _reason(response: httpx.Response) -> str:
    """Buttondown's ``{"code", "detail"}``, or a dict of field errors, as one line."""
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    if not isinstance(body, dict):
        return http.error_text(response)
    if "detail" in body:
        detail = body["detail"]
        text = detail if isinstance(detail, str) else _fields(detail) if isinstance(detail, dict) else str(detail)
        return f"{body['code']}: {text}" if body.get("code") else text
    return _fields(body) or http.error_text(response)


def _fields(errors: dict[str, Any]) -> str:
    """``{"subject": ["This field is required."]}`` -> ``subject: This field is required.``"""
    parts = []
    for name, problem in errors.items():
        words = " ".join(str(p) for p in problem) if isinstance(problem, list) else str(problem)
        parts.append(f"{name}: {words}")
    return "; ".join(parts)
