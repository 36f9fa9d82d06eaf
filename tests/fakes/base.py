"""What the fakes of providers that deliver a copy per reader share (Postmark, Resend, SendGrid).

A fake is a dataclass that declares ``delivered`` and ``failures`` and mixes in
:class:`Deliveries` for keeping copies by address and queueing the errors a test asks for.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from tests.endpoint import Answer


@dataclass(frozen=True)
class Copy:
    """One message as its reader receives it."""

    to: str
    subject: str
    text: str
    html: str
    headers: dict[str, str]


CopyT = TypeVar("CopyT", bound=Copy)


class Deliveries(Generic[CopyT]):
    """The copies a fake delivered, by reader, and the failures queued for its next requests."""

    delivered: dict[str, list[CopyT]]  # by lower-cased address
    failures: deque[Answer]  # answers for the next requests, before the fake looks at them

    def copies(self, address: str) -> list[CopyT]:
        return self.delivered.get(address.lower(), [])

    def deliver(self, copy: CopyT) -> None:
        self.delivered.setdefault(copy.to.lower(), []).append(copy)

    def queue_failure(self, answer: Answer, retry_after: str | None) -> None:
        """Give ``answer`` to the next request, with a Retry-After header when one is given."""
        status, body, headers = answer
        if retry_after is not None:
            headers = {**headers, "Retry-After": retry_after}
        self.failures.append((status, body, headers))
