"""``publisher digest test / preview --open / resume``, the progress of a send, and ``status``
with the delivery journal.

Sends go to the outbox (one .eml per reader of the local list, read back with the stdlib
parser) or to a recording HTTP server on 127.0.0.1; the progress bar is checked by running the
real command with stderr on a pseudo-terminal.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import select
import subprocess
import sys
import termios
import time
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from publisher import journal
from publisher.cli import main
from tests.conftest import NOW, SAMPLE_TITLE, Project
from tests.endpoint import Answer, Endpoint, Request

SECRET = "unsubscribe-secret-for-the-cli-tests"
KEY = "whk_7Zq4Lm9Xv2Rt8Pn3"  # distinctive: it must never show in any output
ENV = {"PUBLISHER_UNSUBSCRIBE_SECRET": SECRET, "PUBLISHER_MAILER_KEY": KEY}
READERS = [f"reader{n}@example.net" for n in range(1, 6)]
SUBJECT = "Example News: 1 new"

HELP = [
    (("digest",), ["Preview or send the email digest", "test", "resume"]),
    (("digest", "test"), ["--to addresses only", '"[TEST]" before its subject', "Marks nothing", "--to ADDRESS"]),
    (("digest", "preview"), ["--open", "web browser", "$BROWSER"]),
    (("digest", "resume"), ["not yet accepted", "never starts a new one", "--resend-in-doubt", "--retry-failed"]),
    (("status",), ["batches of the recent digests", "in doubt", "recipients they reached", "subscriber list"]),
]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*ENV, "FORCE_COLOR", "TTY_COMPATIBLE"]:  # the last two would make rich draw a bar
        monkeypatch.delenv(name, raising=False)


def local_list(project: Project, *, batch_size: int = 2, **mailer: Any) -> None:
    """The five READERS on the local list, sent in batches of ``batch_size``."""
    project.configure(
        digest={"recipients": "subscribers", "secret_env": "PUBLISHER_UNSUBSCRIBE_SECRET"},
        mailer={"batch_size": batch_size, **mailer},
    )
    assert project.cli("subscribers", "add", *READERS).exit_code == 0


def last_digest_id(project: Project) -> str:
    store = project.open_store()
    try:
        last = store.last_digest()
        assert last is not None
        return last.id
    finally:
        store.close()


def received(folder: Path) -> dict[str, EmailMessage]:
    """The outbox copies in ``folder``, by the address in their To header."""
    messages = {}
    for path in sorted(folder.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        messages[str(message["To"])] = message
    return messages


def status_lines(project: Project) -> list[str]:
    result = project.cli("status", env=ENV)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


@pytest.mark.parametrize(("command", "phrases"), HELP, ids=[" ".join(c) for c, _ in HELP])
def test_the_new_digest_commands_have_help(command: tuple[str, ...], phrases: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    help_text = " ".join(result.output.split())
    for phrase in phrases:
        assert phrase in help_text, f"{phrase!r} not in the help of {command}"


# -- digest test ----------------------------------------------------------------------------------


def test_digest_test_mails_only_the_given_addresses_and_marks_nothing(project: Project) -> None:
    local_list(project)
    assert project.cli("ingest", str(project.articles)).exit_code == 0

    result = project.cli(
        "digest", "test", "--to", "Me@Example.ORG", "--to", "me@example.org", "--to", "ed@example.org", env=ENV
    )

    assert result.exit_code == 0, result.output
    [folder] = project.outbox.iterdir()
    # The line says where the messages went.
    assert result.stdout == (
        f"test digest sent to Me@example.org, ed@example.org (outbox): 2 messages written to {folder}; "
        "nothing marked as sent\n"
    )
    assert folder.name.startswith("test-")
    tests = received(folder)
    assert sorted(tests) == ["Me@example.org", "ed@example.org"]
    assert {str(m["Subject"]) for m in tests.values()} == {f"[TEST] {SUBJECT}"}
    assert SAMPLE_TITLE in tests["ed@example.org"].get_body(("html",)).get_content()  # type: ignore[union-attr]

    # Nothing was marked: the next run sends the digest to every reader, without [TEST].
    run = project.cli("run", env=ENV)
    assert run.exit_code == 0, run.output
    sent = received(project.outbox / last_digest_id(project))
    assert sorted(sent) == READERS
    assert {str(m["Subject"]) for m in sent.values()} == {SUBJECT}


def test_digest_test_checks_every_address_before_sending_any(project: Project) -> None:
    local_list(project)
    assert project.cli("ingest", str(project.articles)).exit_code == 0
    result = project.cli("digest", "test", "--to", "me@example.org", "--to", "me@localhost", env=ENV)
    assert result.exit_code == 2
    assert result.stderr == (
        "publisher: error: --to 'me@localhost': The part after the @-sign is not valid. It should have a period.\n"
    )
    assert not project.outbox.exists()


def test_digest_test_with_nothing_new_says_so(project: Project) -> None:
    local_list(project)
    assert project.cli("run", env=ENV).exit_code == 0
    result = project.cli("digest", "test", "--to", "me@example.org", env=ENV)
    assert result.exit_code == 0
    assert result.stdout == "digest: nothing new since the last digest, no test sent\n"
    assert not any(p.name.startswith("test-") for p in project.outbox.iterdir())


# -- digest preview ---------------------------------------------------------------------------------


def test_preview_open_shows_the_html_file_in_the_browser_named_by_BROWSER(project: Project, tmp_path: Path) -> None:
    assert project.cli("ingest", str(project.articles)).exit_code == 0
    record = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{record}"\n')
    browser.chmod(0o755)
    env = {**os.environ, "BROWSER": str(browser)}
    command = [sys.executable, "-m", "publisher", "--config", str(project.config_path), "digest", "preview"]

    plain = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert plain.returncode == 0, plain.stderr
    assert not record.exists()

    opened = subprocess.run([*command, "--open"], capture_output=True, text=True, env=env, timeout=60)
    assert opened.returncode == 0, opened.stderr
    [html] = [Path(line) for line in opened.stdout.splitlines() if line.endswith(".html")]
    assert record.read_text().splitlines() == [html.resolve().as_uri()]
    assert SAMPLE_TITLE in html.read_text(encoding="utf-8")


def test_preview_shows_the_digest_waiting_to_be_sent(project: Project, tmp_path: Path) -> None:
    (project.root / "blocker").write_text("a file where the outbox folder would go")
    project.configure(mailer={"outbox_dir": "blocker/outbox"})
    assert project.cli("run").exit_code == 1  # the digest is stored, not sent
    waiting = last_digest_id(project)

    result = project.cli("digest", "preview", "--out", str(tmp_path))

    assert result.exit_code == 0, result.output
    assert sorted(Path(line).name for line in result.stdout.splitlines()) == [
        f"digest-{waiting}.eml",
        f"digest-{waiting}.html",
        f"digest-{waiting}.txt",
    ]


# -- progress ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [("run",), ("digest", "send")])
def test_a_send_logs_one_line_per_batch_when_stderr_is_not_a_terminal(project: Project, command: tuple[str]) -> None:
    local_list(project)
    assert project.cli("ingest", str(project.articles)).exit_code == 0

    result = project.cli(*command, env=ENV)

    assert result.exit_code == 0, result.output
    sent = last_digest_id(project)
    assert result.stderr.splitlines() == [
        f"digest {sent}: batch 1/3 (2 recipients) accepted",
        f"digest {sent}: batch 2/3 (2 recipients) accepted",
        f"digest {sent}: batch 3/3 (1 recipient) accepted",
    ]
    assert result.stdout.endswith(f"digest {sent}: 1 article, 3 batches accepted, 5 recipients\n")
    assert sorted(received(project.outbox / sent)) == READERS


def test_a_send_in_one_request_logs_only_its_outcome(project: Project) -> None:
    local_list(project, batch_size=0)  # the outbox's own limit: 1000 a request
    result = project.cli("run", env=ENV)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    sent = last_digest_id(project)
    assert result.stdout.endswith(f"digest {sent}: 1 article, 5 messages written to {project.outbox / sent}\n")


def on_a_terminal(project: Project, *args: str) -> tuple[str, str, int]:
    """Run ``publisher ARGS`` as a process with stderr on a pseudo-terminal: (terminal, stdout, status)."""
    master, terminal = os.openpty()
    termios.tcsetwinsize(terminal, (24, 200))
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS", "NO_COLOR")}
    env |= ENV | {"TERM": "xterm-256color", "PYTHONIOENCODING": "utf-8"}
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "publisher", "--config", str(project.config_path), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            env=env,
            text=True,
        )
        os.close(terminal)
        screen = _read_terminal(master, process, 60).decode("utf-8")
        stdout, _ = process.communicate(timeout=60)
    finally:
        os.close(master)
    return screen, stdout, process.returncode


def _read_terminal(fd: int, process: subprocess.Popen[str], seconds: float) -> bytes:
    """Everything written to the terminal ``fd`` is the master of, until the child closed it."""
    screen = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: every copy of the other end is closed, the child is gone
            return screen
        if not chunk:
            return screen
        screen += chunk
    process.kill()
    pytest.fail(f"the command did not finish within {seconds} s; the terminal showed {screen!r}")


def test_on_a_terminal_a_send_draws_a_progress_bar(project: Project) -> None:
    local_list(project)
    assert project.cli("ingest", str(project.articles)).exit_code == 0

    screen, stdout, status = on_a_terminal(project, "digest", "send")

    assert status == 0, screen
    sent = last_digest_id(project)
    assert stdout == f"digest {sent}: 1 article, 3 batches accepted, 5 recipients\n"
    assert "\x1b[?25l" in screen  # rich's live display hid the cursor to redraw in place
    assert re.search(rf"digest {sent} \S*━+\S* \S*3/3\S* batches", screen), screen
    assert "batch 1/3" not in screen, repr(screen)  # the bar, not the log lines


def test_on_a_terminal_an_import_draws_a_progress_bar_and_still_lists_the_bad_rows(project: Project) -> None:
    path = project.root / "readers.csv"
    path.write_text("email\nann@example.org\nbad\nbob@example.org\n", encoding="utf-8")
    project.configure(digest={"recipients": "subscribers"})

    screen, stdout, status = on_a_terminal(project, "subscribers", "import", str(path))

    assert status == 1, screen
    assert stdout == "subscribers: 2 added, 0 already on the list, 0 kept unsubscribed, 1 bad row; 2 active\n"
    assert re.search(rf"{re.escape(str(path))} \S*━+\S* \S*3/3\S* rows", screen), screen
    assert f"{path}:3: 'bad': An email address must have an @-sign." in screen
    assert "rows read" not in screen  # the bar, not the log lines


# -- digest resume ----------------------------------------------------------------------------------


def test_resume_retries_failed_batches_only_when_asked_and_starts_no_new_digest(
    project: Project, endpoint: Endpoint
) -> None:
    local_list(project, provider="webhook", url=endpoint.url, retries=0, timeout=5)
    refused: list[str] = []

    def refuse_batch_2_once(request: Request) -> Answer:
        if request.json()["key"].endswith("-0002") and not refused:
            refused.append(request.json()["key"])
            return 400, {"message": f"recipients refused for key {KEY}"}, {}
        return 200, {"id": f"msg-{len(endpoint.requests)}"}, {}

    endpoint.handler = refuse_batch_2_once
    run = project.cli("run", env=ENV)
    assert run.exit_code == 1
    sent = last_digest_id(project)
    assert f"digest {sent}: batch 2/3 (2 recipients) failed: webhook: " in run.stderr
    assert "HTTP 400: recipients refused for key [redacted]" in run.stderr

    lines = status_lines(project)
    assert (
        f"digest {sent}: incomplete; batches: 2 accepted, 1 failed, 0 in doubt, 0 pending; 3 of 5 recipients reached"
        in lines
    )
    assert any(
        re.fullmatch(r"  batch 2 failed: webhook: \S+: HTTP 400: recipients refused for key \[redacted\]", line)
        for line in lines
    ), lines
    assert "  to do: fix what made the batches fail, then run `publisher digest resume --retry-failed`" in lines

    project.add_article("later.md", "# A later article\n\nWritten after the digest.\n")
    assert project.cli("ingest", str(project.articles)).exit_code == 0
    without_flag = project.cli("digest", "resume", env=ENV)
    assert without_flag.exit_code == 1
    assert without_flag.stderr == (
        f"publisher: error: digest {sent}: nothing resumed without a flag "
        "(1 batch failed: --retry-failed; see `publisher status`)\n"
    )
    assert len(endpoint.requests) == 3

    resumed = project.cli("digest", "resume", "--retry-failed", env=ENV)

    assert resumed.exit_code == 0, resumed.output
    assert resumed.stderr == f"digest {sent}: batch 2/3 (2 recipients) accepted\n"
    assert resumed.stdout == f"digest {sent}: 1 article, 3 batches accepted, 5 recipients\n"
    [again] = endpoint.requests[3:]
    assert (again.json()["key"], again.json()["to"]) == (refused[0], READERS[2:4])
    assert last_digest_id(project) == sent  # the later article waits for the next digest
    for output in (run.output, without_flag.output, resumed.output, "\n".join(lines)):
        assert KEY not in output


def _put_batch_2_in_doubt(project: Project, digest_id: str) -> str:
    """As if batch 2's request had been cut off by a crash: in doubt, the digest incomplete."""
    store = project.open_store()
    try:
        batch = journal.batches_of(store, digest_id)[1]
        journal.mark(store, batch.id, journal.IN_DOUBT, NOW, error="interrupted while sending; it may have arrived")
        store.finish_digest(digest_id, "incomplete", NOW, "batch 2: interrupted")
        return batch.key
    finally:
        store.close()


@pytest.mark.parametrize("command", [("digest", "resume"), ("digest", "send")])
def test_in_doubt_batches_are_resent_only_with_resend_in_doubt(project: Project, command: tuple[str, str]) -> None:
    local_list(project)
    assert project.cli("run", env=ENV).exit_code == 0
    sent = last_digest_id(project)
    key = _put_batch_2_in_doubt(project, sent)
    for path in (project.outbox / sent).iterdir():
        path.unlink()

    lines = status_lines(project)
    assert (
        f"digest {sent}: incomplete; batches: 2 accepted, 0 failed, 1 in doubt, 0 pending; 3 of 5 recipients reached"
        in lines
    )
    assert "  batch 2 in doubt: interrupted while sending; it may have arrived" in lines
    assert (
        f"  to do: the batches in doubt may have been delivered: look for {key} in outbox's log; "
        "if they were not delivered, run `publisher digest resume --resend-in-doubt`"
    ) in lines
    held = project.cli("digest", "resume", env=ENV)
    assert held.exit_code == 1
    assert "(1 batch in doubt: --resend-in-doubt; see `publisher status`)" in held.stderr
    assert list((project.outbox / sent).iterdir()) == []

    resent = project.cli(*command, "--resend-in-doubt", env=ENV)

    assert resent.exit_code == 0, resent.output
    assert resent.stderr == f"digest {sent}: batch 2/3 (2 recipients) accepted\n"
    assert sorted(received(project.outbox / sent)) == READERS[2:4]
    assert (
        f"digest {sent}: sent; batches: 3 accepted, 0 failed, 0 in doubt, 0 pending; 5 of 5 recipients reached"
        in status_lines(project)
    )


def test_resume_continues_a_digest_that_waits_for_the_next_run(project: Project) -> None:
    (project.root / "blocker").write_text("a file where the outbox folder would go")
    local_list(project, outbox_dir="blocker/outbox")
    assert project.cli("run", env=ENV).exit_code == 1
    waiting = last_digest_id(project)
    assert (
        f"digest {waiting}: pending; batches: 0 accepted, 0 failed, 0 in doubt, 3 pending; 0 of 5 recipients reached"
        in status_lines(project)
    )
    (project.root / "blocker").unlink()

    resumed = project.cli("digest", "resume", env=ENV)

    assert resumed.exit_code == 0, resumed.output
    assert resumed.stdout == f"digest {waiting}: 1 article, 3 batches accepted, 5 recipients\n"
    assert sorted(received(project.root / "blocker" / "outbox" / waiting)) == READERS


def test_resume_with_nothing_unfinished_starts_nothing(project: Project) -> None:
    local_list(project)
    assert project.cli("ingest", str(project.articles)).exit_code == 0  # new articles, no digest yet
    result = project.cli("digest", "resume", "--resend-in-doubt", "--retry-failed", env=ENV)
    assert result.exit_code == 0
    assert result.stdout == "digest: nothing to resume (no digest is waiting to be sent)\n"
    store = project.open_store()
    try:
        assert store.last_digest() is None
    finally:
        store.close()
    assert not project.outbox.exists()


# -- status --------------------------------------------------------------------------------------------


def test_status_counts_the_subscribers_when_the_digest_goes_to_the_list(project: Project) -> None:
    assert not any(line.startswith("subscribers:") for line in status_lines(project))
    local_list(project)
    assert project.cli("subscribers", "remove", READERS[0]).exit_code == 0
    assert "subscribers: 4 active, 1 unsubscribed" in status_lines(project)


def test_status_shows_the_five_most_recent_digests(project: Project) -> None:
    project.configure(mailer={"provider": "buttondown"})
    store = project.open_store()
    try:
        ids = [f"2026112{n}-063000-0000000{n}" for n in range(6)]
        for n, digest_id in enumerate(ids):
            assert store.create_digest(digest_id, NOW + timedelta(days=n), "subject", b"message", [])
        # The newest went to a list the provider keeps: one batch without named recipients.
        journal.plan(store, ids[-1], [], 1, NOW)
        [batch] = journal.batches_of(store, ids[-1])
        journal.mark(store, batch.id, journal.ACCEPTED, NOW, provider_id="campaign-7")
        store.finish_digest(ids[-1], "sent", NOW)
    finally:
        store.close()

    digest_lines = [line for line in status_lines(project) if line.startswith("digest ")]

    assert digest_lines == [
        f"digest {ids[5]}: sent; batches: 1 accepted, 0 failed, 0 in doubt, 0 pending; "
        "recipients: the provider's own list",
        *(f"digest {ids[n]}: pending, no batches recorded" for n in (4, 3, 2, 1)),
    ]


def test_status_counts_addresses_the_provider_refused_as_not_reached(project: Project) -> None:
    store = project.open_store()
    try:
        assert store.create_digest("20261124-063000-0000000a", NOW, "subject", b"message", [])
        journal.plan(store, "20261124-063000-0000000a", [(a, None) for a in READERS[:3]], 3, NOW)
        [batch] = journal.batches_of(store, "20261124-063000-0000000a")
        journal.mark(store, batch.id, journal.ACCEPTED, NOW, rejected={READERS[1].upper(): "inactive recipient"})
        store.finish_digest("20261124-063000-0000000a", "sent", NOW)
    finally:
        store.close()
    assert (
        "digest 20261124-063000-0000000a: sent; batches: 1 accepted, 0 failed, 0 in doubt, 0 pending; "
        "2 of 3 recipients reached (1 refused by outbox)"
    ) in status_lines(project)
