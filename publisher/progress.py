"""How far long work has got (a digest sent in batches, a subscriber import), shown on stderr.

On a terminal: a rich progress bar, with any batch that was not accepted printed above it.
Otherwise (cron, a pipe, a log file): plain lines, one per batch, so the log tells how far a
send got and which batches need the operator. Either way the batches' own log records
(publisher.dispatch logs one per batch) are held back while the display shows them.
With ``--log-format json`` there is no display: those records, and a record every
ROWS_PER_LINE rows of an import, are the progress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from types import TracebackType

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from publisher import logs
from publisher.dispatch import BatchReport
from publisher.states import BatchState

ROWS_PER_LINE = 1000  # an import logs one line per this many rows when stderr is not a terminal
log = logging.getLogger("publisher.progress")


def batch_line(report: BatchReport) -> str:
    """``digest <id>: batch 3/10 (1000 recipients) accepted``, and why, if it was not."""
    people = f"{report.recipients} {'recipient' if report.recipients == 1 else 'recipients'}"
    state = report.state.replace("_", " ")
    line = f"digest {report.digest_id}: batch {report.number}/{report.total} ({people}) {state}"
    return line if report.state == BatchState.ACCEPTED or not report.detail else f"{line}: {report.detail}"


class Display:
    """A context manager; its :meth:`batch` and :meth:`rows` are the callbacks to hand on."""

    def __init__(self, console: Console | None = None, *, as_log: bool | None = None) -> None:
        """``as_log``: leave the batches to their log records (default: when the log is JSON)."""
        self.console = console or Console(stderr=True)
        self.as_log = logs.is_json() if as_log is None else as_log
        self.live = not self.as_log and self.console.is_terminal and not self.console.is_dumb_terminal
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._cleanup = ExitStack()

    def __enter__(self) -> Display:
        if not self.as_log:
            self._cleanup.enter_context(logs.batches_shown())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._cleanup.close()
        if self._bar is not None:
            self._bar.stop()

    def batch(self, report: BatchReport) -> None:
        """One batch done (``on_batch`` of :func:`publisher.dispatch.send_digest`)."""
        if self.as_log or report.total == 1:
            return  # one request is not long work, and the send's own message says how it went
        line = logs.redact(batch_line(report))  # the detail is a provider's words
        if not self.live:
            click.echo(line, err=True)
            return
        # Batches go in order, so the batch's number is how far the digest has got, also when
        # a resumed send skips the batches accepted earlier.
        bar = self._show(f"digest {report.digest_id}", report.number, report.total, "batches")
        if report.state != BatchState.ACCEPTED:
            bar.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def rows(self, label: str) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback for reading the rows of ``label`` (a file)."""

        def progress(done: int, total: int) -> None:
            if self.live:
                self._show(label, done, total, "rows")
            elif done % ROWS_PER_LINE == 0 or (done == total and total >= ROWS_PER_LINE):
                if self.as_log:
                    log.info("%s: %d/%d rows read", label, done, total, extra={"path": label})
                else:
                    click.echo(f"{label}: {done}/{total} rows read", err=True)

        return progress

    def _show(self, description: str, done: int, total: int, unit: str) -> Progress:
        if self._bar is None:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"),
                TimeRemainingColumn(),
                console=self.console,
                redirect_stdout=False,  # stdout may be piped; it is not the bar's
                redirect_stderr=False,
            )
            self._bar.start()
        if self._task is None:
            self._task = self._bar.add_task(description, total=total, completed=done, unit=unit)
        self._bar.update(self._task, description=description, completed=done, total=total)
        return self._bar
