"""A fake of Resend's batch emails API, as a handler for the ``endpoint`` fixture.

It checks what Resend documents for ``POST /emails/batch``: ``Authorization: Bearer KEY``, a
JSON array of 1 to 100 emails, each with ``from``, ``to`` (at most 50), ``subject``, ``html``
or ``text``, string ``headers``, and neither ``attachments`` nor ``scheduled_at`` (not
supported in a batch); strict validation, so one bad email refuses the whole request. It
answers ``{"data": [{"id"}]}`` or Resend's error ``{"statusCode", "name", "message"}``.

``Idempotency-Key`` (1 to 256 characters) is honoured as Resend does: the same key with the
same body gets the first answer again and sends nothing; the same key with another body is a
409 ``invalid_idempotent_request``.

Each accepted email becomes a :class:`Copy` in ``delivered`` (by address).
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.endpoint import Answer, Request
from tests.fakes.base import Copy, Deliveries

LIMIT = 100
# Resend's error name and message for a status, when a test asks for a failure without its own.
DEFAULT_ERROR = {
    409: ("concurrent_idempotent_requests", "Same idempotency key used while original request is still in progress."),
    429: ("rate_limit_exceeded", "Too many requests. You can only make 2 requests per second."),
    500: ("internal_server_error", "An unexpected error occurred."),
    503: ("application_error", "Something went wrong."),
}


@dataclass
class FakeResend(Deliveries[Copy]):
    key: str
    delivered: dict[str, list[Copy]] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)  # the id of each email sent, in order
    answered: dict[str, tuple[Any, Answer]] = field(default_factory=dict)  # key -> (body, first answer)
    failures: deque[Answer] = field(default_factory=deque)
    # Set by lose_next_answer(): the next accepted request's answer is held this long.
    hold: float = 0.0
    released: threading.Event = field(default_factory=threading.Event)

    def fail(
        self, status: int, message: str | None = None, *, name: str | None = None, retry_after: str | None = None
    ) -> None:
        """Answer the next request with this error (Resend's shape), before looking at it."""
        default_name, default_message = DEFAULT_ERROR.get(status, ("application_error", "Something went wrong."))
        self.queue_failure(_error(status, name or default_name, message or default_message), retry_after)

    def lose_next_answer(self, seconds: float) -> None:
        """Send the next accepted batch, then hold the answer ``seconds`` (past the client's timeout)."""
        self.hold = seconds

    def release(self) -> None:
        """Let a held answer go (to a client that has given up on it by now)."""
        self.released.set()

    def handle(self, request: Request) -> Answer:
        if request.route != "/emails/batch":
            return _error(404, "not_found", "The requested endpoint does not exist.")
        if request.method != "POST":
            return _error(405, "method_not_allowed", "Method is not allowed for the requested path.")
        authorization = request.headers.get("authorization", "")
        if not authorization:
            return _error(401, "missing_api_key", "Missing API key in the authorization header.")
        if authorization != f"Bearer {self.key}":
            return _error(403, "invalid_api_key", "API key is invalid")
        if self.failures:
            return self.failures.popleft()
        key = request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= 256:
            return _error(400, "invalid_idempotency_key", "The key must be between 1-256 chars.")
        try:
            emails = request.json()
        except ValueError:
            return _error(422, "validation_error", "Invalid JSON body.")
        if key is not None and key in self.answered:
            first_body, first_answer = self.answered[key]
            if first_body != emails:
                return _error(
                    409, "invalid_idempotent_request", "Same idempotency key used with a different request payload."
                )
            return first_answer
        problem = _problem(emails)
        if problem is not None:
            return _error(422, "validation_error", problem)
        for email in emails:
            for to in email["to"] if isinstance(email["to"], list) else [email["to"]]:
                copy = Copy(
                    to=to,
                    subject=email["subject"],
                    text=email.get("text", ""),
                    html=email.get("html", ""),
                    headers=email.get("headers", {}),
                )
                self.deliver(copy)
        ids = [str(uuid.uuid4()) for _ in emails]
        self.issued += ids
        answer: Answer = (200, {"data": [{"id": i} for i in ids]}, {})
        if key is not None:
            self.answered[key] = (emails, answer)
        if self.hold:
            hold, self.hold = self.hold, 0.0
            self.released.wait(hold)  # the emails went out; the answer is late
        return answer


def _error(status: int, name: str, message: str) -> Answer:
    return status, {"statusCode": status, "name": name, "message": message}, {}


def _problem(emails: Any) -> str | None:
    """Why Resend would refuse this batch (422 validation_error), or None."""
    if not isinstance(emails, list) or not emails:
        return "The batch must be an array of 1 to 100 emails."
    if len(emails) > LIMIT:
        return f"Too many emails in the batch: {len(emails)}; the limit is {LIMIT}."
    for n, email in enumerate(emails):
        if not isinstance(email, dict):
            return f"emails[{n}]: must be an object."
        for name in ("from", "to", "subject"):
            if not email.get(name):
                return f"emails[{n}]: Missing `{name}` field."
        for name in ("attachments", "scheduled_at"):
            if name in email:
                return f"emails[{n}]: `{name}` is not supported in batch emails."
        to = email["to"] if isinstance(email["to"], list) else [email["to"]]
        if len(to) > 50 or not all(isinstance(a, str) and "@" in a for a in to):
            return f"emails[{n}]: Invalid `to` field: up to 50 email addresses."
        if not (email.get("html") or email.get("text")):
            return f"emails[{n}]: Missing `html` or `text` field."
        headers = email.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            return f"emails[{n}]: `headers` must be an object of strings."
    return None
