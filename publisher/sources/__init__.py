"""Remote feeds ([[sources]]) -> articles in the store, beside the article files.

Each source is fetched when due (``interval`` after its last success; sooner, with backoff,
after a failure): :mod:`.fetch` gets it, :mod:`.parse` reads it, :mod:`.identity` tells which
items are new, edited or known, :mod:`.articles` makes the articles, and the store keeps them
like any other (``feed:<name>/...`` keys, raw versions kept). An edited item updates its
article; the digest takes an article once, so it is not mailed again.

The first successful fetch takes only items newer than ``backlog`` (an undated item is not
taken then); the others are remembered as seen, so that later fetches do not take them either.

A failing source is one line on stderr and is retried after 1, 2, 4... minutes (at most its
interval, or an hour); the other sources, the feeds and the digest go on. Once it has failed
for ``alert_after``, every run reports it as an error (exit 1) until it works again. Its state
is in the store (publisher.store.remote) and ``publisher sources list`` shows it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import httpx

from publisher.config import Config, SourceConfig
from publisher.errors import IngestError, StoreError, StoreRefused
from publisher.http import one_line, printable_url
from publisher.ingest import IngestResult
from publisher.sources import articles, fetch, identity, report
from publisher.sources.fetch import FetchError, Pacer
from publisher.sources.parse import Item, ParseError, parse
from publisher.states import SaveStatus
from publisher.store import NewArticle, Store
from publisher.store import remote as state
from publisher.store.remote import RemoteSource, SeenItem

log = logging.getLogger("publisher.sources")

FIRST_RETRY = timedelta(minutes=1)
LEASE = timedelta(minutes=15)  # a run that died mid-fetch holds its source this long


@dataclass
class SourcesResult:
    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[IngestError] = field(default_factory=list)  # sources failing for longer than alert_after
    failing: list[str] = field(default_factory=list)  # one line each: failing, not reported as errors yet
    fetched: list[str] = field(default_factory=list)  # names of the sources fetched this run


def fetch_sources(config: Config, store: Store, now: datetime) -> SourcesResult:
    """Fetch every configured source that is due; store its new and edited items."""
    result = SourcesResult()
    if not config.sources:
        return result
    with fetch.client() as http:
        for source in config.sources:
            try:
                _one(config, store, http, source, now, result)
            except StoreError:
                raise  # the store is everyone's: the run stops, as for the files
            except Exception as exc:  # a library's surprise on one hostile feed: the others go on
                log.debug("source %s", source.name, exc_info=True)
                reason = f"cannot read it ({type(exc).__name__}: {one_line(str(exc))[:200]}); tried again later"
                result.errors.append(IngestError(f"[[sources]] {source.name}", reason))
    return result


def fetch_into(result: IngestResult, config: Config, store: Store, now: datetime) -> IngestResult:
    """:func:`fetch_sources`, its articles and errors added to ``result`` (the files' ingest)."""
    fetched = fetch_sources(config, store, now)
    result.new += fetched.new
    result.updated += fetched.updated
    result.unchanged += fetched.unchanged
    result.errors += fetched.errors
    return result


def retry_in(failures: int, interval: timedelta) -> timedelta:
    """The wait after the ``failures``-th failure in a row: 1, 2, 4... minutes, capped."""
    cap = max(interval, timedelta(hours=1))
    wait: timedelta = FIRST_RETRY * 2 ** min(max(failures - 1, 0), 20)
    return min(wait, cap)


def _one(
    config: Config, store: Store, http: httpx.Client, source: SourceConfig, now: datetime, result: SourcesResult
) -> None:
    known_state = state.source(store, source.name, source.url)
    if known_state.next_fetch is not None and known_state.next_fetch > now:
        _report(source, known_state, now, result)  # still failing: still said
        return
    if not state.claim(store, source.name, known_state.next_fetch, now + LEASE):
        return  # another run (cron beside the daemon) is fetching it right now
    pacer = Pacer(source.page_delay)
    try:
        pacer.wait(known_state.url)
        got = fetch.get(
            http,
            known_state.url,
            timeout=source.timeout,
            max_bytes=source.max_bytes,
            etag=known_state.etag,
            last_modified=known_state.last_modified,
        )
        items = [] if got.not_modified else parse(got.body, got.url, got.content_type)
    except (FetchError, ParseError) as exc:
        error = str(exc) if isinstance(exc, FetchError) else f"{printable_url(known_state.url)}: {exc}"
        retry = now + retry_in(known_state.failures + 1, source.interval)
        _report(source, state.record_failure(store, source.name, error, now, retry), now, result)
        return
    result.fetched.append(source.name)
    url = got.moved_to or known_state.url
    if got.moved_to and got.moved_to != known_state.url:
        log.warning(
            "source %s: moved permanently to %s; fetched from there from now on", source.name, printable_url(url)
        )
    seen: list[SeenItem] = []
    refused = len(result.errors)
    if not got.not_modified:
        seen = _take(config, store, http, pacer, source, known_state, items, now, result)
    # An item the store refused is tried again on the next fetch: the old validators make it a 200.
    fresh = not got.not_modified and len(result.errors) == refused
    state.record_success(
        store,
        source.name,
        url=url,
        etag=got.etag if fresh else known_state.etag,
        last_modified=got.last_modified if fresh else known_state.last_modified,
        now=now,
        next_fetch=now + source.interval,
        items=seen,
    )


def _take(
    config: Config,
    store: Store,
    http: httpx.Client,
    pacer: Pacer,
    source: SourceConfig,
    known_state: RemoteSource,
    items: list[Item],
    now: datetime,
    result: SourcesResult,
) -> list[SeenItem]:
    """Store the new and edited items; the identities of every item, to record."""
    first_fetch = known_state.first_success is None
    cutoff = now - source.backlog
    known = state.known_items(store, source.name)
    keys = {k.article_key for k in known if k.article_key is not None}
    pending: list[tuple[NewArticle, SeenItem]] = []
    seen: list[SeenItem] = []
    for found in identity.match(items, known):
        item, ident, old = found.item, found.identity, found.known
        key = old.article_key if old is not None else None
        record = SeenItem(
            id=old.id if old is not None else None,
            article_key=key,
            guid=item.guid,
            guid_key=ident.guid_key,
            link_key=ident.link_key,
            title_key=ident.title_key,
            content_key=ident.content_key,
            entry_hash=ident.entry_hash,
        )
        if old is not None and (key is None or old.entry_hash == ident.entry_hash):
            # Known and unchanged, or seen before and not taken: recorded only if it is known
            # by other identities now (a new GUID or link).
            if (old.guid_key, old.link_key, old.title_key, old.content_key, old.entry_hash) != (
                ident.guid_key,
                ident.link_key,
                ident.title_key,
                ident.content_key,
                ident.entry_hash,
            ):
                seen.append(record)
            if key is not None:
                result.unchanged.append(key)
            continue
        if old is None and first_fetch and not _recent(item, cutoff):
            seen.append(record)  # older than the backlog: remembered, not taken
            continue
        if key is None:
            key = _free_key(source.name, ident, keys)
            keys.add(key)
        page = _page(http, pacer, source, item) if source.full_text and not item.has_content else None
        article = articles.new_article(source.name, key, item, tags=source.tags, tz=config.site.timezone, page=page)
        pending.append((article, replace(record, article_key=key)))
    for (article, record), status in zip(pending, _save(store, [a for a, _ in pending], now), strict=True):
        if status is None:
            result.errors.append(
                IngestError(article.source_path, "cannot store the item (see the log); tried again next fetch")
            )
            continue
        seen.append(record)
        {SaveStatus.NEW: result.new, SaveStatus.UPDATED: result.updated, SaveStatus.UNCHANGED: result.unchanged}[
            status
        ].append(article.key)
    return seen


def _recent(item: Item, cutoff: datetime) -> bool:
    when = item.published or item.updated
    return when is not None and when >= cutoff


def _free_key(source: str, ident: identity.Identity, taken: set[str]) -> str:
    first = ident.guid_key or ident.link_key or ident.content_key
    key, n = articles.article_key(source, first), 1
    while key in taken:
        n += 1
        key = articles.article_key(source, f"{first}-{n}")
    return key


def _page(http: httpx.Client, pacer: Pacer, source: SourceConfig, item: Item) -> tuple[str, bytes] | None:
    """The item's article page, or None (then the feed's summary stands) when it cannot be had."""
    if not item.link:
        return None
    pacer.wait(item.link)
    try:
        got = fetch.get(http, item.link, timeout=source.timeout, max_bytes=source.max_bytes, accept=fetch.PAGE_ACCEPT)
    except FetchError as exc:
        log.warning("source %s: article page not fetched, the feed's summary kept: %s", source.name, exc)
        return None
    return got.url, got.body


def _save(store: Store, batch: list[NewArticle], now: datetime) -> list[SaveStatus | None]:
    """Save ``batch`` in one transaction; if the store refuses it, one by one (None: refused)."""
    try:
        return list(store.save_articles(batch, now))
    except StoreRefused:
        statuses: list[SaveStatus | None] = []
        for article in batch:
            try:
                statuses.append(store.save_article(article, now))
            except StoreRefused as exc:
                log.error("source item %s: cannot store it: %s", article.source_path, str(exc).splitlines()[0])
                statuses.append(None)
        return statuses


def _report(source: SourceConfig, known: RemoteSource, now: datetime, result: SourcesResult) -> None:
    """A failing source: an error once it has failed for alert_after, else one warning line."""
    said = report.failing(source, known, now)
    if said is None:
        return
    alarm, line = said
    if alarm:
        result.errors.append(IngestError(f"[[sources]] {source.name}", line))
    else:
        result.failing.append(f"source {source.name}: {line}")
        log.warning("source %s: %s", source.name, line)


overview = report.overview
