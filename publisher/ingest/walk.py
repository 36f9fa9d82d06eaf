"""Which files to ingest, and each one's article key, at a few system calls a file.

Folders are walked with ``os.scandir`` (whose entries know their type without a ``stat``), in
the order ``sorted(folder.rglob("*"))`` gives, and like it without entering symlinked folders.
A file's key is its resolved path under the articles folder without suffix; for a file that is
no symlink, in a folder reached without symlinks, that is the folder's resolved path plus the
names walked, so only the walked-from folder is resolved, once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from publisher.errors import IngestError


class Source(NamedTuple):
    path: Path
    key: str


def source_files(
    paths: Iterable[Path], articles_dir: Path, suffixes: Iterable[str], errors: list[IngestError]
) -> Iterator[Source]:
    """Files as given, and article files found under folders (sorted, hidden ones skipped).

    A broken symlink with an article's name is yielded too, so that it is reported, not skipped.
    A path that does not exist goes to ``errors``.
    """
    anchor = articles_dir.resolve()
    wanted = frozenset(suffixes)
    for path in paths:
        if path.is_dir():
            yield from _walk(path, path.resolve(), anchor, wanted)
        elif path.exists() or path.is_symlink():
            yield Source(path, article_key(path, anchor))
        else:
            errors.append(IngestError(str(path), "no such file or folder"))


def article_key(path: Path, anchor: Path) -> str:
    """The article's permanent identity: its path under the articles folder, without suffix.

    ``anchor`` is the articles folder, resolved.
    """
    try:
        relative = path.resolve().relative_to(anchor)
    except ValueError:
        return path.stem
    return relative.with_suffix("").as_posix()


def _relative(resolved: Path, anchor: Path) -> PurePosixPath | None:
    try:
        return PurePosixPath(resolved.relative_to(anchor).as_posix())
    except ValueError:
        return None


def _walk(folder: Path, resolved: Path, anchor: Path, wanted: frozenset[str]) -> Iterator[Source]:
    """``resolved``: ``folder`` with symlinks resolved."""
    under = _relative(resolved, anchor)  # None: outside the articles folder
    try:
        with os.scandir(folder) as found:
            entries = sorted(found, key=lambda entry: entry.name)
    except PermissionError:  # as rglob does
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(folder / entry.name, resolved / entry.name, anchor, wanted)
            continue
        stem, suffix = os.path.splitext(entry.name)
        if suffix.lower() not in wanted:
            continue
        path = folder / entry.name
        if entry.is_symlink():
            if entry.is_file() or not os.path.exists(entry.path):  # a file, or dangling: reported
                yield Source(path, article_key(path, anchor))
        elif entry.is_file(follow_symlinks=False):
            key = (under / stem).as_posix() if under is not None else stem
            yield Source(path, key)
