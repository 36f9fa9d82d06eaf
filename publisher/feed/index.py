"""The store's side of an incremental feed rebuild: the tag index's rules, over the reads and
writes of :mod:`publisher.store.feeds` (which this re-exports under their long-standing names).

Each read takes an open transaction from :meth:`Store.transaction`, which translates
database errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from publisher.errors import StoreConflict
from publisher.feed import tags
from publisher.feed.model import clean_tags
from publisher.store import Store, feeds
from publisher.store.feeds import (
    TAGS_REV,
    Change,
    Head,
    Prepared,
    arrived,
    changes,
    contents,
    current_rev,
    dated,
    heads,
    load_build,
    newest,
    next_due,
    older,
    setting,
    stream_older,
    tag_slugs,
    tagged,
    tags_rev,
)

__all__ = [
    "TAGS_REV",
    "Change",
    "Head",
    "Prepared",
    "SlugsOf",
    "arrived",
    "changes",
    "contents",
    "current_rev",
    "dated",
    "forget_build",
    "heads",
    "load_build",
    "newest",
    "next_due",
    "older",
    "save_build",
    "save_contents",
    "setting",
    "stream_older",
    "sync_tags",
    "tag_slugs",
    "tagged",
    "tags_rev",
]

SlugsOf = Callable[["tags.Names", list[str]], dict[str, str]]


def sync_tags(store: Store, slugs_of: SlugsOf, *, full_after: int) -> None:
    """Bring article_tags up to the newest change: the changed articles' rows, or all of them
    when it was never built, the store went back in time, or more than ``full_after`` changed.

    ``slugs_of(names, tags)`` maps an article's tags to {slug: spelling}, with the remembered
    tag feed names (publisher.feed.tags), which this names first for tags that have none.
    """
    with store.transaction() as tx:
        done, upto = tags_rev(tx), current_rev(tx)
    if done == upto:
        return
    with store.transaction() as tx:
        feeds.lock_tags(tx)
        done, upto = tags_rev(tx), current_rev(tx)
        if done == upto:
            return
        names = tags.Names(tx)
        if done is None or done > upto or upto - done > full_after:
            feeds.clear_tags(tx)
            # every new tag named first, all at once: one order, however many chunks
            names.assign(tx, (use for rows in feeds.live_heads(tx) for use in _uses(rows)))
            for rows in feeds.live_heads(tx):
                feeds.insert_tags(tx, _tag_rows(rows, names, slugs_of))
        else:
            ids = {change.article_id for change in changes(tx, done, upto)}
            feeds.clear_tags(tx, ids)
            live = [head for head in heads(tx, ids) if head.live]
            names.assign(tx, _uses(live))
            feeds.insert_tags(tx, _tag_rows(live, names, slugs_of))
        feeds.set_tags_rev(tx, upto)


def _uses(rows: list[Head]) -> list[tuple[str, datetime]]:
    return [(tag, row.published) for row in rows for tag in clean_tags(row.tags)]


def _tag_rows(rows: list[Head], names: tags.Names, slugs_of: SlugsOf) -> list[tuple[int, str, str, datetime]]:
    return [(row.id, slug, tag, row.published) for row in rows for slug, tag in slugs_of(names, row.tags).items()]


def save_contents(store: Store, prepared: dict[int, Prepared]) -> None:
    """Keep prepared content for next time; a cache, so losing a race to another writer (or
    to an article's removal from the store) only means preparing it again."""
    try:
        with store.transaction() as tx:
            feeds.replace_contents(tx, prepared)
    except StoreConflict:
        pass


def save_build(store: Store, folder: str, seen: int | None, state: dict[str, Any]) -> bool:
    """Save ``state`` if no other rebuild saved since ``seen`` was read; otherwise forget the
    folder's state (the next rebuild starts from scratch) and return False."""
    data = json.dumps(state, separators=(",", ":"))
    try:
        with store.transaction() as tx:
            if feeds.put_build(tx, folder, seen, data):
                return True
    except StoreConflict:  # another rebuild saved the folder's first state meanwhile
        pass
    forget_build(store, folder)
    return False


def forget_build(store: Store, folder: str) -> None:
    with store.transaction() as tx:
        feeds.forget_build(tx, folder)
