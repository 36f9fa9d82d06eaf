"""Every error publisher raises on purpose, and what the operator should do about it.

    PublisherError                 base: the CLI catches this once, prints one line, exits
    ├── ConfigError                publisher.toml or the environment is wrong (exit 2)
    ├── IngestError                one source file cannot become an article (skipped, exit 1)
    ├── StoreError                 the database cannot be opened or migrated
    │   └── StoreRefused           the database refused one statement (a value, a trigger): that data's problem
    │       └── StoreConflict      a unique key or other constraint: someone else wrote it first
    ├── RenderError                a template failed to render the feed or the digest
    ├── FeedError                  the feeds could not be written (folder, disk); the digest still goes
    └── DeliveryError              the mailing endpoint did not accept a digest (kept pending)

Errors from lower layers (the database, jinja2, httpx, OSError) are translated into these at one
boundary each, with ``raise ... from exc``, so callers only ever catch this tree.
"""

from __future__ import annotations


class PublisherError(Exception):
    """Base class; ``str(error)`` is one line fit for the operator."""

    exit_code = 1


class ConfigError(PublisherError):
    """A setting is missing, has the wrong type or an impossible value."""

    exit_code = 2

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


class IngestError(PublisherError):
    """One file could not be read or holds no article; the other files go on."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class StoreError(PublisherError):
    """The store could not be reached, read or migrated."""


class StoreRefused(StoreError):
    """The database refused a statement (a constraint, a value, a trigger) rather than failing
    as a whole (connection lost, locked): the problem of the data written, not of the store."""


class StoreConflict(StoreRefused):
    """A write broke a unique key or another constraint: often another process wrote the same first."""


class RenderError(PublisherError):
    """A template could not be rendered (syntax error, undefined variable)."""


class FeedError(PublisherError):
    """The feed documents could not be written: the folder is missing its rights, the disk is full."""


class DeliveryError(PublisherError):
    """The mailing endpoint refused a digest or could not be reached.

    ``retryable`` tells whether the same request may succeed later (timeouts, 5xx, 429),
    ``retry_after`` how many seconds the endpoint asked us to wait first, if it said, and
    ``maybe_delivered`` whether the endpoint may have accepted it anyway (a timeout or a lost
    connection after the request went out): such a request is in doubt.
    """

    def __init__(
        self, message: str, *, retryable: bool, retry_after: float | None = None, maybe_delivered: bool = False
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.maybe_delivered = maybe_delivered
