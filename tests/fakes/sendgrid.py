"""A fake of SendGrid's v3 mail send API, as a handler for the ``endpoint`` fixture.

It checks what SendGrid documents for ``POST /v3/mail/send``: ``Authorization: Bearer KEY``,
a JSON body with 1 to 1,000 personalizations, each address once across all of them, a
verified sender, a subject, text/plain content before text/html, string-valued headers,
substitutions and custom_args, no reserved header. It answers as SendGrid does: 202 with an
empty body and ``X-Message-Id``, or ``{"errors": [{"message", "field", "help"}]}``.

Each accepted personalization becomes a :class:`Copy` in ``delivered`` (by address): the
message as that reader gets it, substitutions applied, headers merged.
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.endpoint import Answer, Request
from tests.fakes import base

LIMIT = 1000
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
RESERVED_HEADERS = {
    "x-sg-id",
    "x-sg-eid",
    "received",
    "dkim-signature",
    "content-type",
    "content-transfer-encoding",
    "to",
    "from",
    "subject",
    "reply-to",
    "cc",
    "bcc",
}
# What SendGrid says for a status when a test asks for a failure without its own text.
DEFAULT_TEXT = {
    401: "The provided authorization grant is invalid, expired, or revoked",
    403: "access forbidden",
    413: "payload too large",
    429: "too many requests",
    500: "internal server error",
    503: "service unavailable",
}


@dataclass(frozen=True)
class Copy(base.Copy):
    """One message as its reader receives it, and the custom_args it was sent with."""

    custom_args: dict[str, str]


@dataclass
class FakeSendGrid(base.Deliveries[Copy]):
    key: str
    senders: set[str] = field(default_factory=lambda: {"news@example.org"})
    delivered: dict[str, list[Copy]] = field(default_factory=dict)
    accepted: list[str] = field(default_factory=list)  # X-Message-Id of each accepted request
    failures: deque[Answer] = field(default_factory=deque)

    def fail(self, status: int, message: str | None = None, *, retry_after: str | None = None) -> None:
        """Answer the next request with this error (SendGrid's shape), before looking at it."""
        self.queue_failure(_errors(status, [(None, message or DEFAULT_TEXT.get(status, "error"))]), retry_after)

    def handle(self, request: Request) -> Answer:
        if (request.method, request.route) != ("POST", "/v3/mail/send"):
            return _errors(404, [(None, "resource not found")])
        if "authorization" not in request.headers:
            return _errors(401, [(None, "authorization required")])
        if request.headers["authorization"] != f"Bearer {self.key}":
            return _errors(401, [(None, DEFAULT_TEXT[401])])
        if self.failures:
            return self.failures.popleft()
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _errors(400, [(None, "Content-Type should be application/json.")])
        try:
            mail = request.json()
        except ValueError:
            return _errors(400, [(None, "Bad Request")])
        if not isinstance(mail, dict):
            return _errors(400, [(None, "Bad Request")])
        problems = _check(mail)
        if problems:
            return _errors(400, problems)
        sender = mail["from"]["email"]
        if sender.lower() not in self.senders:
            return _errors(
                403,
                [
                    (
                        "from",
                        "The from address does not match a verified Sender Identity. Mail cannot be sent until "
                        "this error is resolved. Visit https://sendgrid.com/docs/for-developers/sending-email/"
                        "sender-identity/ to see the Sender Identity requirements",
                    )
                ],
            )
        message_id = uuid.uuid4().hex[:22]
        for personalization in mail["personalizations"]:
            self._send_personalization(mail, personalization)
        self.accepted.append(message_id)
        return 202, b"", {"X-Message-Id": message_id}

    def _send_personalization(self, mail: dict[str, Any], personalization: dict[str, Any]) -> None:
        substitutions: dict[str, str] = personalization.get("substitutions", {})

        def substitute(text: str) -> str:
            for tag, value in substitutions.items():
                text = text.replace(tag, value)
            return text

        content = {part["type"]: substitute(part["value"]) for part in mail["content"]}
        subject = substitute(personalization.get("subject", mail.get("subject", "")))
        headers = {**mail.get("headers", {}), **personalization.get("headers", {})}
        custom_args = {**mail.get("custom_args", {}), **personalization.get("custom_args", {})}
        for to in personalization["to"]:
            copy = Copy(
                to=to["email"],
                subject=subject,
                text=content.get("text/plain", ""),
                html=content.get("text/html", ""),
                headers=headers,
                custom_args=custom_args,
            )
            self.deliver(copy)


Problem = tuple[str | None, str]  # (field, message)


def _errors(status: int, problems: list[Problem]) -> Answer:
    errors = [
        {"message": message, "field": where, "help": f"{HELP}#message.{where}" if where else None}
        for where, message in problems
    ]
    return status, {"errors": errors}, {}


def _check(mail: dict[str, Any]) -> list[Problem]:
    """What SendGrid would refuse in this request body, in its words."""
    problems: list[Problem] = []
    personalizations = mail.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        return [("personalizations", "You must have at least one personalization.")]
    if len(personalizations) > LIMIT:
        return [
            (
                "personalizations",
                f"The personalization block is limited to {LIMIT} personalizations per API request. You have "
                f"provided {len(personalizations)} personalizations. Please consider splitting this into "
                "multiple requests and resending your request.",
            )
        ]
    seen: set[str] = set()
    for n, p in enumerate(personalizations):
        where = f"personalizations.{n}"
        to = p.get("to") if isinstance(p, dict) else None
        if not isinstance(to, list) or not to:
            problems.append((f"{where}.to", "The to array is required for all personalization objects."))
            continue
        for address in to:
            email = address.get("email") if isinstance(address, dict) else None
            if not isinstance(email, str) or "@" not in email:
                problems.append((f"{where}.to", "Each to object must at least have an email address."))
            elif email.lower() in seen:
                problems.append(
                    (
                        where,
                        "Each unique email address in the personalizations array should only be included once. "
                        f"You have included {email} more than once.",
                    )
                )
            else:
                seen.add(email.lower())
        if "subject" not in mail and not p.get("subject"):
            problems.append(
                (
                    "subject",
                    "The subject is required. You can get around this requirement if you use "
                    "a template with a subject defined or if every personalization has a subject defined.",
                )
            )
        problems += _strings(p.get("substitutions", {}), f"{where}.substitutions", 10_000)
        problems += _strings(p.get("headers", {}), f"{where}.headers", None)
        problems += _strings(p.get("custom_args", {}), f"{where}.custom_args", 10_000)
    sender = mail.get("from")
    if not isinstance(sender, dict) or not isinstance(sender.get("email"), str) or "@" not in sender["email"]:
        problems.append(
            (
                "from.email",
                "The from object must be provided for every email send. It is an object "
                "that requires the email parameter, but may also contain a name parameter.",
            )
        )
    content = mail.get("content")
    if not isinstance(content, list) or not content:
        problems.append(("content", "Unless a valid template_id is provided, the content parameter is required."))
    else:
        types = [part.get("type") if isinstance(part, dict) else None for part in content]
        for n, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("value"), str) or not part["value"]:
                problems.append(
                    (f"content.{n}.value", "The content value must be a string at least one character in length.")
                )
        if "text/plain" in types and types.index("text/plain") != 0:
            problems.append(("content", "If present, text/plain content must be first, followed by text/html."))
    problems += _strings(mail.get("headers", {}), "headers", None)
    problems += _strings(mail.get("custom_args", {}), "custom_args", 10_000)
    return problems


def _strings(values: Any, where: str, limit: int | None) -> list[Problem]:
    """A map SendGrid wants as string -> string (and, for headers, no reserved name)."""
    if not isinstance(values, dict):
        return [(where, f"Invalid type. Expected: object, given: {type(values).__name__}.")]
    problems: list[Problem] = []
    for name, value in values.items():
        if not isinstance(value, str):
            problems.append((f"{where}.{name}", "Invalid type. Expected: string."))
        if where.endswith("headers") and name.lower() in RESERVED_HEADERS:
            problems.append((where, f"The header {name} is reserved and cannot be set in the headers."))
    if limit is not None and len(json.dumps(values).encode()) > limit:
        problems.append((where, f"The total size of {where} may not exceed {limit:,} bytes."))
    return problems
