"""Readers' topics: what each chose, and a digest planned so that each gets only theirs.

A reader's choice is a set of topic keys (their tags, case folded) for one digest (the name
:data:`DEFAULT_DIGEST` while a site has one); no choice means everything. When a digest is
planned (:func:`plan`), each distinct choice selects some of the digest's articles: readers
whose choices select the same articles are one group, planned into batches of their own; a
group that selects all of them gets the digest's own message, byte for byte, and a choice that
selects none gets no email. Every other group's copy is rendered then and frozen with the
batches, in one transaction, so that a retried batch carries the same bytes as it did the
first time: the journal stays exactly-once. When nobody has chosen, the plan is the journal's
own (journal.plan_subscribers), as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from publisher import journal, subscribers
from publisher.config import Config, DigestConfig
from publisher.digest import issue_url, outgoing, render
from publisher.message import Outgoing
from publisher.states import SubscriberState
from publisher.store import Article, Digest, Store
from publisher.store import preferences as table
from publisher.store.preferences import DEFAULT_DIGEST, Choice, Group
from publisher.store.send import SendStore

__all__ = ["DEFAULT_DIGEST", "Choice", "choice_of", "choose", "known_topics", "messages", "plan", "topic_key"]

MAX_TOPICS = 200  # a choice longer than this is refused: no page offers that many
# The choice of a whole digest that a reader opted into (one marked default = false). No tag is
# "*" in practice; a choice holding it selects every article.
EVERYTHING = "*"


def topic_key(tag: str) -> str:
    """What makes two tags one topic: case and surrounding space ignored."""
    return " ".join(tag.split()).casefold()


def known_topics(store: Store) -> dict[str, str]:
    """Topic key -> the tag as most articles spell it, for every tag of a live article."""
    spellings: dict[str, dict[str, int]] = {}
    for tags in table.tag_lists(store):
        for tag in tags:
            if tag.strip():
                counts = spellings.setdefault(topic_key(tag), {})
                counts[tag.strip()] = counts.get(tag.strip(), 0) + 1
    return {k: max(sorted(c), key=lambda t: c[t]) for k, c in sorted(spellings.items())}


def choose(store: Store, token: str, topics: Iterable[str] | None, now: datetime, digest: str = DEFAULT_DIGEST) -> bool:
    """Set the choice of whoever holds ``token`` (None: everything); False if nobody active does."""
    chosen: Choice = None if topics is None else tuple(sorted({topic_key(t) for t in topics if t.strip()}))
    if chosen is not None and len(chosen) > MAX_TOPICS:
        raise ValueError(f"at most {MAX_TOPICS} topics")
    return table.set_choice(store, token, chosen, now, digest)


def choice_of(store: Store, subscriber_id: int, digest: str = DEFAULT_DIGEST) -> Choice:
    """The reader's choice for ``digest``; None: everything."""
    return table.choice(store, subscriber_id, digest)


def selects(choice: Choice, article: Article) -> bool:
    return choice is None or EVERYTHING in choice or any(topic_key(tag) in choice for tag in article.tags)


def opt(store: Store, token: str, digest: str, wanted: bool, now: datetime) -> bool:
    """Whoever holds ``token`` gets digest ``digest`` (all of it) or not; False if nobody active does.

    With several digests a reader who never chose gets those marked ``default = true``; an
    opt-out is an empty choice (no topic: no email), an opt-in the choice of everything."""
    return table.set_choice(store, token, (EVERYTHING,) if wanted else (), now, digest)


def receives(choice: Choice, default: bool) -> bool:
    """Whether a reader with ``choice`` gets a digest: no choice, its ``default``; an empty one, no."""
    return default if choice is None else choice != ()


def anyone_receives(config: Config, store: Store) -> bool:
    """Whether a digest ``config.digest`` to the local list would reach anyone: an active
    reader who has not left it (one marked default), or who took it (one that is not)."""
    if not subscribers.any_active(store):
        return False
    left, took = table.chosen_by_active(store, config.digest.name)
    if not config.digest.default:
        return took > 0
    if not left:
        return True
    return subscribers.counts(store)[SubscriberState.ACTIVE] > left


def local_digests(config: Config) -> list[DigestConfig]:
    """The digests that go to the local list, which its readers may take or leave."""
    return [d for d in config.digests if d.recipients == "subscribers"]


def keep_digests(store: Store, token: str, subscriber_id: int, config: Config, wanted: set[str], now: datetime) -> None:
    """The reader gets the local digests named in ``wanted`` and no other: one they leave is
    an empty choice; one they take that they did not get is the whole of it (a topic choice
    they have for one they keep stays)."""
    for digest in local_digests(config):
        has = receives(choice_of(store, subscriber_id, digest.name), digest.default)
        if digest.name in wanted and not has:
            opt(store, token, digest.name, True, now)
        elif digest.name not in wanted and has:
            opt(store, token, digest.name, False, now)


def plan(config: Config, store: SendStore, digest_id: str, size: int, now: datetime) -> bool:
    """Write the batches of ``digest_id`` for the local list, readers grouped by what they chose."""
    name, default = config.digest.name, config.digest.default
    if default and not table.anyone_chose(store, name):
        return journal.plan_subscribers(store, digest_id, size, now)
    digest = store.digest(digest_id)
    assert digest is not None
    articles = store.digest_articles(digest_id)

    def split(choices: set[Choice]) -> dict[Choice, Group | None]:
        return _split(config, digest, articles, choices)

    return table.plan(store, digest_id, size, now, split, name, unchosen=None if default else ())


def _split(config: Config, digest: Digest, articles: list[Article], choices: set[Choice]) -> dict[Choice, Group | None]:
    """Each choice's group: the articles it selects, and the copy that holds them."""
    selected = {choice: tuple(a.id for a in articles if selects(choice, a)) for choice in choices}
    everything = tuple(a.id for a in articles)
    # The digest's own first, then the copies by the articles they hold: a stable order.
    distinct = sorted({ids for ids in selected.values() if ids}, key=lambda ids: (ids != everything, ids))
    groups: dict[tuple[int, ...], Group] = {}
    for order, ids in enumerate(distinct):
        # Any choice that selects these articles names the copy; the smallest, to be stable.
        full = ids == everything
        topics = [] if full else min(list(c) for c, chosen in selected.items() if chosen == ids and c is not None)
        chosen = [a for a in articles if a.id in ids]
        message = None if full else _copy(config, digest, chosen)
        groups[ids] = Group(key=ids, order=order, message=message, topics=topics)
    return {choice: groups.get(ids) for choice, ids in selected.items()}  # none selected: no email


def _copy(config: Config, digest: Digest, articles: list[Article]) -> bytes:
    """The digest rendered with ``articles`` alone: same id, date and web copy as the digest."""
    return render(
        config, articles, digest_id=digest.id, now=digest.created_at, view_url=issue_url(config, digest.id)
    ).message


def messages(config: Config, store: SendStore, digest: Digest) -> Mapping[int, Outgoing]:
    """The copy each batch of ``digest`` carries, by batch number, where it is not the digest's own."""
    by_number: dict[int, Outgoing] = {}
    variants = table.variants(store, digest.id)
    articles = store.digest_articles(digest.id) if variants else []
    for first, last, topics, raw in variants:
        held = {a.key for a in articles if selects(tuple(topics), a)}
        copy = outgoing(config, store, replace(digest, message=raw))
        copy = replace(copy, articles=[a for a in copy.articles if a["id"] in held])
        for number in range(first, last + 1):
            by_number[number] = copy
    return by_number
