"""A fake of Amazon SES API v2 ``SendEmail``, as a handler for the ``endpoint`` fixture.

It checks what SES checks for ``POST /v2/email/outbound-emails``: the AWS Signature V4 (it
computes the expected signature of the received request with botocore's own signer, under
the secret it was given, and compares; a body hash header must match the body), the request
time (within 5 minutes), the session token when there is one, a JSON body with a verified
``FromEmailAddress``, at most 50 destinations, ``Content.Raw.Data`` that is base64 of a
message with headers and a body, and tag names and values of ``[A-Za-z0-9_-]`` only.
Refusals have SES's shape: the error type in ``x-amzn-ErrorType`` and ``{"message": ...}``
in the body. An accepted request gets 200 ``{"MessageId": ...}`` and becomes a :class:`Sent`.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import hashlib
import hmac
import json
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.endpoint import Answer, Request

PATH = "/v2/email/outbound-emails"
MAX_RECIPIENTS = 50
MAX_SKEW_SECONDS = 300
_TAG = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_CREDENTIAL = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r" ?SignedHeaders=(?P<signed>[^,]+), ?Signature=(?P<signature>[0-9a-f]{64})$"
)
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access "
    "Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class Sent:
    """One accepted message, as SES will deliver it."""

    message_id: str
    sender: str
    to: list[str]
    tags: dict[str, str]
    message: EmailMessage


@dataclass
class FakeSes:
    access_key: str
    secret_key: str
    region: str
    session_token: str | None = None
    verified: set[str] = field(default_factory=set)  # addresses or domains verified for sending
    sent: list[Sent] = field(default_factory=list)
    failures: deque[tuple[int, str, str]] = field(default_factory=deque)

    def fail(self, status: int, error_type: str, message: str) -> None:
        """Answer the next signed request with this error, as SES would."""
        self.failures.append((status, error_type, message))

    def handle(self, request: Request) -> Answer:
        if (request.method, request.route) != ("POST", PATH):
            return _error(404, "NotFoundException", f"Unknown operation {request.method} {request.route}")
        refused = self._check_signature(request)
        if refused is not None:
            return refused
        if self.failures:
            return _error(*self.failures.popleft())
        try:
            body = json.loads(request.body)
        except ValueError:
            return _error(400, "BadRequestException", "Request body is not valid JSON")
        return self._send(body)

    def _check_signature(self, request: Request) -> Answer | None:
        found = _CREDENTIAL.match(request.headers.get("authorization", ""))
        if found is None:
            return _error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        if found["key"] != self.access_key:
            return _error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        if (found["region"], found["service"]) != (self.region, "ses"):
            scope = f"{found['region']}/{found['service']}"
            return _error(
                403, "InvalidSignatureException", f"Credential should be scoped to {self.region}/ses, not {scope}"
            )
        stamp = request.headers.get("x-amz-date", "")
        try:
            when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return _error(400, "IncompleteSignatureException", "Authorization header requires existence of X-Amz-Date")
        if abs((datetime.now(UTC) - when).total_seconds()) > MAX_SKEW_SECONDS:
            return _error(403, "InvalidSignatureException", f"Signature expired: {stamp} is now earlier than allowed")
        signed = found["signed"].split(";")
        if "host" not in signed:
            return _error(403, "InvalidSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization.")
        if self.session_token is not None and (
            request.headers.get("x-amz-security-token") != self.session_token or "x-amz-security-token" not in signed
        ):
            return _error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        claimed = request.headers.get("x-amz-content-sha256")
        if claimed is not None and claimed != hashlib.sha256(request.body).hexdigest():
            return _error(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match")
        if not hmac.compare_digest(found["signature"], self.expected_signature(request, signed, stamp)):
            return _error(403, "InvalidSignatureException", MISMATCH)
        return None

    def expected_signature(self, request: Request, signed: list[str], stamp: str) -> str:
        """The SigV4 signature of the request as received, computed by botocore's signer."""
        headers = {name: request.headers[name] for name in signed if name in request.headers}
        aws = AWSRequest(
            method=request.method,
            url=f"http://{headers.get('host', '')}{request.path}",
            data=request.body,
            headers=headers,
        )
        aws.context["timestamp"] = stamp
        signer = SigV4Auth(Credentials(self.access_key, self.secret_key, self.session_token), "ses", self.region)
        return str(signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws))

    def _send(self, body: Any) -> Answer:
        if not isinstance(body, dict):
            return _error(400, "BadRequestException", "Request body must be a JSON object")
        sender = body.get("FromEmailAddress")
        to = (body.get("Destination") or {}).get("ToAddresses") or []
        raw = ((body.get("Content") or {}).get("Raw") or {}).get("Data")
        if not isinstance(raw, str):
            return _error(400, "BadRequestException", "Content.Raw.Data is required for a raw message")
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return _error(400, "BadRequestException", "Content.Raw.Data must be base64-encoded")
        if b"\r\n\r\n" not in data and b"\n\n" not in data:
            return _error(400, "MessageRejected", "Message must contain a header and a body, separated by a blank line")
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        sender = sender or str(message.get("From", ""))
        if not to:
            to = [parseaddr(a)[1] for a in message.get_all("To", [])]
        if not to:
            return _error(400, "BadRequestException", "Missing required field Destination")
        if len(to) > MAX_RECIPIENTS:
            return _error(400, "MessageRejected", f"Recipient count exceeds {MAX_RECIPIENTS}.")
        address = parseaddr(sender)[1].lower()
        if address not in self.verified and address.rpartition("@")[2] not in self.verified:
            return _error(
                400,
                "MessageRejected",
                f"Email address is not verified. The following identities failed the check in region "
                f"{self.region.upper()}: {address}",
            )
        tags: dict[str, str] = {}
        for tag in body.get("EmailTags") or []:
            name, value = str(tag.get("Name", "")), str(tag.get("Value", ""))
            if not (_TAG.match(name) and _TAG.match(value)):
                return _error(
                    400,
                    "BadRequestException",
                    f"Invalid tag {name}={value}: only ASCII letters, digits, '_' and '-' are allowed",
                )
            tags[name] = value
        message_id = f"0102{uuid.uuid4().hex[:12]}-{uuid.uuid4()}-000000"
        self.sent.append(Sent(message_id, sender, list(to), tags, message))
        return 200, {"MessageId": message_id}, {"x-amzn-RequestId": str(uuid.uuid4())}


def _error(status: int, error_type: str, message: str) -> Answer:
    # SES appends the error's namespace after a colon; clients keep what comes before it.
    header = f"{error_type}:http://internal.amazon.com/coral/com.amazonaws.sesv2/"
    return status, {"message": message}, {"x-amzn-ErrorType": header, "x-amzn-RequestId": str(uuid.uuid4())}
