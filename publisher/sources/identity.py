"""Which stored item is each item of a feed: by GUID, else by link, else by content.

Feeds break their GUIDs: some have none (RSS 0.91), some change them all at once (a new
blog engine, a domain move, http -> https). Matched by GUID alone, such a feed would come back
as all new and flood the readers. So an item whose GUID is unknown is matched by its link, then
by a hash of its title and content, but only to a stored item that nothing else in this
document claims (its own GUID is not in the feed any more), and only by a link or content that
one item of the document has: two items sharing a link are told apart by their GUIDs. An item
with a GUID is matched by link only if its title is the same too (a new post in a feed whose
items all link to the home page is not an edit of the one before).

What is hashed is the item as the feed gives it (:meth:`publisher.sources.parse.Item.record`):
``entry_hash`` leaves the GUID out, so an item whose GUID alone changed is unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass

from publisher.sources.parse import Item
from publisher.store.remote import KnownItem


@dataclass(frozen=True)
class Identity:
    guid_key: str | None
    link_key: str | None
    title_key: str
    content_key: str
    entry_hash: str


@dataclass(frozen=True)
class Match:
    item: Item
    identity: Identity
    known: KnownItem | None  # None: an item never seen


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def identity(item: Item) -> Identity:
    record = item.record()
    del record["guid"]
    content = " ".join(f"{item.title}\n{item.content_html}".split())
    return Identity(
        guid_key=sha(item.guid) if item.guid else None,
        link_key=sha(item.link) if item.link else None,
        title_key=sha(" ".join(item.title.split())),
        content_key=sha(content),
        entry_hash=sha(json.dumps(record, sort_keys=True, ensure_ascii=False)),
    )


def match(items: list[Item], known: list[KnownItem]) -> list[Match]:
    """Each item of the document once (a repeated GUID keeps its first), with its stored item."""
    found: list[tuple[Item, Identity]] = []
    guids: set[str] = set()
    for item in items:
        ident = identity(item)
        if ident.guid_key is not None:
            if ident.guid_key in guids:
                continue
            guids.add(ident.guid_key)
        found.append((item, ident))
    by_guid = {k.guid_key: k for k in reversed(known) if k.guid_key is not None}  # the first stored wins
    claimed: set[int] = set()
    chosen: dict[int, KnownItem] = {}
    for i, (_, ident) in enumerate(found):
        hit = by_guid.get(ident.guid_key) if ident.guid_key is not None else None
        if hit is not None:
            chosen[i] = hit
            claimed.add(hit.id)
    # A stored item whose GUID the document still shows is that item's: never another's.
    free = [k for k in known if k.id not in claimed and (k.guid_key is None or k.guid_key not in guids)]
    for field in ("link_key", "content_key"):
        counts = Counter(getattr(ident, field) for _, ident in found)
        candidates: dict[str, KnownItem] = {}
        for k in reversed(free):
            value = getattr(k, field)
            if value is not None:
                candidates[value] = k
        for i, (_, ident) in enumerate(found):
            value = getattr(ident, field)
            if i in chosen or value is None or counts[value] != 1:
                continue
            hit = candidates.get(value)
            # By link, an item with a GUID must also keep its title: a feed whose every item links
            # to its home page would otherwise make each new post an "edit" of the last one.
            if hit is not None and field == "link_key" and ident.guid_key is not None:
                hit = hit if hit.title_key == ident.title_key else None
            if hit is not None and hit.id not in claimed:
                chosen[i] = hit
                claimed.add(hit.id)
    return [Match(item, ident, chosen.get(i)) for i, (item, ident) in enumerate(found)]
