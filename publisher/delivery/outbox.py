"""The outbox: each message written as an .eml file, as a mail client would read it.

A digest for the ``to`` addresses is one file, ``<digest id>.eml``, byte for byte the frozen
message. For a local list each reader gets their own copy in ``<digest id>/``, named after
the address, with their own unsubscribe link.
"""

from __future__ import annotations

from pathlib import Path

from publisher.config import Config
from publisher.delivery import Envelope, Receipt, personal
from publisher.errors import DeliveryError
from publisher.files import write_atomic


def build(config: Config) -> OutboxMailer:
    return OutboxMailer(config.mailer.outbox_dir, personal_copies=config.digest.recipients == "subscribers")


class OutboxMailer:
    name = "outbox"
    idempotent = True  # files are named by digest and address: a second write replaces them
    batch_size = 1000

    def __init__(self, folder: Path, *, personal_copies: bool) -> None:
        self.dir = folder
        self.personal_copies = personal_copies

    def send(self, envelope: Envelope) -> Receipt:
        digest = envelope.digest
        if not self.personal_copies and not envelope.test:
            self._write(self.dir / f"{digest.id}.eml", digest.message)
            return Receipt(provider_id=None, detail=f"written to {self.dir / digest.id}.eml")
        folder = self.dir / digest.id
        for recipient in envelope.recipients:
            self._write(folder / f"{_file_name(recipient.email)}.eml", personal.message(envelope, recipient))
        count = len(envelope.recipients)
        noun = "message" if count == 1 else "messages"
        return Receipt(provider_id=None, detail=f"{count} {noun} written to {folder}")

    def prepare(self) -> None:
        pass  # nothing to load ahead

    def close(self) -> None:
        pass  # nothing kept open between messages

    def _write(self, path: Path, data: bytes) -> None:
        try:
            write_atomic(path, data)
        except OSError as exc:
            # The operator can fix a full disk or a missing folder: try again on the next run.
            raise DeliveryError(f"outbox: cannot write {path}: {exc.strerror or exc}", retryable=True) from exc


def _file_name(address: str) -> str:
    """The address as a safe file name: letters, digits, @ . _ - kept, anything else as _."""
    return "".join(c if c.isalnum() or c in "@._-+" else "_" for c in address.lower())[:200]
