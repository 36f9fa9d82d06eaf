"""Source files -> articles in the store.

:func:`ingest` takes files and folders and reads each file on its own (see
:mod:`publisher.ingest.formats`). A file that cannot become an article is reported as an
:class:`IngestError` in the result; the other files are still stored.

Cost grows with what changed. A file at the path, size and mtime (st_mtime_ns) recorded when
it was last read is unchanged without being read (rsync's quick check; a file modified in the
seconds before the scan is not trusted so). Any other file is read and hashed, and only a
new hash is parsed. Parsed articles are saved in batches of :data:`BATCH`, one transaction
each: a crash loses at most the batch in flight, which the next run ingests again. A batch
the store refuses is saved again one article at a time, so one bad article loses no other.
Runs that overlap (cron beside the daemon) take turns batch by batch: each save decides new or
updated, and picks free slugs, from what the runs before it committed (``store._lock_articles``).
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from stat import S_ISREG
from zoneinfo import ZoneInfo

from slugify import slugify

from publisher.config import ARTICLE_MAX_BYTES
from publisher.errors import IngestError, StoreRefused
from publisher.ingest.formats import SUFFIXES, Draft, read
from publisher.ingest.walk import Source, source_files
from publisher.states import SaveStatus
from publisher.store import NewArticle, SourceState, Store

SUMMARY_CHARS = 280
BATCH = 200  # articles a transaction: few commits, little held in memory
# A file modified this close to the scan may be modified again within the same mtime tick
# without its size changing ("racily clean", as git calls it): its stat is not trusted.
RACY_NS = 2_000_000_000


@dataclass
class IngestResult:
    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[IngestError] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"ingest: {len(self.new)} new, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.errors)} failed"
        )


def ingest(
    store: Store,
    paths: Iterable[Path],
    *,
    articles_dir: Path,
    tz: ZoneInfo,
    now: datetime,
    batch: int = BATCH,
    follow_symlinks: bool = False,
    max_bytes: int = ARTICLE_MAX_BYTES,
) -> IngestResult:
    """Store every article file under ``paths``; ``articles_dir`` anchors the article keys.

    ``follow_symlinks``: ``[articles] follow_symlinks`` (see :mod:`publisher.ingest.walk`);
    ``max_bytes``: ``[articles] max_bytes``, a bigger file is refused by name.
    """
    result = IngestResult()
    known = store.source_states()
    trusted_before = time.time_ns() - RACY_NS
    seen: dict[str, Path] = {}
    pending: list[NewArticle] = []
    touched: list[SourceState] = []
    for source in source_files(paths, articles_dir, SUFFIXES, result.errors, follow_symlinks=follow_symlinks):
        path, key = source.path, source.key
        if key in seen:
            result.errors.append(IngestError(str(path), f"same article name as {seen[key]}; rename one of them"))
            continue
        seen[key] = path
        try:
            article = _changed_article(source, known.get(key), tz, trusted_before, touched, max_bytes)
        except IngestError as exc:
            result.errors.append(exc)
            continue
        if article is None:
            result.unchanged.append(key)
        else:
            pending.append(article)
        if len(pending) >= batch:
            _save(store, pending, now, result)
            pending = []
        if len(touched) >= batch:
            store.record_source_stats(touched)
            touched = []
    _save(store, pending, now, result)
    if touched:
        store.record_source_stats(touched)
    return result


def _save(store: Store, batch: list[NewArticle], now: datetime, result: IngestResult) -> None:
    """Save ``batch`` in one transaction; if the store refuses it, article by article."""
    statuses: list[SaveStatus | None]  # None: this article failed
    try:
        statuses = list(store.save_articles(batch, now))
    except StoreRefused:  # one article's problem: the others go in one by one
        statuses = []
        for article in batch:
            try:
                statuses.append(store.save_article(article, now))
            except StoreRefused as exc:
                reason = str(exc).splitlines()[0]
                result.errors.append(IngestError(article.source_path, f"cannot store the article: {reason}"))
                statuses.append(None)
    saved = {SaveStatus.NEW: result.new, SaveStatus.UPDATED: result.updated, SaveStatus.UNCHANGED: result.unchanged}
    for article, status in zip(batch, statuses, strict=True):
        if status is not None:
            saved[status].append(article.key)


def _changed_article(
    source: Source,
    known: SourceState | None,
    tz: ZoneInfo,
    trusted_before: int,
    touched: list[SourceState],
    max_bytes: int,
) -> NewArticle | None:
    """The article in ``source`` if the file is new or changed; None when it is unchanged.

    An unchanged file whose stat differs from the recorded one goes to ``touched``.
    """
    path, key = source.path, source.key
    try:
        stat: os.stat_result | None = os.stat(path)
    except OSError:
        stat = None  # reading reports it
    if stat is not None and stat.st_size > max_bytes:  # even if unchanged: max_bytes may have been lowered
        raise IngestError(str(path), _too_big(stat.st_size, max_bytes))
    trusted = stat is not None and stat.st_mtime_ns < trusted_before
    size, mtime_ns = (stat.st_size, stat.st_mtime_ns) if stat is not None and trusted else (None, None)
    found = (str(path), size, mtime_ns)
    recorded = (known.source_path, known.size, known.mtime_ns) if known is not None else None
    if size is not None and found == recorded:
        return None
    raw = read_source(source, max_bytes)
    content_hash = hashlib.sha256(raw).hexdigest()
    if known is not None and known.content_hash == content_hash:
        if found != recorded:
            touched.append(SourceState(known.article_id, key, content_hash, str(path), size, mtime_ns))
        return None
    try:
        draft = read(path, raw, tz)
    except ValueError as exc:
        raise IngestError(str(path), str(exc)) from exc
    return NewArticle(
        key=key,
        # Bounded both ways: articles.slug is String(200), which PostgreSQL enforces and SQLite not.
        slug=slugify(draft.slug or draft.title, max_length=80, word_boundary=True)
        or slugify(key, max_length=80, word_boundary=True)
        or "article",
        title=draft.title,
        summary=_summary(draft),
        body_html=draft.body.html,
        body_text=draft.body.text,
        author=draft.author,
        tags=draft.tags,
        format=draft.format,
        source_path=str(path),
        content_hash=content_hash,
        raw=raw,
        published=draft.published,
        explicit_slug=bool(draft.slug),
        source_size=size,
        source_mtime_ns=mtime_ns,
        draft=draft.draft,
        meta=draft.meta,
    )


def read_source(source: Source, max_bytes: int) -> bytes:
    """The file's bytes, at most ``max_bytes`` of them (a bigger file is refused, having read
    ``max_bytes + 1``); a FIFO, device or socket is refused, never waited on; and so is a file
    that became a symlink after the walk found it (the walk has vetted every symlink it yields).
    """
    path = source.path
    try:
        fd = _open_source(source)
        with open(fd, "rb") as handle:
            stat = os.fstat(fd)
            if not S_ISREG(stat.st_mode):
                raise IngestError(str(path), "not a regular file (a FIFO, device or socket); only files are read")
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        if path.is_symlink() and not path.exists():
            raise IngestError(str(path), f"cannot read the file (broken symlink to {path.readlink()})") from exc
        if exc.errno == errno.ELOOP:
            reason = "the file was replaced by a symlink while being ingested; not followed, run again"
            raise IngestError(str(path), reason) from exc
        raise IngestError(str(path), f"cannot read the file ({exc.strerror or exc})") from exc
    if len(raw) > max_bytes:  # it grew since the stat: the stat's size may be below the truth
        raise IngestError(str(path), _too_big(max(stat.st_size, len(raw)), max_bytes))
    return raw


def _open_source(source: Source) -> int:
    """A read-only descriptor of the source file, opened without following a symlink: the file
    itself, and every folder from the articles folder down to it when the walk went that way."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW  # O_NONBLOCK: a FIFO with no writer never opens
    if source.anchor is None or not source.beneath:
        return os.open(source.target or source.path, flags)
    folder = os.open(source.anchor, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in source.beneath[:-1]:
            try:
                inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                reason = f"its folder {name!r} was replaced by a symlink while being ingested; not followed, run again"
                raise IngestError(str(source.path), reason) from exc
            os.close(folder)
            folder = inner
        return os.open(source.beneath[-1], flags, dir_fd=folder)
    finally:
        os.close(folder)


def _too_big(size: int, max_bytes: int) -> str:
    shown, limit = _bytes(size), _bytes(max_bytes)
    if shown == limit:  # 5,000,001 bytes is "5 MB" too
        shown, limit = f"{size:,} bytes", f"{max_bytes:,} bytes"
    return f"{shown}, over [articles] max_bytes ({limit}); raise it or split the article"


def _bytes(size: int) -> str:
    """Bytes as an operator reads them: 1.07 GB, 212 MB, 5 MB, 1.5 MB, 800 kB."""
    for unit, scale in (("GB", 1_000_000_000), ("MB", 1_000_000), ("kB", 1_000)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"
    return f"{size} bytes"


def _summary(draft: Draft) -> str:
    """The front matter's summary, else the first paragraph cut at a word near 280 chars."""
    if draft.summary:
        return draft.summary
    first = next((p for p in draft.body.paragraphs if not p.startswith("- ")), "") or draft.body.text
    first = " ".join(first.split())
    if len(first) <= SUMMARY_CHARS:
        return first
    cut = first[:SUMMARY_CHARS].rsplit(" ", 1)[0]
    return cut.rstrip(",;:.") + "…"
