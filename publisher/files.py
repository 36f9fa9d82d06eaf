"""The one way publisher writes a file: whole or not at all.

A write goes through a temp file ``.NAME.XXXXXXXX.tmp`` beside the target, which its writer
holds locked (flock) until it is renamed into place. A writer killed on the way (SIGKILL, power
loss) leaves it behind; :func:`remove_orphans` takes such files away once their lock is free,
since a lock goes with its process however it ends.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from stat import S_ISREG

# tempfile.mkstemp(prefix=".NAME.", suffix=".tmp"): 8 random characters in between
_TEMP = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")
# The lock is taken just after the temp file is created: for that instant a live writer's file
# is unlocked too, so only files untouched this long are taken for orphans. The files' times are
# on the file system's clock, hence time.time() and not publisher.clock.
ORPHAN_SECONDS = 60.0


def write_atomic(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` through a temp file and ``os.replace``.

    Returns False, touching nothing, when the file already holds exactly ``data``: an
    unchanged feed keeps its mtime, so HTTP servers keep answering 304 Not Modified.
    """
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            with suppress(OSError):  # a file system without locks: the age alone protects it
                fcntl.flock(fd, fcntl.LOCK_EX)  # held until the file has its name: see remove_orphans
            handle.write(data)
            handle.flush()
            os.fsync(fd)
            os.fchmod(fd, 0o644)
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def remove_orphans(folder: Path, owned: Callable[[str], bool]) -> list[str]:
    """Remove the temp files that :func:`write_atomic` left in ``folder`` for a file named as
    ``owned`` accepts, and whose writer is gone (unlocked, and untouched for ORPHAN_SECONDS).

    Returns the names removed. A file it cannot open, lock or remove is left alone.
    """
    try:
        names = os.listdir(folder)  # names only: the cheapest look at a folder of thousands of feeds
    except (FileNotFoundError, NotADirectoryError):
        return []
    candidates = [
        name
        for name in names
        if name.endswith(".tmp") and (match := _TEMP.fullmatch(name)) is not None and owned(match["name"])
    ]
    removed: list[str] = []
    before = time.time() - ORPHAN_SECONDS
    for name in candidates:
        path = os.path.join(folder, name)
        try:
            # O_RDWR: an exclusive flock over NFS needs a file open for writing.
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue  # gone (its writer renamed it), a symlink, or not ours to open
        try:
            stat = os.fstat(fd)
            if not S_ISREG(stat.st_mode) or stat.st_mtime > before:
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError (BlockingIOError): still being written
            os.unlink(path)
            removed.append(name)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed
