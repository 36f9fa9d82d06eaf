"""Source files -> articles in the store.

:func:`ingest` takes files and folders, reads each file on its own (see
:mod:`publisher.ingest.formats`) and saves it. A file that cannot become an article is
reported as an :class:`IngestError` in the result; the other files are still stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from slugify import slugify

from publisher.errors import IngestError
from publisher.ingest.formats import SUFFIXES, Draft, read
from publisher.store import NewArticle, Store

SUMMARY_CHARS = 280


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


def ingest(store: Store, paths: Iterable[Path], *, articles_dir: Path, tz: ZoneInfo, now: datetime) -> IngestResult:
    """Store every article file under ``paths``; ``articles_dir`` anchors the article keys."""
    result = IngestResult()
    seen: dict[str, Path] = {}
    for path in source_files(paths, result):
        key = article_key(path, articles_dir)
        if key in seen:
            result.errors.append(IngestError(str(path), f"same article name as {seen[key]}; rename one of them"))
            continue
        seen[key] = path
        try:
            status = store.save_article(_new_article(path, key, tz), now)
        except IngestError as exc:
            result.errors.append(exc)
            continue
        getattr(result, status).append(key)
    return result


def source_files(paths: Iterable[Path], result: IngestResult) -> Iterator[Path]:
    """Files as given, and article files found under folders (sorted, hidden ones skipped).

    A broken symlink with an article's name is yielded too, so that it is reported, not skipped.
    """
    for path in paths:
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in found.relative_to(path).parts)
                dangling = found.is_symlink() and not found.exists()
                if (found.is_file() or dangling) and not hidden and found.suffix.lower() in SUFFIXES:
                    yield found
        elif path.exists() or path.is_symlink():
            yield path
        else:
            result.errors.append(IngestError(str(path), "no such file or folder"))


def article_key(path: Path, articles_dir: Path) -> str:
    """The article's permanent identity: its path under the articles folder, without suffix."""
    try:
        relative = path.resolve().relative_to(articles_dir.resolve())
    except ValueError:
        return path.stem
    return relative.with_suffix("").as_posix()


def _new_article(path: Path, key: str, tz: ZoneInfo) -> NewArticle:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        if path.is_symlink() and not path.exists():
            raise IngestError(str(path), f"cannot read the file (broken symlink to {path.readlink()})") from exc
        raise IngestError(str(path), f"cannot read the file ({exc.strerror or exc})") from exc
    try:
        draft = read(path, raw, tz)
    except ValueError as exc:
        raise IngestError(str(path), str(exc)) from exc
    return NewArticle(
        key=key,
        slug=slugify(draft.slug or draft.title, max_length=80, word_boundary=True) or slugify(key) or "article",
        title=draft.title,
        summary=_summary(draft),
        body_html=draft.body.html,
        body_text=draft.body.text,
        author=draft.author,
        tags=draft.tags,
        format=draft.format,
        source_path=str(path),
        content_hash=hashlib.sha256(raw).hexdigest(),
        raw=raw,
        published=draft.published,
        explicit_slug=bool(draft.slug),
    )


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
