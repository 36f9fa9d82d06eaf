"""One reader's copy of a digest, for services that take a whole MIME message (SES, outbox).

The copy is the frozen message with ``To`` set to the reader alone, their own unsubscribe link
in the body and ``List-Unsubscribe``, and a Message-ID of its own; it is built the same way
every time, so a resend carries the same bytes.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
from email.message import EmailMessage

from markupsafe import escape

from publisher.delivery import Envelope, Recipient
from publisher.message import POLICY, Outgoing

_REPLACED = ("To", "Message-ID", "List-Unsubscribe")


def message(envelope: Envelope, recipient: Recipient) -> bytes:
    digest = envelope.digest
    frozen = email.message_from_bytes(digest.message, policy=POLICY)
    copy = EmailMessage(policy=POLICY)
    for name, value in frozen.items():
        if name not in _REPLACED and not name.lower().startswith(("content-", "mime-")):
            copy[name] = value
    copy["To"] = recipient.email
    copy["Message-ID"] = message_id(digest.headers["Message-ID"], recipient.email)
    copy["List-Unsubscribe"] = digest.unsubscribe_headers(recipient.unsubscribe_url)["List-Unsubscribe"]
    copy.set_content(text(digest, recipient.unsubscribe_url), subtype="plain", charset="utf-8", cte="quoted-printable")
    copy.add_alternative(
        html(digest, recipient.unsubscribe_url), subtype="html", charset="utf-8", cte="quoted-printable"
    )
    # A fixed boundary instead of a random one, so that a resend carries the same bytes. In
    # quoted-printable parts "=" is written "=3D", so "=_" can never occur in them.
    copy.set_boundary(f"=_publisher_{_tag(digest.id + ' ' + recipient.email, 24)}")
    return copy.as_bytes()


def html(digest: Outgoing, url: str) -> str:
    """The HTML part with ``url`` as the reader's link, escaped for an attribute (& -> &amp;)."""
    return digest.personal(digest.html, str(escape(url)))


def text(digest: Outgoing, url: str) -> str:
    return digest.personal(digest.text, url)


def guard_braces_html(html_part: str) -> str:
    """Article text must not become template code for a provider that renders the body as a
    template (listmonk: Go templates; Buttondown: Django): ``{`` and ``}`` as HTML entities read
    the same and are not template syntax."""
    return html_part.replace("{", "&#123;").replace("}", "&#125;")


def guard_braces_text(text_part: str) -> str:
    """The same for a plain-text part, which has no entities: a zero-width space splits ``{{``
    and ``{%`` (and ``}}``, ``%}``) so that no template engine sees them."""
    for pair in ("{{", "{%", "}}", "%}", "{#", "#}"):
        text_part = text_part.replace(pair, pair[0] + "\u200b" + pair[1])
    return text_part


def message_id(digest_message_id: str, address: str) -> str:
    """``<digest-id.HASH@domain>``: one per reader, the same on every resend."""
    local, _, domain = digest_message_id.strip("<>").partition("@")
    return f"<{local}.{_tag(address.lower(), 12)}@{domain}>"


def _tag(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]
