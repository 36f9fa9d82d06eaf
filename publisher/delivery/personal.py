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

from publisher.delivery import Envelope, Recipient

_REPLACED = ("To", "Message-ID", "List-Unsubscribe")


def message(envelope: Envelope, recipient: Recipient) -> bytes:
    digest = envelope.digest
    frozen = email.message_from_bytes(digest.message, policy=email.policy.SMTP)
    copy = EmailMessage(policy=email.policy.SMTP)
    for name, value in frozen.items():
        if name not in _REPLACED and not name.lower().startswith(("content-", "mime-")):
            copy[name] = value
    copy["To"] = recipient.email
    copy["Message-ID"] = message_id(digest.headers["Message-ID"], recipient.email)
    copy["List-Unsubscribe"] = f"<{recipient.unsubscribe_url}>"
    text = digest.personal(digest.text, recipient.unsubscribe_url)
    copy.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    copy.add_alternative(
        digest.personal(digest.html, recipient.unsubscribe_url), subtype="html", charset="utf-8", cte="quoted-printable"
    )
    return copy.as_bytes()


def message_id(digest_message_id: str, address: str) -> str:
    """``<digest-id.HASH@domain>``: one per reader, the same on every resend."""
    local, _, domain = digest_message_id.strip("<>").partition("@")
    tag = hashlib.sha256(address.lower().encode()).hexdigest()[:12]
    return f"<{local}.{tag}@{domain}>"
