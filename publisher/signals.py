"""SIGTERM and SIGINT as a request to stop, for the long-running commands (daemon, serve).

One mechanism for both. Not a Python handler doing the work: that runs only when the main
thread next runs Python code, and the daemon's main thread sleeps in ``Event.wait()``, a
lock that a signal the kernel hands to another thread (a scheduler thread) does not
interrupt; and ``Event.set()`` inside a handler could deadlock on the Event's own lock.
Instead the C-level handler writes the signal number to a pipe (``signal.set_wakeup_fd``),
from whichever thread got it, and a thread reading the pipe calls ``stop``.

The Python handler installed meanwhile does nothing: it replaces the default action (exit,
or KeyboardInterrupt). So a signal that uvicorn raises again once it has stopped (it puts
back the handlers it found, then re-raises so that the default action follows) only asks
a stopped server to stop, and ``serve`` returns normally.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_LEAVING = b"\0"  # written by us on the way out; a signal writes its (non-zero) number


@contextmanager
def stop_on_signals(stop: Callable[[], None], signums: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Call ``stop()`` (from a watcher thread) when one of ``signums`` arrives.

    The previous handlers and wakeup fd are restored on the way out. Off the main thread
    (a test running a command in a thread) nothing is installed: only the main thread gets signals.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)

    def watch() -> None:
        if os.read(read_fd, 1) != _LEAVING:
            stop()

    watcher = threading.Thread(target=watch, name="publisher-signals", daemon=True)
    watcher.start()
    previous = {signum: signal.signal(signum, _no_op_handler) for signum in signums}
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.write(write_fd, _LEAVING)
        watcher.join()
        os.close(read_fd)
        os.close(write_fd)


def _no_op_handler(signum: int, frame: FrameType | None) -> None:
    """Replaces the default action (exit, or KeyboardInterrupt); the wakeup fd does the work."""
