"""Injected file-system faults for the chaos test, loaded by every ``publisher`` child process
whose PYTHONPATH starts with this folder (Python imports ``sitecustomize`` at start-up).

``PUBLISHER_CHAOS_FAULT=enospc:/some/folder`` makes every fsync of a file under that folder
fail with ENOSPC (the disk filled up while writing); ``erofs:/some/folder`` makes every
create, write-open, rename, mkdir and unlink there fail with EROFS (remounted read-only).
The faults are raised where the kernel would raise them: at the os calls, under the program.
"""

from __future__ import annotations

import errno
import os

_kind, _, _folder = os.environ.get("PUBLISHER_CHAOS_FAULT", "").partition(":")
_WRITE = os.O_CREAT | os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND


def _under(path: object) -> bool:
    try:
        full = os.path.abspath(os.fsdecode(path))
    except TypeError:
        return False
    return full == _folder or full.startswith(_folder + os.sep)


def _refuse(code: int, path: object) -> OSError:
    return OSError(code, os.strerror(code), os.fsdecode(path))


if _kind == "enospc" and _folder:
    _fsync = os.fsync

    def fsync(fd: int) -> None:
        if _under(os.readlink(f"/proc/self/fd/{fd}")):
            raise _refuse(errno.ENOSPC, os.readlink(f"/proc/self/fd/{fd}"))
        _fsync(fd)

    os.fsync = fsync

elif _kind == "erofs" and _folder:
    _open, _replace, _mkdir, _unlink = os.open, os.replace, os.mkdir, os.unlink

    def open_(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & _WRITE and _under(path):
            raise _refuse(errno.EROFS, path)
        return _open(path, flags, *args, **kwargs)

    def replace(src: object, dst: object, **kwargs: object) -> None:
        if _under(dst):
            raise _refuse(errno.EROFS, dst)
        _replace(src, dst, **kwargs)

    def mkdir(path: object, *args: object, **kwargs: object) -> None:
        if _under(path):
            raise _refuse(errno.EROFS, path)
        _mkdir(path, *args, **kwargs)

    def unlink(path: object, **kwargs: object) -> None:
        if _under(path):
            raise _refuse(errno.EROFS, path)
        _unlink(path, **kwargs)

    os.open, os.replace, os.mkdir, os.unlink = open_, replace, mkdir, unlink
