"""Hand a digest to a mailing service: one request per batch of recipients.

The provider modules each speak one service's API (outbox, webhook, mailgun, sendgrid,
postmark, ses, resend, listmonk, buttondown). Each ``send`` takes an :class:`Envelope` (the
digest, who it goes to, and the batch's idempotency key) and returns a :class:`Receipt` once
the service accepted it, or raises :class:`~publisher.errors.DeliveryError`: retryable or not,
and ``maybe_delivered`` when the request may have arrived (a timeout after sending). Nothing
here touches the store: :mod:`publisher.dispatch` sends batch by batch and keeps the journal
(:mod:`publisher.journal`). Each provider is built from its own ``[mailer]`` settings (one
dataclass per provider in :mod:`publisher.config`), never from the whole Config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from publisher.config import (
    ButtondownConfig,
    Config,
    ListmonkConfig,
    MailgunConfig,
    OutboxConfig,
    PostmarkConfig,
    ResendConfig,
    SendgridConfig,
    SesConfig,
    WebhookConfig,
)
from publisher.message import Outgoing


class Recipient(NamedTuple):
    """A tuple, not a dataclass: a send makes one for every reader."""

    email: str
    unsubscribe_url: str  # personal (local list) or the [digest] unsubscribe_url


@dataclass(frozen=True)
class Envelope:
    """One request's worth: the digest, its recipients, and the key that identifies the request.

    ``recipients`` is empty when the provider owns the list (listmonk, Buttondown).
    """

    digest: Outgoing
    key: str
    recipients: tuple[Recipient, ...]
    test: bool = False  # `publisher digest test`: only these addresses, marked as a test


@dataclass(frozen=True)
class Receipt:
    provider_id: str | None
    detail: str
    # Addresses the service refused inside an accepted request (Postmark answers per message).
    rejected: dict[str, str] = field(default_factory=dict)


class Mailer(Protocol):
    name: str
    # True when the same envelope sent twice cannot be delivered twice (the service dedupes on
    # the key), so a request interrupted by a crash or a timeout may simply be repeated.
    idempotent: bool
    # Most recipients in one request; 0 when the service sends to its own list.
    batch_size: int
    # The service keeps the subscriber list (listmonk, Buttondown): requests carry no recipients.
    owns_list: bool

    def send(self, envelope: Envelope) -> Receipt: ...

    def prepare(self) -> None:
        """Load ahead what the first request will need; never raises."""

    def close(self) -> None:
        """Let go of connections kept between requests; the mailer may still be used after."""


def build_mailer(config: Config) -> Mailer:
    """The configured mailer; raises ConfigError when a secret it needs is missing."""
    mailer = _build(config)
    if config.mailer.batch_size and not mailer.owns_list:  # the operator may ask for smaller requests
        mailer.batch_size = min(mailer.batch_size, config.mailer.batch_size)
    return mailer


def _build(config: Config) -> Mailer:
    """Each provider's module, handed its own settings; imported here because each imports
    the types above."""
    settings = config.mailer
    match settings:
        case OutboxConfig():
            from publisher.delivery import outbox

            return outbox.build(settings, personal_copies=config.digest.recipients == "subscribers")
        case WebhookConfig():
            from publisher.delivery import webhook

            return webhook.build(settings)
        case MailgunConfig():
            from publisher.delivery import mailgun

            return mailgun.build(settings)
        case SendgridConfig():
            from publisher.delivery import sendgrid

            return sendgrid.build(settings)
        case PostmarkConfig():
            from publisher.delivery import postmark

            return postmark.build(settings)
        case SesConfig():
            from publisher.delivery import ses

            return ses.build(settings)
        case ResendConfig():
            from publisher.delivery import resend

            return resend.build(settings)
        case ListmonkConfig():
            from publisher.delivery import listmonk

            return listmonk.build(settings)
        case ButtondownConfig():
            from publisher.delivery import buttondown

            return buttondown.build(settings)
