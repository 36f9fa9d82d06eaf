"""Mailgun's messages API: ``POST {url}/v3/{domain}/messages``, Basic auth ``api:KEY``.

A batch of up to 1,000 recipients goes in one request with ``recipient-variables``, so that
Mailgun sends each recipient a copy addressed to them alone, with their own unsubscribe link
(``%recipient.unsubscribe_url%`` in the body and the List-Unsubscribe header).

The request is ``multipart/form-data``, which Mailgun takes as well as a urlencoded form: each
field goes as its UTF-8 bytes, where a urlencoded form escaped the HTML and the variables byte
by byte (most of a send's time). Its boundary is made from the batch key, not drawn at random,
so a batch sent again carries the same bytes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re

from markupsafe import escape

from publisher import http
from publisher.config import MailgunConfig
from publisher.delivery import Envelope, Receipt, Recipient
from publisher.delivery.base import HttpMailer, json_field, require_key

UNSUBSCRIBE_VARIABLE = "%recipient.unsubscribe_url%"
UNSUBSCRIBE_HTML_VARIABLE = "%recipient.unsubscribe_url_html%"  # Mailgun inserts values as they are


def build(settings: MailgunConfig) -> MailgunMailer:
    return MailgunMailer(settings, require_key(settings, "Mailgun needs an API key"))


class MailgunMailer(HttpMailer[MailgunConfig]):
    name = "mailgun"
    idempotent = False  # Mailgun has no idempotency key: a blind resend may mail twice
    batch_size = 1000  # Mailgun's limit of recipients per message

    def secrets(self) -> list[str]:
        # Basic auth sends base64("api:KEY"): an endpoint echoing the header leaks the key in it.
        return [*super().secrets(), http.basic_auth("api", self.key or "")]

    def send(self, envelope: Envelope) -> Receipt:
        digest = envelope.digest
        url = f"{self.config.url}/v3/{self.config.domain}/messages"
        fields = [
            ("from", digest.sender),
            *(("to", r.email) for r in envelope.recipients),
            ("subject", digest.subject),
            ("text", digest.personal(digest.text, UNSUBSCRIBE_VARIABLE)),
            ("html", digest.personal(digest.html, UNSUBSCRIBE_HTML_VARIABLE)),
            ("recipient-variables", recipient_variables(envelope.recipients, envelope.key)),
            *((f"h:{name}", digest.personal(value, UNSUBSCRIBE_VARIABLE)) for name, value in digest.headers.items()),
            ("v:digest-id", digest.id),
            ("v:batch-key", envelope.key),
        ]
        if envelope.test:
            fields.append(("o:tag", "test"))
        body, content_type = form_data(fields, envelope.key)
        headers = {"Content-Type": content_type, "Authorization": "Basic " + http.basic_auth("api", self.key or "")}
        response = self.with_retries(lambda: self.post(url, content=body, headers=headers))
        provider_id = json_field(response, "id")
        return Receipt(provider_id=provider_id, detail=f"queued by Mailgun as {provider_id}")


def recipient_variables(recipients: tuple[Recipient, ...], key: str) -> str:
    """Each reader's own values, as JSON: the same text as ``json.dumps`` of the dict.

    Written with one format string per reader when every value is plain printable ASCII with
    no quote or backslash (addresses and personal links always are), which is several times
    quicker than encoding a thousand small dicts; anything else goes through ``json.dumps``.
    """
    links = [(email, link, _html(link)) for email, link in recipients]
    if _PLAIN.fullmatch("".join([key, *(email + link + html for email, link, html in links)])):
        return (
            "{"
            + ", ".join(
                f'"{email}": {{"unsubscribe_url": "{link}", "unsubscribe_url_html": "{html}", "batch": "{key}"}}'
                for email, link, html in links
            )
            + "}"
        )
    variables = {
        email: {"unsubscribe_url": link, "unsubscribe_url_html": html, "batch": key} for email, link, html in links
    }
    return json.dumps(variables)


_PLAIN = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII but " and \: JSON writes it as it is


def _html(url: str) -> str:
    """``url`` escaped for HTML, as markupsafe does; a link with no <>"' (every personal link
    on a plain base URL) only needs its & escaped, which is much quicker."""
    if "<" in url or ">" in url or '"' in url or "'" in url:
        return str(escape(url))
    return url.replace("&", "&amp;")


def form_data(fields: list[tuple[str, str]], seed: str) -> tuple[bytes, str]:
    """``fields`` as a multipart/form-data body (RFC 7578), repeats kept, and its Content-Type.

    The boundary comes from ``seed``; one found inside a value is replaced by the next, so the
    same fields always give the same bytes. Field names are publisher's own (plain ASCII, no
    quotes). Each value is encoded on its own: one string of them all would be widened to two
    or four bytes a character by a single € in the digest.
    """
    values = [value.encode() for _, value in fields]
    for n in itertools.count(1):
        boundary = "publisher-" + hashlib.sha256(f"{seed} {n}".encode()).hexdigest()[:32]
        parts = []
        for (name, _), value in zip(fields, values, strict=True):
            parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode(), value, b"\r\n"]
        parts.append(f"--{boundary}--\r\n".encode())
        body = b"".join(parts)
        if body.count(boundary.encode()) == len(fields) + 1:  # only where it delimits: in no value
            return body, f"multipart/form-data; boundary={boundary}"
    raise AssertionError("unreachable")
