"""Who holds a claim on a digest, and whether that process is gone.

A sender writes ``host:pid:start`` into the digest it claims (start: the process's start time
from /proc, so a reused pid is not taken for the old process). Another process on the same
host that finds the digest ``sending`` can then tell a live sender (leave it alone) from one
killed mid-send (take over at once, instead of waiting out the lease). From another host only
the lease can tell.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def me() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def is_gone(owner: str | None) -> bool:
    """True only when ``owner`` ran on this host and that process no longer runs."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    return start not in ("", "?") and _start_time(pid) != start  # the pid was reused


def _start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "?"  # no /proc (macOS): the pid alone must do
    # Field 22, counted after the command name, which is in parentheses and may hold spaces.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else "?"
