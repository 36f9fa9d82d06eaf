"""A fake of Postmark's batch email API, as a handler for the ``endpoint`` fixture.

It checks what Postmark documents for ``POST /email/batch``: the ``X-Postmark-Server-Token``
header, ``Accept`` and ``Content-Type: application/json``, a JSON array of at most 500
messages. A request it refuses as a whole gets Postmark's error object ``{"ErrorCode",
"Message"}`` (401, 422; 429 and 500 when a test asks). An accepted request gets 200 and one
result per message, in order: ``ErrorCode`` 0 "OK" with a ``MessageID``, or the code that
refused that message alone (300 invalid message, 406 inactive recipient, 1235 unknown stream).

Each accepted message becomes a :class:`Copy` in ``delivered`` (by address).
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.endpoint import Answer, Request
from tests.fakes import base

LIMIT = 500
INACTIVE = (
    "You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: {}. "
    "Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression."
)
# What Postmark says for a status when a test asks for a failure without its own text.
DEFAULT_ERROR = {
    401: (
        10,
        "The Server Token you provided in the X-Postmark-Server-Token request header was invalid. "
        "Please verify that you are using a valid token.",
    ),
    422: (300, "Invalid email request"),
    429: (429, "Rate limit exceeded"),
    500: (500, "Internal server error"),
    503: (100, "Maintenance"),
}


@dataclass(frozen=True)
class Copy(base.Copy):
    """One message as its reader receives it, and the stream and metadata it was sent with."""

    stream: str
    metadata: dict[str, str]


@dataclass
class FakePostmark(base.Deliveries[Copy]):
    token: str
    streams: set[str] = field(default_factory=lambda: {"outbound", "broadcast"})
    inactive: set[str] = field(default_factory=set)  # lower-cased addresses Postmark will not mail
    delivered: dict[str, list[Copy]] = field(default_factory=dict)
    failures: deque[Answer] = field(default_factory=deque)

    def fail(self, status: int, message: str | None = None, *, retry_after: str | None = None) -> None:
        """Answer the next request with this error (Postmark's shape), before looking at it."""
        code, text = DEFAULT_ERROR.get(status, (status, "Error"))
        self.queue_failure(_error(status, code, message or text), retry_after)

    def handle(self, request: Request) -> Answer:
        if (request.method, request.route) != ("POST", "/email/batch"):
            return 404, {"ErrorCode": 404, "Message": "Not found"}, {}
        token = request.headers.get("x-postmark-server-token")
        if not token:
            return _error(
                401,
                10,
                "No Account or Server API tokens were supplied in the HTTP headers. Please add a header for "
                "either X-Postmark-Server-Token or X-Postmark-Account-Token.",
            )
        if token != self.token:
            return _error(401, *DEFAULT_ERROR[401])
        if self.failures:
            return self.failures.popleft()
        for header in ("accept", "content-type"):
            if not request.headers.get(header, "").startswith("application/json"):
                return _error(422, 409, "JSON required: set the Accept and Content-Type headers to application/json.")
        try:
            messages = request.json()
        except ValueError:
            return _error(422, 402, "Invalid JSON")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return _error(422, 403, "Incompatible JSON: the batch must be an array of messages.")
        if len(messages) > LIMIT:
            return _error(422, 410, f"Too many batch messages: {len(messages)}; the limit is {LIMIT}.")
        return 200, [self._send(message) for message in messages], {}

    def _send(self, message: dict[str, Any]) -> dict[str, Any]:
        """One message's result, as Postmark reports it inside a batch answer."""
        problem = _problem(message)
        if problem is not None:
            return {"ErrorCode": 300, "Message": problem}
        to: str = message["To"]
        stream = message.get("MessageStream", "outbound")
        if stream not in self.streams:
            return {"ErrorCode": 1235, "Message": f"The message stream for the provided 'ID' ({stream}) was not found."}
        if to.lower() in self.inactive:
            return {"ErrorCode": 406, "Message": INACTIVE.format(to)}
        copy = Copy(
            to=to,
            subject=message["Subject"],
            text=message.get("TextBody", ""),
            html=message.get("HtmlBody", ""),
            headers={h["Name"]: h["Value"] for h in message.get("Headers", [])},
            stream=stream,
            metadata=message.get("Metadata", {}),
        )
        self.deliver(copy)
        submitted = datetime.now(UTC).isoformat()
        return {"ErrorCode": 0, "Message": "OK", "MessageID": str(uuid.uuid4()), "SubmittedAt": submitted, "To": to}


def _error(status: int, code: int, message: str) -> Answer:
    return status, {"ErrorCode": code, "Message": message}, {}


def _problem(message: dict[str, Any]) -> str | None:
    """Why Postmark would refuse this message (ErrorCode 300), or None."""
    for name in ("From", "To", "Subject"):
        if not isinstance(message.get(name), str) or not message[name].strip():
            return f"Invalid email request: the '{name}' field is required."
    if "@" not in message["To"] or "," in message["To"]:
        return f"Error parsing 'To': Illegal email address '{message['To']}'. It must contain the '@' symbol."
    if not (message.get("HtmlBody") or message.get("TextBody")):
        return "Provide either email TextBody or HtmlBody or both."
    headers = message.get("Headers", [])
    if not isinstance(headers, list) or not all(
        isinstance(h, dict) and set(h) == {"Name", "Value"} and all(isinstance(v, str) for v in h.values())
        for h in headers
    ):
        return "Invalid 'Headers': expected a list of {Name, Value} objects."
    metadata = message.get("Metadata", {})
    if not isinstance(metadata, dict) or len(metadata) > 10:
        return "Invalid 'Metadata': at most 10 fields."
    for key, value in metadata.items():
        if len(key) > 20 or not isinstance(value, str) or len(value) > 80:
            return f"Invalid 'Metadata' field {key!r}: keys up to 20 characters, string values up to 80."
    return None
