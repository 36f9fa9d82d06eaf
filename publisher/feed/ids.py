"""The permanent id each feed entry carries, remembered in the store (``feed_ids``).

An id, once published, never changes: readers use it to tell a new entry from one they have
shown. So each article's id is made once, the first time a rebuild meets the article, stored
by the article's key, and read back ever after.

- A new id depends only on the site's host and the article's key (its source path):
  ``urn:uuid:`` + UUID 5 of ``<site url>#<key>``. A store rebuilt from the same files, on
  another day or another backend, makes the same ids.
- Articles a store held before ids were remembered keep the form they were published with,
  ``tag:<host>,<first seen date>:<key>`` (the migration notes when that was).
- A store that remembers no id yet (a new store, a move to PostgreSQL) first adopts the ids
  the feeds folder already publishes, so moving a store never changes an id as long as the
  feeds folder stays: see NOTES-feeds.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from lxml import etree

from publisher.config import SiteConfig
from publisher.errors import StoreConflict
from publisher.store import Store, Tx, feeds

_CHUNK = 2000
IDS_REV = "feed_ids_rev"  # the newest article change by which every article had its id
_ATOM_ID = "{http://www.w3.org/2005/Atom}id"
_ATOM_ENTRY = "{http://www.w3.org/2005/Atom}entry"


def new_id(site: SiteConfig, key: str) -> str:
    """The id of an article met for the first time: its site and key, nothing else."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{site.url}#{key}')}"


def legacy_id(site: SiteConfig, key: str, first_seen: datetime) -> str:
    """The id a store made before ids were remembered (publisher.links.entry_id)."""
    return f"tag:{_host(site.url)},{first_seen:%Y-%m-%d}:{quote(key, safe='/')}"


def _host(url: str) -> str:
    return urlsplit(url).hostname or "localhost"


def remember(store: Store, site: SiteConfig, feeds_dir: Path) -> int:
    """Give every article without a remembered id one; returns how many were given.

    Its own transaction, before the rebuild's: two rebuilds at once may both try, and the
    second insert of a key loses (the first id stays).
    """
    with store.transaction() as tx:
        upto, done = feeds.current_rev(tx), feeds.setting(tx, IDS_REV)
        if done is not None and int(done) == upto:
            return 0  # no article written since every one had its id: a rebuild costs what changed
        since = int(done) if done is not None and int(done) < upto else None
        missing = feeds.without_id(tx, since, upto)
        known, legacy = feeds.known_ids(tx)
    before = datetime.fromisoformat(legacy) if legacy else None
    published = published_ids(feeds_dir, site) if not known else {}
    rows = []
    for key, first_seen in missing:
        if key in published:
            entry_id = published[key]
        elif before is not None and first_seen < before:
            entry_id = legacy_id(site, key, first_seen)
        else:
            entry_id = new_id(site, key)
        rows.append({"key": key, "entry_id": entry_id})
    if not rows:
        _done(store, upto)
        return 0
    for start in range(0, len(rows), _CHUNK):
        try:
            with store.transaction() as tx:
                feeds.insert_ids(tx, rows[start : start + _CHUNK])
        except StoreConflict:  # another rebuild remembered some meanwhile: theirs stay
            for row in rows[start : start + _CHUNK]:
                try:
                    with store.transaction() as tx:
                        feeds.insert_ids(tx, [row])
                except StoreConflict:
                    continue
    _done(store, upto)
    return len(rows)


def _done(store: Store, upto: int) -> None:
    """Every article written up to change ``upto`` has its id."""
    store.put_setting(IDS_REV, str(upto))


def lookup(tx: Tx, keys: Iterable[str]) -> dict[str, str]:
    """The remembered ids of these article keys."""
    return feeds.lookup_ids(tx, keys)


def published_ids(feeds_dir: Path, site: SiteConfig) -> dict[str, str]:
    """Article key -> the id the feeds folder publishes for it, where the id names its key
    (the first-seen form) and this site's host: what a new store adopts."""
    prefix = f"tag:{_host(site.url)},"
    found: dict[str, str] = {}
    for path in _documents(feeds_dir):
        for entry_id in _entry_ids(path):
            if entry_id.startswith(prefix):
                _, _, quoted = entry_id[len(prefix) :].partition(":")
                if quoted:
                    found.setdefault(unquote(quoted), entry_id)
    return found


def _documents(feeds_dir: Path) -> Iterator[Path]:
    main = feeds_dir / "atom.xml"
    if main.is_file():
        yield main
    archive = feeds_dir / "archive"
    if archive.is_dir():
        yield from sorted(path for path in archive.glob("*.xml") if not path.name.startswith("."))


def _entry_ids(path: Path) -> Iterator[str]:
    try:
        for _, element in etree.iterparse(str(path), tag=_ATOM_ENTRY, huge_tree=True, resolve_entities=False):
            entry_id = element.findtext(_ATOM_ID)
            if entry_id:
                yield entry_id.strip()
            element.clear()
    except (OSError, etree.XMLSyntaxError):  # a document we cannot read adopts nothing
        return
