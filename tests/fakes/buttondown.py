"""A fake of Buttondown's emails API, as a handler for the ``endpoint`` fixture.

It checks what Buttondown documents: ``Authorization: Token KEY`` (else 401
``{"detail": ...}``), ``X-Idempotency-Key`` of at most 200 characters, and for
``POST /v1/emails`` a JSON body with a ``subject`` and a ``status`` an email may be created
with (``draft``, ``about_to_send``, ``scheduled`` with a ``publish_date``); a refusal is 400
``{"code", "detail"}``. A repeated idempotency key gets the first answer again and creates
nothing. ``POST /v1/emails/{id}/send-draft`` mails a draft to ``recipients`` only (a preview).

Emails created ``about_to_send`` count as sent to the list; ``fail()`` scripts the next answer.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.endpoint import Answer, Request

CREATABLE = ("draft", "about_to_send", "scheduled")
_SEND_DRAFT = re.compile(r"^/v1/emails/([0-9a-f-]{36})/send-draft$")


@dataclass
class FakeButtondown:
    key: str
    emails: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    previews: list[tuple[str, list[str]]] = field(default_factory=list)  # email id, recipients
    answered: dict[str, Answer] = field(default_factory=dict)  # by idempotency key
    failures: deque[tuple[int, Any, dict[str, str]]] = field(default_factory=deque)

    def fail(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Answer the next authorized request with this, before doing anything."""
        self.failures.append((status, body, headers or {}))

    def sent(self) -> list[dict[str, Any]]:
        return [e for e in self.emails.values() if e["status"] == "about_to_send"]

    def handle(self, request: Request) -> Answer:
        if request.headers.get("authorization") != f"Token {self.key}":
            return 401, {"detail": "Please provide a valid API key in the Authorization header."}, {}
        key = request.headers.get("x-idempotency-key")
        if key is not None and not 0 < len(key) <= 200:
            return 400, {"code": "idempotency_key_invalid", "detail": "Idempotency keys are 1 to 200 characters."}, {}
        if key is not None and key in self.answered:
            return self.answered[key]
        if self.failures:
            return self.failures.popleft()
        if request.method != "POST":
            return 405, {"detail": "Method not allowed"}, {}
        try:
            body = request.json()
        except ValueError:
            return 400, {"detail": "Invalid JSON body"}, {}
        if request.route == "/v1/emails":
            answer = self._create(body)
        elif found := _SEND_DRAFT.match(request.route):
            answer = self._send_draft(found[1], body)
        else:
            return 404, {"detail": "Not Found"}, {}
        if key is not None and answer[0] < 500:
            self.answered[key] = answer
        return answer

    def _create(self, body: Any) -> Answer:
        if not isinstance(body, dict):
            return 422, {"detail": [{"loc": ["body", "payload"], "msg": "field required", "type": "value_error"}]}, {}
        subject = body.get("subject")
        if not isinstance(subject, str) or not subject.strip() or len(subject) > 1000:
            return 400, {"code": "subject_invalid", "detail": "The subject must be 1 to 1000 characters."}, {}
        status = body.get("status", "about_to_send")
        if status not in CREATABLE:
            return 400, {"code": "status_invalid", "detail": f"An email cannot be created with status {status}."}, {}
        if status == "scheduled" and not body.get("publish_date"):
            return 400, {"code": "publish_date_missing", "detail": "A scheduled email needs a publish_date."}, {}
        email_id = str(uuid.uuid4())
        now = datetime.now(UTC).isoformat()
        self.emails[email_id] = {
            "id": email_id,
            "creation_date": now,
            "modification_date": now,
            "subject": subject,
            "body": body.get("body", ""),
            "status": status,
            "email_type": body.get("email_type", "public"),
            "source": "api",
        }
        return 201, self.emails[email_id], {}

    def _send_draft(self, email_id: str, body: Any) -> Answer:
        email = self.emails.get(email_id)
        if email is None:
            return 404, {"detail": "Not Found"}, {}
        if email["status"] != "draft":
            return 400, {"code": "email_not_draft", "detail": "Only drafts can be sent as a preview."}, {}
        recipients = body.get("recipients") if isinstance(body, dict) else None
        if not recipients or not all(isinstance(r, str) and "@" in r for r in recipients):
            return 400, {"code": "recipients_invalid", "detail": "Give at least one recipient address."}, {}
        self.previews.append((email_id, list(recipients)))
        return 200, b"", {}
