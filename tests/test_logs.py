"""``--log-format json``: every line on stderr is one JSON object, one send can be followed by its
digest id from batch to outcome, and no secret shows in any line.

Sends go to a recording webhook on 127.0.0.1 that refuses one batch and echoes the API key and
the HMAC secret in its refusal; the CLI runs in-process, as a real process, on a
pseudo-terminal, and as the daemon.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from publisher import logs
from tests.conftest import Project, child_process, readline_within
from tests.endpoint import Answer, Endpoint, Request
from tests.test_cli_digest import last_digest_id, on_a_terminal
from tests.test_cli_digest import local_list as outbox_list
from tests.test_daemon import TIMEOUT, move_saved_run

KEY = "whk_Jx5Qw8Rt2Lp9Zm4Vn7"  # distinctive fakes: neither may appear in any output
SECRET = "hmac-Kq3Wz8Ye5Ur1Tb6Nd"
ENV = {"PUBLISHER_MAILER_KEY": KEY, "PUBLISHER_UNSUBSCRIBE_SECRET": SECRET}
READERS = [f"reader{n}@example.net" for n in range(1, 6)]
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


@pytest.fixture(autouse=True)
def _clean_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [*ENV, "PUBLISHER_LOG_FORMAT", "FORCE_COLOR", "TTY_COMPATIBLE"]:
        monkeypatch.delenv(name, raising=False)
    yield
    logs.setup("text")  # in-process commands leave their logging set up for the next test


def webhook_list(project: Project, endpoint: Endpoint) -> None:
    """The five READERS on the local list, sent to the webhook in three batches; batch 2 is refused."""
    project.configure(
        digest={"recipients": "subscribers", "secret_env": "PUBLISHER_UNSUBSCRIBE_SECRET"},
        mailer={"provider": "webhook", "url": endpoint.url, "retries": 0, "timeout": 5, "batch_size": 2},
    )
    assert project.cli("subscribers", "add", *READERS).exit_code == 0

    def refuse_batch_2(request: Request) -> Answer:
        if request.json()["key"].endswith("-0002"):
            return 400, {"message": f"refused: bad key {KEY} or secret {SECRET}"}, {}
        return 200, {"id": f"msg-{len(endpoint.requests)}"}, {}

    endpoint.handler = refuse_batch_2


def records(stderr: str) -> list[dict[str, Any]]:
    """Every line of ``stderr`` as a JSON object with the fields every record has."""
    parsed = []
    for line in stderr.splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        assert record["level"] in LEVELS, line
        assert isinstance(record["logger"], str) and isinstance(record["message"], str), line
        when = datetime.fromisoformat(record["time"])
        assert when.utcoffset() == timedelta(0), line
        parsed.append(record)
    return parsed


def batches(found: list[dict[str, Any]], digest_id: str) -> list[tuple[str, str]]:
    return [(r["batch_key"], r["batch_state"]) for r in found if r.get("digest_id") == digest_id and "batch_key" in r]


def outcome(found: list[dict[str, Any]], digest_id: str) -> dict[str, Any]:
    """The record of the send's outcome: the last one with the digest id, not about a batch."""
    # A daemon also reminds the operator of an incomplete digest on each later cycle: not the outcome.
    reminder = "not sent to everyone"
    [last] = [
        r for r in found if r.get("digest_id") == digest_id and "batch_key" not in r and reminder not in r["message"]
    ]
    return last


def assert_no_secret(*outputs: str) -> None:
    for output in outputs:
        assert KEY not in output and SECRET not in output


def test_a_send_logs_one_json_record_per_batch_and_its_outcome(project: Project, endpoint: Endpoint) -> None:
    webhook_list(project, endpoint)

    result = project.cli("--log-format", "json", "run", env=ENV)

    assert result.exit_code == 1
    sent = last_digest_id(project)
    found = records(result.stderr)
    assert batches(found, sent) == [
        (f"{sent}-0001", "accepted"),
        (f"{sent}-0002", "failed"),
        (f"{sent}-0003", "accepted"),
    ]
    [refused] = [r for r in found if r.get("batch_state") == "failed"]
    assert refused["logger"] == "publisher.delivery"
    assert "HTTP 400: refused: bad key [redacted] or secret [redacted]" in refused["message"]
    last = outcome(found, sent)
    assert (last["level"], last["logger"], last["provider"]) == ("ERROR", "publisher.cli", "webhook")
    assert last["message"].startswith(f"digest {sent}: 1 article, 2 of 3 batches accepted (3 recipients)")
    assert found[-1] == last
    # stdout keeps its plain result lines; the failed send's outcome is on stderr only, as in text.
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["ingest", "feeds"]
    # The key really was sent, and echoed back: the log still never shows it.
    assert {r.headers["authorization"] for r in endpoint.requests} == {f"Bearer {KEY}"}
    # The journal keeps the provider's words; status shows them without the secret.
    status = project.cli("status", env=ENV)
    assert "  batch 2 failed: webhook: " in status.stdout
    assert_no_secret(result.stdout, result.stderr, status.stdout)


def test_in_text_mode_too_no_line_shows_a_secret(project: Project, endpoint: Endpoint) -> None:
    webhook_list(project, endpoint)

    result = project.cli("run", env=ENV)

    assert result.exit_code == 1
    sent = last_digest_id(project)
    lines = result.stderr.splitlines()
    assert lines[1].startswith(f"digest {sent}: batch 2/3 (2 recipients) failed: webhook: ")
    assert lines[1].endswith("HTTP 400: refused: bad key [redacted] or secret [redacted]")
    assert len(lines) == 4  # three batches, the outcome
    assert_no_secret(result.stdout, result.stderr)


def test_one_send_can_be_followed_across_a_process_and_its_resume(project: Project, endpoint: Endpoint) -> None:
    webhook_list(project, endpoint)
    env = {**os.environ, **ENV, "PUBLISHER_LOG_FORMAT": "json"}

    done = subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(project.config_path), "run"],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1, done.stderr
    sent = last_digest_id(project)
    first = records(done.stderr)
    assert [state for _, state in batches(first, sent)] == ["accepted", "failed", "accepted"]
    assert outcome(first, sent)["level"] == "ERROR"

    endpoint.handler = None  # the webhook takes everything now
    resumed = project.cli("--log-format", "json", "digest", "resume", "--retry-failed", env=ENV)

    assert resumed.exit_code == 0, resumed.output
    second = records(resumed.stderr)
    assert batches(second, sent) == [(f"{sent}-0002", "accepted")]
    finished = outcome(second, sent)
    assert (finished["level"], finished["message"]) == (
        "INFO",
        f"digest {sent}: 1 article, 3 batches accepted, 5 recipients",
    )
    assert resumed.stdout == f"digest {sent}: 1 article, 3 batches accepted, 5 recipients\n"
    assert_no_secret(done.stdout, done.stderr, resumed.stdout, resumed.stderr)


def test_on_a_terminal_json_logs_draw_no_progress_bar(project: Project) -> None:
    outbox_list(project)
    assert project.cli("ingest", str(project.articles)).exit_code == 0

    screen, stdout, status = on_a_terminal(project, "--log-format", "json", "digest", "send")

    assert status == 0, screen
    sent = last_digest_id(project)
    assert "\x1b[" not in screen  # no live display, no colour: nothing but the records
    found = records(screen)
    assert [state for _, state in batches(found, sent)] == ["accepted"] * 3
    assert stdout == f"digest {sent}: 1 article, 3 batches accepted, 5 recipients\n"


def test_in_text_mode_the_batch_records_do_not_repeat_the_progress_lines(project: Project) -> None:
    # --verbose lets the batch records through whatever their level; the display still owns them.
    outbox_list(project)
    assert project.cli("ingest", str(project.articles)).exit_code == 0

    result = project.cli("--verbose", "digest", "send", env=ENV)

    assert result.exit_code == 0, result.output
    sent = last_digest_id(project)
    assert result.stderr.splitlines() == [
        f"digest {sent}: batch 1/3 (2 recipients) accepted",
        f"digest {sent}: batch 2/3 (2 recipients) accepted",
        f"digest {sent}: batch 3/3 (1 recipient) accepted",
    ]


# -- errors ----------------------------------------------------------------------------------------


def test_errors_are_json_records_naming_what_failed(project: Project, tmp_path: Path) -> None:
    missing = project.cli("--log-format", "json", "ingest", str(project.articles / "missing.md"), env=ENV)
    assert missing.exit_code == 1
    [error] = records(missing.stderr)
    assert (error["level"], error["path"]) == ("ERROR", str(project.articles / "missing.md"))
    assert error["message"] == f"{project.articles / 'missing.md'}: no such file or folder"
    assert missing.stdout.startswith("ingest: ")

    csv_file = tmp_path / "readers.csv"
    csv_file.write_text("email\nann@example.org\nbad\n", encoding="utf-8")
    imported = project.cli("--log-format", "json", "subscribers", "import", str(csv_file))
    assert imported.exit_code == 1
    bad_row, note = records(imported.stderr)
    assert (bad_row["level"], bad_row["path"]) == ("ERROR", str(csv_file))
    assert bad_row["message"].startswith(f"{csv_file}:3: 'bad': ")
    assert note["level"] == "WARNING" and "[digest] recipients" in note["message"]

    unknown = project.cli("--log-format", "json", "publish")
    assert unknown.exit_code == 2
    [usage] = records(unknown.stderr)
    assert usage["level"] == "ERROR" and "No such command 'publish'" in usage["message"]

    nowhere = tmp_path / "nowhere" / "publisher.toml"
    no_config = project.cli("--log-format", "json", "--config", str(nowhere), "status")
    assert no_config.exit_code == 2
    [config_error] = records(no_config.stderr)
    assert config_error["message"].startswith(f"{nowhere}: not found")


def test_a_crash_is_one_json_record_with_the_error_on_one_line() -> None:
    program = "from publisher import logs\nlogs.setup('json')\nraise RuntimeError('bad\\nthing')\n"

    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)

    assert done.returncode == 1
    [crash] = records(done.stderr)
    assert crash["level"] == "CRITICAL"
    assert crash["error"] == "RuntimeError: bad thing (at <string>:3 in <module>)"


def test_the_configured_secrets_are_redacted_from_any_record(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "tok_Newsroom_9fQ2xV7"
    monkeypatch.setenv("NEWSROOM_TOKEN", token)
    monkeypatch.setenv("NEWSROOM_HMAC", SECRET)
    config = project.configure(
        mailer={
            "provider": "webhook",
            "api_key_env": "NEWSROOM_TOKEN",
            "url": "https://relay.example.org/h?auth=Qw3rty",
        },
        digest={"secret_env": "NEWSROOM_HMAC"},
    )
    logs.setup("json")
    logs.protect(config)
    capsys.readouterr()

    log = logging.getLogger("publisher.test")
    log.info("key %s, secret %s", token, SECRET, extra={"path": f"/tmp/{token}", "digest_id": 7})
    try:
        raise ValueError(f"the relay said {token} and Qw3rty")
    except ValueError:
        log.exception("send failed")

    lines = capsys.readouterr().err
    first, second = records(lines)
    assert (first["message"], first["path"], first["digest_id"]) == (
        "key [redacted], secret [redacted]",
        "/tmp/[redacted]",
        7,
    )
    assert second["error"].startswith("ValueError: the relay said [redacted] and [redacted] (at test_logs.py:")
    assert token not in lines and SECRET not in lines and "Qw3rty" not in lines


# -- the daemon ------------------------------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_daemon_logs_each_batch_of_a_digest_job_with_its_digest_id(
    project: Project, endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_format: str
) -> None:
    webhook_list(project, endpoint)
    refuse = endpoint.handler
    assert refuse is not None
    three_batches = threading.Event()

    def count(request: Request) -> Answer:
        answer = refuse(request)
        if len(endpoint.requests) == 3:
            three_batches.set()
        return answer

    endpoint.handler = count
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    command = [sys.executable, "-m", "publisher", "--config", str(project.config_path), "--log-format", log_format]
    command.append("daemon")
    with child_process(command, cwd=project.root, stderr=tmp_path / "first.log") as first:
        assert first.stdout is not None
        assert readline_within(first.stdout, TIMEOUT, "the daemon").startswith("daemon: started")
        first.send_signal(signal.SIGTERM)
        assert first.wait(TIMEOUT) == 0
    move_saved_run(project.config(), datetime.now(UTC) - timedelta(hours=1))  # a missed slot: due at start

    stderr_path = tmp_path / "second.log"
    with child_process(command, cwd=project.root, stderr=stderr_path) as second:
        assert second.stdout is not None
        assert readline_within(second.stdout, TIMEOUT, "the daemon").startswith("daemon: started")
        assert three_batches.wait(TIMEOUT), stderr_path.read_text()
        second.send_signal(signal.SIGTERM)  # it lets the digest job finish first
        assert second.wait(TIMEOUT) == 0, stderr_path.read_text()

    sent = last_digest_id(project)
    stderr = stderr_path.read_text()
    assert_no_secret(stderr, (tmp_path / "first.log").read_text())
    if log_format == "text":
        lines = stderr.splitlines()
        assert f"publisher: digest {sent}: batch 2/3 failed: webhook: " in stderr
        assert sum(line.startswith(f"publisher: digest {sent}: batch ") for line in lines) == 3
        return
    found = records(stderr)
    assert batches(found, sent) == [
        (f"{sent}-0001", "accepted"),
        (f"{sent}-0002", "failed"),
        (f"{sent}-0003", "accepted"),
    ]
    last = outcome(found, sent)
    assert (last["level"], last["logger"], last["job"]) == ("ERROR", "publisher.daemon", "digest")
    assert last["message"].startswith(f"digest {sent}: 1 article, 2 of 3 batches accepted")
