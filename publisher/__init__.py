"""publisher: a store of articles -> an Atom feed and an email digest, on a schedule.

The data flows through the modules in this order:

    ingest (files -> articles) -> store (SQLite/PostgreSQL) -> feed (Atom) / digest (email)
    -> delivery (outbox, webhook, Mailgun), driven by jobs (one cycle) and scheduler (daemon).

cli is a thin layer over those; errors holds the exception tree.
"""

__version__ = "0.1.0"
