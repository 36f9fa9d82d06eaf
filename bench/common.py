"""What every benchmark reports, and the ways it measures.

A benchmark module (``bench/ingest.py``, ``bench/feeds.py``, ...) has ``run(quick: bool) ->
Report``: a list of :class:`Figure`, each publisher's cost beside a floor measured in the same
run, plus any :class:`Series` for the scaling plot. ``python -m bench`` runs them all, prints one
table, and writes ``bench/results.json`` and ``bench/scaling.png``.

Ratios, not seconds, compare between machines: the machines are shared and noisy. CPU time is
used where wall time is noisy; wall time where waiting is the point (a send to a slow API).
A benchmark never fails on a figure; it fails only when it cannot measure (the bench is broken).
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    """One measurement beside its floor: ``value / floor`` is the ratio that counts."""

    name: str  # "ingest 10,000 files, fresh store"
    value: float  # publisher's cost (or throughput, with higher_is_better)
    floor: float  # the floor's cost, measured in the same run
    unit: str  # "s CPU", "s wall", "MB", "req/s"
    target: float | None = None  # the ratio to meet: at most (or, higher_is_better, at least)
    higher_is_better: bool = False
    floor_name: str = ""  # what the floor is: "read + one executemany of the raw bytes"
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.floor if self.floor else float("inf")

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ratio": self.ratio, "met": self.met}


@dataclass
class Series:
    """Cost against store size, for the scaling plot: points of (articles, seconds)."""

    name: str
    points: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)


@dataclass
class Cost:
    cpu: float = 0.0  # user + system seconds of this process (and its reaped children)
    wall: float = 0.0


@contextmanager
def measured() -> Iterator[Cost]:
    """CPU and wall seconds spent inside the block, by this process and children it waited for."""
    cost = Cost()
    before = _cpu()
    started = time.perf_counter()
    try:
        yield cost
    finally:
        cost.wall = time.perf_counter() - started
        cost.cpu = _cpu() - before


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def best_of(repeats: int, work: Callable[[], object], *, cpu: bool = True) -> float:
    """The smallest cost of ``repeats`` runs of ``work`` (the least disturbed by the machine)."""
    best = float("inf")
    for _ in range(repeats):
        with measured() as cost:
            work()
        best = min(best, cost.cpu if cpu else cost.wall)
    return best


def _peak_mb() -> float:
    """This process's peak RSS: VmHWM, which starts afresh at exec (ru_maxrss on Linux keeps the
    forking parent's peak), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(target: Callable[..., Any], args: tuple[Any, ...], out: Any) -> None:
    try:
        result = target(*args)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out.send(("ok", result, _peak_mb(), usage.ru_utime + usage.ru_stime))
    except BaseException as exc:  # reported to the parent, which raises it
        out.send(("error", repr(exc), 0.0, 0.0))
    finally:
        out.close()


def in_child(target: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """Run ``target(*args)`` in a fresh process: (its result, its peak RSS in MB, its CPU seconds).

    A fresh process, so that the peak memory is this work's alone. ``target`` must be a
    module-level function and its result picklable.
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(target, args, send))
    process.start()
    send.close()
    try:
        status, result, peak_mb, cpu = receive.recv()
    except EOFError:
        status, result, peak_mb, cpu = "error", "the child process died", 0.0, 0.0
    process.join()
    if status != "ok":
        raise RuntimeError(f"bench: {target.__name__} failed in its process: {result}")
    return result, peak_mb, cpu
