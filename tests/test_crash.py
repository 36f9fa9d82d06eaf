"""SIGKILL in the middle of a send to 10,000 readers, again and again: nobody is mailed twice
by a provider that dedupes, at most once (plus the batches reported in doubt) by one that
cannot, and nothing is left pending.

The 10,000 readers go in through ``publisher subscribers import``; the digest goes out in 100
batches of 100 through ``publisher digest send``, a real process, to the fault server of
tests/faults.py in this process: through the webhook one request at a time, the webhook with
``[mailer] concurrency = 4`` (several batches in flight at each kill), and Mailgun. The send is
cut into equal stretches of batches and killed once in each (20 kills; ``CI`` set: 10): at a
random batch of the stretch, in a random phase of its request (``headers``: before the server
read the body; ``accepted``: taken but not answered; ``answered``: after the answer, before
the next request). The server stops the request in that phase and tells the test, which
kills the process then and there; then ``publisher digest resume`` continues, at once. The
seed is printed; PUBLISHER_CRASH_SEED replays it.

A killed process holds nothing: the next one continues at once. A live one, though slow, is
left alone (the last test).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from publisher import journal
from publisher.journal import ACCEPTED, IN_DOUBT, PENDING, SENDING
from tests.conftest import Project, child_process
from tests.faults import Action, FaultServer, pause

KEY = "crash-key-Vb6Ns1Qe8Ju3"
SECRET = "crash-secret-Hd5Wm2Xp7Kc4"
READERS = 10_000
BATCH = 100
KILLS = 10 if os.environ.get("CI") else 20
TIMEOUT = 30.0


def import_readers(project: Project) -> list[str]:
    addresses = [f"reader{n:05d}@example{n % 7}.org" for n in range(READERS)]
    path = project.root / "readers.csv"
    path.write_text("email\n" + "".join(f"{a}\n" for a in addresses), encoding="utf-8")
    result = project.cli("subscribers", "import", str(path))
    assert result.exit_code == 0, result.output
    return addresses


def batches(project: Project) -> list[journal.Batch]:
    store = project.open_store()
    try:
        digest = store.last_digest()
        return journal.batches_of(store, digest.id) if digest else []
    finally:
        store.close()


def publisher(project: Project, *args: str) -> list[str]:
    return [sys.executable, "-m", "publisher", "--config", str(project.config_path), *args]


def reached(trap: Action, child: subprocess.Popen[str], log: Path) -> None:
    """Wait until the server holds ``child``'s request at ``trap``; fail at once if the child ends first."""
    deadline = time.monotonic() + TIMEOUT
    # Waits on the trap, looking at the child in between: one that ended early fails now.
    while not trap.reached.wait(0.05):
        if child.poll() is not None or time.monotonic() > deadline:
            assert child.stdout is not None
            said = child.stdout.read() + log.read_text()
            pytest.fail(f"it ended (exit {child.returncode}) before that request: {said}")


def kill_at(command: list[str], project: Project, traps: list[Action], log: Path) -> None:
    """Run ``command`` until the server holds its request at the first of ``traps``, then SIGKILL it."""
    with child_process(command, cwd=project.root, stderr=log) as child:
        reached(traps[0], child, log)
        child.send_signal(signal.SIGKILL)
        child.wait(TIMEOUT)
        assert child.returncode == -signal.SIGKILL
    for trap in traps:
        trap.release.set()


@pytest.mark.parametrize(("provider", "concurrency"), [("webhook", 1), ("webhook", 4), ("mailgun", 1)])
def test_a_send_killed_again_and_again_mails_nobody_twice_and_leaves_nothing_pending(
    project: Project, provider: str, concurrency: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = int(os.environ.get("PUBLISHER_CRASH_SEED") or random.randrange(2**32))
    print(f"\ncrash test ({provider}, concurrency {concurrency}): PUBLISHER_CRASH_SEED={seed}")
    monkeypatch.setenv("PUBLISHER_MAILER_KEY", KEY)
    monkeypatch.setenv("PUBLISHER_UNSUBSCRIBE_SECRET", SECRET)
    started = time.monotonic()
    with FaultServer() as server:
        mailer: dict[str, object] = {"provider": provider, "retries": 0, "timeout": TIMEOUT, "batch_size": BATCH}
        if provider == "webhook":
            mailer["url"] = f"{server.url}/hook"
        else:
            mailer |= {"url": server.url, "domain": "mg.example.org"}
        if concurrency > 1:
            mailer["concurrency"] = concurrency
        project.configure(digest={"recipients": "subscribers"}, mailer=mailer)
        assert project.cli("ingest", str(project.articles)).exit_code == 0
        addresses = import_readers(project)

        kills = send_with_kills(project, server, provider, random.Random(seed), tmp_path)
        log = tmp_path / "last.log"
        with child_process(publisher(project, "digest", "resume"), cwd=project.root, stderr=log) as last:
            out, _ = last.communicate(timeout=TIMEOUT)
        took = time.monotonic() - started
        print(f"crash test: kills at {kills}, {server.count} requests, {took:.1f} s")

    final = batches(project)
    states = Counter(b.state for b in final)
    taken = Counter(server.recipients())
    twice = sorted(address for address, times in taken.items() if times > 1)
    assert not twice, f"{len(twice)} readers mailed more than once, such as {twice[:3]}"
    assert len(final) == READERS // BATCH
    assert not states[PENDING] and not states[SENDING], states
    store = project.open_store()
    try:
        digest = store.last_digest()
        assert digest is not None and store.unsent_digest() is None
        unsure = {p.email for b in final if b.state == IN_DOUBT for p in journal.recipients(store, b.id)}
        sure = {p.email for b in final if b.state == ACCEPTED for p in journal.recipients(store, b.id)}
    finally:
        store.close()
    if provider == "webhook":
        assert (last.returncode, digest.state) == (0, "sent"), out + log.read_text()
        assert states == {ACCEPTED: len(final)}
        missing = sorted(set(addresses) - set(taken))
        assert not missing, f"{len(missing)} readers never reached the endpoint, such as {missing[:3]}"
        assert sorted(taken) == sorted(addresses)  # and nobody twice: every reader exactly once
        return

    assert (last.returncode, digest.state) == (1, "incomplete"), out + log.read_text()
    doubts = states[IN_DOUBT]
    assert f"{doubts} {'batch' if doubts == 1 else 'batches'} in doubt" in log.read_text().splitlines()[-1]
    assert set(states) == {ACCEPTED, IN_DOUBT}
    # A kill before the answer always leaves its batch in doubt; one after it, only if the
    # process had claimed the next batch by then.
    assert sum(phase != "answered" for _, phase in kills) <= states[IN_DOUBT] <= len(kills)
    assert sure <= set(taken)  # every accepted batch reached the endpoint
    assert set(addresses) - set(taken) <= unsure  # whoever it lacks is in a batch in doubt
    shown = project.cli("status").stdout
    assert f"{states[ACCEPTED]} accepted, 0 failed, {states[IN_DOUBT]} in doubt, 0 pending" in shown
    reported = [line for line in shown.splitlines() if line.startswith("  batch ")]
    assert reported == [
        f"  batch {b.number} in doubt: interrupted while sending; mailgun may have accepted it"
        for b in final
        if b.state == IN_DOUBT
    ]
    assert all(b.key in shown for b in final if b.state == IN_DOUBT)


def send_with_kills(
    project: Project, server: FaultServer, provider: str, rng: random.Random, logs: Path
) -> list[tuple[int, str]]:
    """``digest send``, then ``digest resume`` again and again, each killed once in its stretch
    of batches: returns where (batch number, phase)."""
    planned = READERS // BATCH
    stretch = planned // KILLS
    kills: list[tuple[int, str]] = []
    command = publisher(project, "digest", "send")
    for n in range(KILLS):
        # The batches the next process will request, in order (with concurrency, about in
        # order): those pending, and those in flight when the last process died if the provider
        # dedupes (else they are in doubt). The first process plans all before its first request.
        known = batches(project)
        coming = [b.number for b in known if b.state == PENDING or (b.state == SENDING and provider == "webhook")]
        coming = coming if known else list(range(1, planned + 1))
        # A batch of this stretch, or the first one left if concurrent requests went past it.
        here = [b for b in coming if n * stretch < b <= (n + 1) * stretch]
        target = rng.choice(here or [b for b in coming if b > n * stretch][:1])
        position = coming.index(target)
        # After "answered" the process goes on, until its next request stops it: there must be one.
        phase = rng.choice(["headers", "accepted"] + (["answered"] if position + 1 < len(coming) else []))
        at = server.count + position + 1
        traps = [pause(phase), pause("headers")]
        server.script({at: traps[0], at + 1: traps[1]})
        kill_at(command, project, traps, logs / f"{n}.log")
        kills.append((target, phase))
        command = publisher(project, "digest", "resume")
    server.script({})
    return kills


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_send_is_left_to_its_live_process_and_continued_as_soon_as_it_dies(
    project: Project, store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if store == "postgresql":
        project.configure(store={"url": request.getfixturevalue("pg_url")})
    monkeypatch.setenv("PUBLISHER_MAILER_KEY", KEY)
    monkeypatch.setenv("PUBLISHER_UNSUBSCRIBE_SECRET", SECRET)
    readers = [f"reader{n}@example.net" for n in range(1, 6)]
    with FaultServer() as server:
        mailer = {"provider": "webhook", "url": f"{server.url}/hook", "retries": 0, "timeout": TIMEOUT, "batch_size": 2}
        project.configure(digest={"recipients": "subscribers"}, mailer=mailer)
        assert project.cli("subscribers", "add", *readers).exit_code == 0
        assert project.cli("ingest", str(project.articles)).exit_code == 0
        stuck = pause("accepted")
        server.script({2: stuck})
        log = tmp_path / "first.log"
        with child_process(publisher(project, "digest", "send"), cwd=project.root, stderr=log) as first:
            reached(stuck, first, log)

            meanwhile = project.cli("digest", "resume")

            assert meanwhile.exit_code == 0, meanwhile.output
            assert "being sent by another process" in meanwhile.stdout
            assert server.count == 2  # the live process's batch 2 is left alone

            first.send_signal(signal.SIGKILL)
            first.wait(TIMEOUT)
        stuck.release.set()

        after = project.cli("digest", "resume")  # at once: no lease to wait out

        assert after.exit_code == 0, after.output
        assert "3 batches accepted, 5 recipients" in after.stdout, after.output
        assert [seen.batch[-4:] for seen in server.requests] == ["0001", "0002", "0002", "0003"]
        assert Counter(server.recipients()) == Counter(readers)
        assert [b.state for b in batches(project)] == [ACCEPTED] * 3
