"""The message: the contract between rendering (publisher.digest) and delivery (publisher.delivery).

A digest is rendered once into an :class:`Outgoing`; the providers only read it, and put each
reader's own unsubscribe link where :data:`UNSUBSCRIBE_PLACEHOLDER` stands. :data:`POLICY` is the
email policy every message of a digest is written with (personal copies too), so that its headers
read back as they were set. Nothing here renders: delivery imports this, never the renderer.
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from email.header import Header
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.policy import Policy

# Stands for each reader's own unsubscribe link in a digest for a local list or a list the
# provider keeps: delivery puts the personal link (or the provider's merge tag) in its place.
# A URL, so that it survives escaping, CSS inlining and header folding unchanged.
UNSUBSCRIBE_PLACEHOLDER = "https://unsubscribe.invalid/personal-link"
# Stands for each reader's preferences link ([digest] preferences_url), only in a digest for a
# local list: made from their unsubscribe link by :meth:`Outgoing.personal` (same token, same
# signature, the preferences page's address).
PREFERENCES_PLACEHOLDER = "https://preferences.invalid/personal-link"


@dataclass(frozen=True)
class Outgoing:
    """A stored digest as the delivery providers need it."""

    id: str
    subject: str
    sender: str
    to: tuple[str, ...]
    html: str
    text: str
    headers: dict[str, str]
    message: bytes
    articles: list[dict[str, str]]
    preferences_url: str = ""  # [digest] preferences_url, when the digest links to it

    def personal(self, text: str, unsubscribe_url: str) -> str:
        """``text`` (a part or a header of this digest) with the reader's own unsubscribe link,
        and their preferences link where the digest has one."""
        text = text.replace(UNSUBSCRIBE_PLACEHOLDER, unsubscribe_url)
        if PREFERENCES_PLACEHOLDER in text:
            text = text.replace(PREFERENCES_PLACEHOLDER, preferences_link(self.preferences_url, unsubscribe_url))
        return text

    def unsubscribe_headers(self, unsubscribe_url: str) -> dict[str, str]:
        """List-Unsubscribe with the reader's link (and the mailto address, if any), and
        List-Unsubscribe-Post only when the digest has it: when the link unsubscribes the very
        reader it was sent to (RFC 8058)."""
        headers = {"List-Unsubscribe": self.personal(self.headers["List-Unsubscribe"], unsubscribe_url)}
        if "List-Unsubscribe-Post" in self.headers:
            headers["List-Unsubscribe-Post"] = self.headers["List-Unsubscribe-Post"]
        return headers


def preferences_link(base: str, unsubscribe_url: str) -> str:
    """``base`` with the query of the reader's signed unsubscribe link (escaped as that link is:
    ``&amp;`` in HTML). A link without one (a provider's merge tag) is given as it is: the reader
    still reaches a page that is theirs."""
    _, mark, query = unsubscribe_url.partition("?")
    if not mark or not base:
        return unsubscribe_url
    return base + ("&amp;" if "&amp;" in query and "?" in base else "&" if "?" in base else "?") + query


class _VerbatimHeader(UnstructuredHeader, BaseHeader):
    """A header written as it is, however long: ``List-Unsubscribe: <URL>`` (RFC 2369).

    Python folds a word too long for a 78-character line by RFC 2047-encoding it, and an
    encoded URL is no URL to a mail client's unsubscribe button. RFC 5322 allows 998.
    """

    def fold(self, *, policy: Policy) -> str:
        line = f"{self.name}: {self}"
        if line.isascii() and len(line) <= 998:
            return line + policy.linesep
        return super().fold(policy=policy)


class _LiteralHeader(UnstructuredHeader, BaseHeader):
    """Text that reads back exactly as it was set: the Subject.

    Python's folder sometimes ends a line with a space and starts the next with one too, so
    the subject reads back with two spaces (or a leading one); such a subject goes out as
    RFC 2047 words of its own instead, which always read back whole.
    """

    def fold(self, *, policy: Policy) -> str:
        folded = super().fold(policy=policy)
        name, value = email.policy.default.header_source_parse(folded.splitlines(keepends=True))
        again = email.policy.default.header_fetch_parse(name, value)
        if str(again) == str(self) and not again.defects:
            return folded
        encoded = Header(str(self), "utf-8", header_name=self.name).encode(linesep=policy.linesep)
        return f"{self.name}: {encoded}{policy.linesep}"


def _policy() -> Policy:
    registry = HeaderRegistry()
    registry.map_to_type("list-unsubscribe", _VerbatimHeader)
    registry.map_to_type("subject", _LiteralHeader)
    policy: Policy = email.policy.SMTP.clone(header_factory=registry)
    return policy


POLICY = _policy()  # for every message built from a digest (personal copies too)


def header_text(text: str) -> str:
    """``text`` fit for an unstructured header: one line, and literal.

    Any line break, NEL or U+2028 becomes a space. ``=?`` gets a WORD JOINER: Python reads
    ``=?utf-8?q?...?=`` in a value it is given as an RFC 2047 encoded word and decodes it,
    so an article title could smuggle ``=0D=0ABcc:`` in and have it written out as a header
    line of its own (CVE-2024-6923, fixed in later Python releases); readers would see the
    decoded text instead of the title anyway.
    """
    return " ".join(text.split()).replace("=?", "=\u2060?")
