"""Which files to ingest, and each one's article key, at a few system calls a file.

Folders are walked with ``os.scandir`` (whose entries know their type without a ``stat``), in
the order ``sorted(folder.rglob("*"))`` gives. A file's key is its path under the articles
folder without suffix; for a file that is no symlink, in a folder reached without symlinks,
that is the folder's resolved path plus the names walked, so only the walked-from folder is
resolved, once.

Symlinks cost a ``realpath`` each, and only they do. One whose target leaves the articles
folder (a file or a folder) is refused by name, or ``articles/passwd.txt -> /etc/passwd``
would publish /etc/passwd; ``[articles] follow_symlinks`` allows them, keyed by the link's own
path. Inside the folder, a symlinked file is read under its target's key, and a symlinked
folder is not entered: its files are walked where they are. A dangling link is read, wherever
it points, so that it is reported as broken.

Keys are checked here, so that every store takes or refuses the same files: at most as long as
``articles.key`` (PostgreSQL enforces its width, SQLite would not) and valid UTF-8 (a file
name that is not cannot be stored by either).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from publisher.errors import IngestError
from publisher.store.schema import ARTICLE_KEY_CHARS

KEY_CHARS: int = ARTICLE_KEY_CHARS
LEAVES = "symlink leaves the articles folder; set [articles] follow_symlinks = true to allow"
NOT_UTF8 = "name is not valid UTF-8, which the store cannot hold; rename it"


class Source(NamedTuple):
    path: Path
    key: str
    # For a symlink: its target as the walk resolved it. The reader opens the target (or, for
    # any other file, the path) without following a symlink, so that a file swapped for a
    # symlink after the walk (``-> /etc/passwd``) is refused, not read.
    target: Path | None = None
    # For a file the walk reached through real folders only: the articles folder and the names
    # from it to the file. The reader opens them one by one without following a symlink, so
    # that a folder on the way swapped for a symlink after the walk is refused too.
    anchor: Path | None = None
    beneath: tuple[str, ...] = ()


def source_files(
    paths: Iterable[Path],
    articles_dir: Path,
    suffixes: Iterable[str],
    errors: list[IngestError],
    *,
    follow_symlinks: bool = False,
) -> Iterator[Source]:
    """Files as given, and article files found under folders (sorted, hidden ones skipped).

    A broken symlink with an article's name is yielded too, so that it is reported, not skipped.
    A path that does not exist, a symlink that leaves the articles folder (unless
    ``follow_symlinks``), or a file whose key the store cannot hold goes to ``errors``.
    """
    walk = _Walk(articles_dir.resolve(), frozenset(suffixes), errors, follow_symlinks)
    for path in paths:
        yield from walk.named(path)


def article_key(path: Path, anchor: Path) -> str:
    """The article's permanent identity: its path under the articles folder, without suffix.

    ``anchor`` is the articles folder, resolved.
    """
    try:
        relative = path.resolve().relative_to(anchor)
    except ValueError:
        return path.stem
    return relative.with_suffix("").as_posix()


def _relative(resolved: str, anchor: Path) -> PurePosixPath | None:
    try:
        return PurePosixPath(Path(resolved).relative_to(anchor).as_posix())
    except ValueError:
        return None


def _utf8(text: str) -> bool:
    """False for a name with bytes that are not UTF-8 (decoded by Python as lone surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _under(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or inside it (both resolved)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _Walk:
    def __init__(self, anchor: Path, wanted: frozenset[str], errors: list[IngestError], follow: bool) -> None:
        self.anchor = anchor
        self.root = str(anchor)
        self.wanted = wanted
        self.errors = errors
        self.follow = follow

    def refuse(self, path: Path, reason: str) -> None:
        self.errors.append(IngestError(str(path), reason))

    def named(self, path: Path) -> Iterator[Source]:
        """A file or folder given by name (``[articles] dir`` itself, for ``publisher run``)."""
        if not _utf8(str(path)):
            self.refuse(path, NOT_UTF8)
            return
        real = os.path.realpath(path)
        leaves = path.is_symlink() and os.path.exists(real) and not _under(real, self.root)  # dangling: reported
        if leaves and not self.follow:
            self.refuse(path, LEAVES)
            return
        # A followed link is keyed by where it is, not by where it leads.
        lexical = _relative(os.path.abspath(path), self.anchor) if leaves else None
        if path.is_dir():
            prefix = lexical if leaves else _relative(real, self.anchor)
            yield from self.folder(path, real, prefix, ())
        elif path.exists() or path.is_symlink():
            key = lexical.with_suffix("").as_posix() if lexical is not None else article_key(path, self.anchor)
            if source := self.file(path, key, Path(real) if path.is_symlink() else None):
                yield source
        else:
            self.refuse(path, "no such file or folder")

    def file(self, path: Path, key: str, target: Path | None = None, beneath: tuple[str, ...] = ()) -> Source | None:
        """The file, or None if the store cannot hold its key (then refused by name)."""
        if len(key) > KEY_CHARS:
            self.refuse(
                path,
                f"path too long: {len(key)} characters under the articles folder without the suffix, "
                f"at most {KEY_CHARS}; shorten the folder or file names",
            )
            return None
        if not _utf8(key):
            self.refuse(path, NOT_UTF8)
            return None
        return Source(path, key, target, self.anchor if beneath else None, beneath)

    def folder(
        self, folder: Path, resolved: str, prefix: PurePosixPath | None, followed: tuple[str, ...]
    ) -> Iterator[Source]:
        """``resolved``: ``folder`` with symlinks resolved; ``prefix``: its key (None: keys are
        file stems); ``followed``: where the walk was when it followed each symlinked folder."""
        try:
            with os.scandir(folder) as found:
                entries = sorted(found, key=lambda entry: entry.name)
        except PermissionError:  # as rglob does
            return
        wanted = self.wanted
        # Reached from the articles folder through real folders only (no symlink on the way).
        beneath = prefix.parts if prefix is not None and not followed else None
        if beneath is not None and resolved != os.path.join(self.root, *beneath):
            beneath = None
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            if entry.is_symlink():
                yield from self.link(entry, folder, resolved, prefix, followed)
            elif entry.is_dir(follow_symlinks=False):
                if not _utf8(name):
                    self.refuse(folder / name, NOT_UTF8)
                    continue
                inner = resolved + os.sep + name
                sub = prefix / name if prefix is not None else _relative(inner, self.anchor)  # None: outside
                yield from self.folder(folder / name, inner, sub, followed)
            else:
                stem, suffix = os.path.splitext(name)
                if suffix.lower() in wanted and entry.is_file(follow_symlinks=False):
                    key = (prefix / stem).as_posix() if prefix is not None else stem
                    if len(key) <= KEY_CHARS and key.isascii():  # the usual case, checked inline
                        if beneath is not None:
                            yield Source(folder / name, key, None, self.anchor, (*beneath, name))
                        else:
                            yield Source(folder / name, key)
                    elif source := self.file(folder / name, key, None, (*beneath, name) if beneath is not None else ()):
                        yield source

    def link(
        self,
        entry: os.DirEntry[str],
        folder: Path,
        resolved: str,
        prefix: PurePosixPath | None,
        followed: tuple[str, ...],
    ) -> Iterator[Source]:
        path = folder / entry.name
        is_dir = entry.is_dir()  # False for a dangling link: reported as a file if it has an article's name
        stem, suffix = os.path.splitext(entry.name)
        if not is_dir and suffix.lower() not in self.wanted:
            return
        real = os.path.realpath(entry.path)
        # A dangling link is no way out: it is read, and reported as broken.
        outside = not _under(real, self.root) and (is_dir or os.path.exists(real))
        if outside and not self.follow:
            self.refuse(path, LEAVES)
        elif not is_dir:
            if not outside:
                key = article_key(path, self.anchor)
            else:  # followed: keyed by the link's own path
                key = (prefix / stem).as_posix() if prefix is not None else stem
            if source := self.file(path, key, Path(real)):
                yield source
        elif not outside:
            return  # a folder within: its files are walked where they are
        elif any(_under(place, real) for place in (*followed, resolved)):
            self.refuse(path, "symlink loop: it leads back to a folder being walked; skipped")
        else:
            sub = prefix / entry.name if prefix is not None else None
            yield from self.folder(path, real, sub, (*followed, resolved))
