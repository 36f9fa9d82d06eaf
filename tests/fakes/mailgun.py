"""A fake of Mailgun's messages API, as a handler for the ``endpoint`` fixture.

It checks what Mailgun checks for ``POST /v3/<domain>/messages``: the sending domain, Basic
auth ``api:KEY``, a form (``multipart/form-data``, as publisher sends it, or urlencoded; both
read strictly: a malformed body is refused) with ``from``, ``to`` (repeated, at most 1,000 addresses), ``subject``,
``text`` and/or ``html``, send options (``h:``, ``v:``, ``o:``) under 16 kB. It answers as Mailgun
does: ``{"id": "<...>", "message": "Queued. Thank you."}``, or ``{"message": "..."}`` with 400,
and a plain ``Forbidden`` 401 for a wrong key.

Each accepted request is expanded into one :class:`Copy` per ``to`` address, as Mailgun sends
it: ``%recipient.NAME%`` in the subject, text, html and ``h:`` headers replaced from that
address's ``recipient-variables``. Stricter than Mailgun, which would send a variable it cannot
fill as it is: ``recipient-variables`` must be a JSON object with an entry for every address,
holding every variable the message uses, or the request is refused. A copy does its
replacing when read, so 10,000 copies of one request cost little memory.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any
from urllib.parse import parse_qsl

from tests.endpoint import Answer, Request

LIMIT = 1000
OPTIONS_LIMIT = 16 * 1024  # o:, h: and v: fields together
VARIABLE = re.compile(r"%recipient\.([A-Za-z0-9_-]+)%")


@dataclass(frozen=True)
class Message:
    """One accepted request: its form fields (repeats kept) and recipient variables."""

    id: str
    fields: list[tuple[str, str]] = field(repr=False)
    to: list[str] = field(repr=False)
    variables: dict[str, dict[str, Any]] = field(repr=False)

    def get(self, name: str) -> str:
        return next((value for key, value in self.fields if key == name), "")


@dataclass(frozen=True)
class Copy:
    """The message as one reader receives it; ``%recipient.*%`` filled in when read."""

    to: str
    message: Message = field(repr=False)

    def _fill(self, text: str) -> str:
        values = self.message.variables[self.to]
        return VARIABLE.sub(lambda match: str(values[match[1]]), text)

    @property
    def subject(self) -> str:
        return self._fill(self.message.get("subject"))

    @property
    def text(self) -> str:
        return self._fill(self.message.get("text"))

    @property
    def html(self) -> str:
        return self._fill(self.message.get("html"))

    @property
    def headers(self) -> dict[str, str]:
        return {name[2:]: self._fill(value) for name, value in self.message.fields if name.startswith("h:")}


@dataclass
class FakeMailgun:
    domain: str
    key: str
    # Left out of repr: a failing test's report would spell out every copy of every message.
    messages: list[Message] = field(default_factory=list, repr=False)  # accepted requests, in order
    delivered: dict[str, list[Copy]] = field(default_factory=dict, repr=False)  # by lower-cased address
    failures: deque[tuple[int, str]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail(self, status: int, message: str) -> None:
        """Answer the next request with this error (Mailgun's shape), before looking at it."""
        self.failures.append((status, message))

    def copies(self, address: str) -> list[Copy]:
        return self.delivered.get(address.lower(), [])

    def handle(self, request: Request) -> Answer:
        if request.route != f"/v3/{self.domain}/messages":
            domain = request.route.removeprefix("/v3/").removesuffix("/messages")
            return 404, {"message": f"Domain not found: {domain}"}, {}
        if request.method != "POST":
            return 405, {"message": "Method not allowed"}, {}
        if request.headers.get("authorization") != "Basic " + base64.b64encode(f"api:{self.key}".encode()).decode():
            return 401, b"Forbidden", {"Content-Type": "text/plain"}
        if self.failures:
            status, text = self.failures.popleft()
            return status, {"message": text}, {}
        try:
            fields = form_of(request)
        except ValueError as exc:
            return 400, {"message": f"fake Mailgun: {exc}"}, {}
        problem, to, variables = _check(fields)
        if problem:
            return 400, {"message": problem}, {}
        with self._lock:
            message = Message(f"<{len(self.messages) + 1}.fake@{self.domain}>", fields, to, variables)
            self.messages.append(message)
            for address in to:
                self.delivered.setdefault(address.lower(), []).append(Copy(address, message))
        return 200, {"id": message.id, "message": "Queued. Thank you."}, {}


def _check(fields: list[tuple[str, str]]) -> tuple[str | None, list[str], dict[str, dict[str, Any]]]:
    """What Mailgun would refuse in this form, in its words; else the addresses and their variables."""
    names = [name for name, _ in fields]
    if "from" not in names:
        return "from parameter is missing", [], {}
    if "to" not in names:
        return "to parameter is missing", [], {}
    if "text" not in names and "html" not in names:
        return "Need at least one of 'text' or 'html' parameters specified", [], {}
    if sum(len(name) + len(value) for name, value in fields if name[:2] in ("o:", "h:", "v:")) > OPTIONS_LIMIT:
        return "Send options (parameters starting with o:, h:, or v:) are limited to 16 kB total", [], {}
    to = [address for _, address in getaddresses([value for name, value in fields if name == "to"])]
    if len(to) > LIMIT:
        return f"Too many recipients; max is {LIMIT}", [], {}
    if any(not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address) for address in to):
        return "'to' parameter is not a valid address. please check documentation", [], {}
    try:
        variables = json.loads(next((value for name, value in fields if name == "recipient-variables"), "{}"))
    except ValueError:
        return "recipient-variables parameter is not a valid JSON", [], {}
    if not isinstance(variables, dict):
        return "recipient-variables parameter is not a valid JSON", [], {}
    used = {
        match
        for name, value in fields
        if name in ("subject", "text", "html") or name.startswith("h:")
        for match in VARIABLE.findall(value)
    }
    for address in to:
        values = variables.get(address)
        if not isinstance(values, dict) or not used <= values.keys():
            return f"fake Mailgun: recipient-variables lacks {sorted(used)} for {address}", [], {}
    return None, to, variables


def form_of(request: Request) -> list[tuple[str, str]]:
    """The fields of a request to Mailgun, as Mailgun reads them (see :func:`form`)."""
    return form(request.headers.get("content-type", ""), request.body)


def form(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The fields of a form body, in order, repeats kept: multipart/form-data (RFC 7578) read
    with the stdlib email parser, or application/x-www-form-urlencoded. ValueError says what
    is wrong with a body Mailgun could not read: no boundary, a part without a name, a missing
    closing boundary, a file (publisher sends none), text that is not UTF-8."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    if not content_type.startswith("multipart/form-data"):
        raise ValueError(f"expected a form, got {content_type or 'no Content-Type'}")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    assert isinstance(message, EmailMessage)
    if not message.get_boundary() or not message.is_multipart():
        raise ValueError("multipart/form-data without a boundary or parts")
    fields = []
    for part in [message, *message.iter_parts()]:
        if part.defects:
            raise ValueError(f"malformed multipart body: {part.defects[0].__class__.__name__}")
    for part in message.iter_parts():
        assert isinstance(part, EmailMessage)
        if part.get_content_disposition() != "form-data" or not part.get_param("name", header="content-disposition"):
            raise ValueError("a part without Content-Disposition: form-data; name=...")
        if part.get_filename() is not None:
            raise ValueError("a file part: publisher sends no attachments")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        fields.append((str(part.get_param("name", header="content-disposition")), payload.decode("utf-8")))
    return fields
