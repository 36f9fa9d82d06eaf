"""The outbox: each message written as an .eml file, as a mail client would read it.

A digest for the ``to`` addresses is one file, ``<digest id>.eml``, byte for byte the frozen
message. For a local list each reader gets their own copy in ``<digest id>/``, with their own
unsubscribe link, named after the address (:func:`file_name`): every byte outside
``A-Z a-z 0-9 . - @`` is written ``%XX`` (so ``a+b@x`` is ``a%2Bb@x.eml``), which no two
addresses share and :func:`address_of` reads back. One copy can never overwrite another's.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote_to_bytes

from publisher.config import OutboxConfig
from publisher.delivery import Envelope, Receipt, personal
from publisher.errors import DeliveryError
from publisher.files import write_atomic


def build(settings: OutboxConfig, *, personal_copies: bool) -> OutboxMailer:
    return OutboxMailer(settings.outbox_dir, personal_copies=personal_copies)


class OutboxMailer:
    name = "outbox"
    idempotent = True  # files are named by digest and address: a second write replaces the same copy
    batch_size = 1000
    owns_list = False

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
            self._write(folder / file_name(recipient.email), personal.message(envelope, recipient))
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


_KEPT = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-@")
_LONGEST = 200  # bytes of one path segment, well under every file system's 255


def file_name(address: str) -> str:
    """The reader's copy's path under ``<digest id>/``: the address, every byte of its UTF-8
    outside ``A-Z a-z 0-9 . - @`` (and a leading dot) as ``%XX``, then ``.eml``.

    One address, one name; two addresses, two names (``%`` itself is encoded), whatever the
    file system's case rules: addresses that differ only in case are one reader already. A
    name longer than a path segment may be (a long address, most of it encoded) is cut into
    folders of 200 bytes, each ending in ``+`` (a byte the encoding never leaves, so no folder
    is ever named as a file is): ``address_of`` joins them again.
    """
    encoded = "".join(chr(b) if b in _KEPT else f"%{b:02X}" for b in address.encode("utf-8"))
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]  # never a hidden file, never "." or ".."
    segments = [encoded[i : i + _LONGEST] for i in range(0, len(encoded), _LONGEST)] or ["%"]
    return "+/".join(segments) + ".eml"


def address_of(name: str) -> str:
    """The address that :func:`file_name` turned into ``name``."""
    return unquote_to_bytes(name.removesuffix(".eml").replace("+/", "")).decode("utf-8")
