"""The articles the config names, into the store: ``[articles] dir`` each cycle, or the paths
given to ``publisher ingest``. Apart from publisher.jobs so that ``ingest`` does not load the
feed, the digest and the mailers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from publisher.config import Config
from publisher.errors import IngestError
from publisher.ingest import IngestResult, ingest
from publisher.store import Store


def ingest_articles(config: Config, store: Store, when: datetime) -> IngestResult:
    """Pick up new or changed files from ``articles.dir``, then new or edited items of the
    remote feeds ([[sources]]): a missing folder or a failing feed stops neither."""
    from publisher.sources import fetch_into  # httpx and feedparser: not for `publisher ingest`

    if config.articles_dir.is_dir():
        files = ingest_files(config, store, [config.articles_dir], when)
    else:
        files = IngestResult()
        files.errors.append(IngestError(str(config.articles_dir), "articles folder not found ([articles] dir)"))
    return fetch_into(files, config, store, when)


def ingest_files(config: Config, store: Store, paths: Sequence[Path], when: datetime) -> IngestResult:
    """Store the articles in ``paths`` (files, or folders of them), as [articles] says."""
    return ingest(
        store,
        paths,
        articles_dir=config.articles_dir,
        tz=config.site.timezone,
        now=when,
        follow_symlinks=config.follow_symlinks,
        max_bytes=config.max_bytes,
    )
