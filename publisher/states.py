"""The named states of what the store keeps: each is stored as its value, so naming them
changed no data.

    DigestState       a digest: pending --claim--> sending --> sent | incomplete --operator--> closed
                      (sending back to pending when a run stops with batches still to send)
    BatchState        one request of a digest: see publisher.journal
    SubscriberState   a local subscriber: pending (signed up, not confirmed yet) --confirm--> active,
                      active <--> unsubscribed; bounced or complained when a provider reported a
                      hard bounce (or too many soft ones) or a spam complaint (publisher.bounces):
                      suppressed like an unsubscribe, never mailed again
    MailEventKind     what a provider reported about one address (publisher.bounces)
    SaveStatus        what saving a source file did to its article
    SendState         what one send did to the digest (dispatch.SendResult; never stored)
"""

from __future__ import annotations

from enum import StrEnum


class DigestState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    INCOMPLETE = "incomplete"  # some batches failed or are in doubt: needs the operator
    CLOSED = "closed"  # the operator said an incomplete digest is done with


class BatchState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    ACCEPTED = "accepted"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"


class SubscriberState(StrEnum):
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    PENDING = "pending"  # signed up through `publisher serve`, confirmation not clicked yet: gets no digest
    BOUNCED = "bounced"  # suppressed: a hard bounce, or [bounces] soft_bounces soft ones in soft_window
    COMPLAINED = "complained"  # suppressed: the reader marked a digest as spam


class MailEventKind(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"  # a passing failure (mailbox full, greylisted): counted, not fatal alone
    COMPLAINT = "complaint"  # marked as spam (a feedback loop report)


class SaveStatus(StrEnum):
    NEW = "new"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class SendState(StrEnum):
    NOTHING = "nothing"  # nothing new, nothing to resume: no email
    HELD = "held"  # the digest waits (a hold is in force)
    SENT = "sent"
    INCOMPLETE = "incomplete"  # some batches failed or are in doubt: needs the operator
    PENDING = "pending"  # a batch waits for the next run
    BUSY = "busy"  # another process is sending it
    FAILED = "failed"  # a test send that did not go out
    QUEUED = "queued"  # a cluster's batches queued as jobs (publisher.cluster)
