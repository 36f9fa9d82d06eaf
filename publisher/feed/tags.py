"""Which file each tag's feed is: ``tags/<slug>.xml``, one per tag, remembered in the store.

Two tags are the same tag when they are equal ignoring case ("Economy", "economy"). Any other
two tags get two feeds, however alike they slugify: ``a/b``, ``a b`` and ``a-b``; ``C++`` and
``c-plus-plus``; ``Café`` and ``cafe``; ``<b>`` and ``b``. A tag gets the plain slug
(``economy``, ``machine-learning``) when no other tag holds it; otherwise, and when the slug
is empty (``..``, ``🚀``), the slug and a short digest of the tag (``a-b-1f3c9a2e``,
``tag-6d2f0b1c``). Names are remembered (``feed_tag_slugs``): a tag that arrives later never
takes a feed's name from a tag that had it. Among tags met at once, the one spelled as its own
slug goes first, then the one used earliest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

from slugify import slugify

from publisher.store import Tx, feeds


@lru_cache(maxsize=4096)
def plain_slug(tag: str) -> str:
    """The slug a tag's feed had before names were remembered: "C++" -> c-plus-plus."""
    return str(slugify(tag, max_length=80, replacements=[["+", "-plus-"], ["#", "-sharp-"]]))


def tag_key(tag: str) -> str:
    """What tells two tags apart: the tag case-folded, as a digest (any length fits a key)."""
    return hashlib.sha256(tag.casefold().encode("utf-8")).hexdigest()


class Names:
    """The remembered tag feed names, as one rebuild (or tag index sync) sees them."""

    def __init__(self, tx: Tx) -> None:
        rows = feeds.tag_names(tx)
        self.slugs: dict[str, str] = {row[0]: row[1] for row in rows}
        self.spelling: dict[str, str] = {row[1]: row[2] for row in rows}  # slug -> the tag as first met
        self.taken = set(self.slugs.values())

    def slug(self, tag: str) -> str | None:
        return self.slugs.get(tag_key(tag))

    def assign(self, tx: Tx, uses: Iterable[tuple[str, datetime]]) -> None:
        """Name the tags of ``uses`` (tag, the date of an article using it) that have none yet."""
        first: dict[str, tuple[str, datetime]] = {}
        for tag, when in uses:
            key = tag_key(tag)
            if key in self.slugs:
                continue
            if key not in first or when < first[key][1]:
                first[key] = (tag, when)
        order = sorted(
            first.items(), key=lambda item: (plain_slug(item[1][0]) != item[1][0].casefold(), item[1][1], item[1][0])
        )
        rows = []
        for key, (tag, _) in order:
            slug = self._free(tag, key)
            self.slugs[key] = slug
            self.taken.add(slug)
            self.spelling[slug] = tag
            rows.append({"tag_key": key, "tag": tag, "slug": slug})
        feeds.add_tag_names(tx, rows)

    def _free(self, tag: str, key: str) -> str:
        plain = plain_slug(tag)
        if plain and plain not in self.taken:
            return plain
        stem = (plain or "tag")[:60]
        for length in (8, 12, 16, 64):
            candidate = f"{stem}-{key[:length]}"
            if candidate not in self.taken:
                return candidate
        raise AssertionError("unreachable: a sha256 digest names one tag")
