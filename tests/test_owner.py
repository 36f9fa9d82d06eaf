"""publisher.owner: telling a sender that was killed from one that is alive, with real processes."""

from __future__ import annotations

import signal
import subprocess
import sys

from publisher import owner


def test_this_process_is_not_gone() -> None:
    assert not owner.is_gone(owner.me())


def test_a_killed_process_is_gone() -> None:
    code = "from publisher import owner; print(owner.me(), flush=True); input()"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    claim = child.stdout.readline().strip()
    assert not owner.is_gone(claim)  # alive, waiting for input

    child.send_signal(signal.SIGKILL)
    child.wait()

    assert owner.is_gone(claim)


def test_a_reused_pid_is_not_taken_for_the_old_process() -> None:
    host, pid, start = owner.me().split(":")
    assert owner.is_gone(f"{host}:{pid}:{int(start) + 1}")  # this pid, but started at another time


def test_a_claim_from_another_host_or_none_at_all_is_never_taken_over() -> None:
    _, pid, start = owner.me().split(":")
    assert not owner.is_gone(f"another-host.example:{pid}:{start}")
    assert not owner.is_gone(f"another-host.example:999999:{start}")
    assert not owner.is_gone(None)
    assert not owner.is_gone("")
