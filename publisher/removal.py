"""`publisher articles remove`: take articles out of the feeds and future digests, then
rebuild the feeds so that they are gone from them at once.

The raw source stays in the store; an unchanged source file does not bring the article back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from publisher.config import Config
from publisher.jobs import PublishResult, publish_feeds
from publisher.store import Store


@dataclass(frozen=True)
class Removal:
    removed: list[str]  # ids, in the order given
    missing: list[str]  # ids of no live article
    published: PublishResult

    @property
    def ok(self) -> bool:
        return not self.missing and self.published.ok


def remove_articles(config: Config, store: Store, keys: Iterable[str], when: datetime) -> Removal:
    removed: list[str] = []
    missing: list[str] = []
    for key in keys:
        (removed if store.remove_article(key, when) else missing).append(key)
    return Removal(removed=removed, missing=missing, published=publish_feeds(config, store))
