"""Looking again at any digest (`digest preview --id/--last`, `digest list`), `digest test`'s destination,
and the read-only commands, which never create a store."""

from __future__ import annotations

import email
import email.policy
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_TITLE, Project, run_publisher


def publisher(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m publisher ARGS`` in the project's folder (the program's clock comes with the environment)."""
    return run_publisher(*args, cwd=project.root, unset=("PUBLISHER_CONFIG",))


def sent_id(project: Project) -> str:
    [eml] = project.outbox_files()
    return eml.stem


def test_preview_last_and_by_id_show_the_digest_as_it_was_sent(project: Project, at_now: datetime) -> None:
    assert publisher(project, "run").returncode == 0
    digest_id = sent_id(project)
    sent = (project.outbox / f"{digest_id}.eml").read_bytes()

    nothing = publisher(project, "digest", "preview")
    assert nothing.stdout == (
        "digest: nothing new since the last digest, nothing to preview; "
        f"`publisher digest preview --last` shows the last one, {digest_id}\n"
    )

    for args in (("--last",), ("--id", digest_id)):
        out = project.root / "again" / args[0]
        shown = publisher(project, "digest", "preview", *args, "--out", str(out))
        assert shown.returncode == 0, shown.stderr
        paths = [Path(line) for line in shown.stdout.splitlines()]
        assert [p.name for p in paths] == [f"digest-{digest_id}{s}" for s in (".html", ".txt", ".eml")]
        assert paths[2].read_bytes() == sent  # the very message, not a new rendering
        assert SAMPLE_TITLE in paths[0].read_text(encoding="utf-8")


def test_digest_list_shows_each_stored_digest(project: Project, at_now: datetime) -> None:
    assert publisher(project, "run").returncode == 0
    listed = publisher(project, "digest", "list")
    assert listed.returncode == 0, listed.stderr
    [line] = listed.stdout.splitlines()
    assert line.split("\t") == [sent_id(project), "sent", at_now.isoformat(), "1", "Example News: 1 new"]


def test_preview_of_an_unknown_digest_is_one_line(project: Project) -> None:
    assert publisher(project, "run").returncode == 0
    done = publisher(project, "digest", "preview", "--id", "20200101-000000-00000000")
    assert done.returncode == 1
    assert done.stderr == (
        "publisher: error: digest 20200101-000000-00000000: no such digest (see `publisher digest list`)\n"
    )


def test_preview_id_and_last_together_is_a_usage_error(project: Project) -> None:
    done = publisher(project, "digest", "preview", "--last", "--id", "x")
    assert done.returncode == 2
    assert "--id and --last: give one of them" in done.stderr


def test_digest_test_says_where_the_message_went(project: Project, at_now: datetime) -> None:
    assert publisher(project, "ingest", str(project.articles)).returncode == 0
    done = publisher(project, "digest", "test", "--to", "me@example.org")
    assert done.returncode == 0, done.stderr
    [folder] = project.outbox.iterdir()  # a test's copies go in a folder of their own
    assert folder.name.startswith("test-")
    assert done.stdout == (
        f"test digest sent to me@example.org (outbox): 1 message written to {folder}; nothing marked as sent\n"
    )
    [written] = folder.glob("*.eml")
    message = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert str(message["Subject"]).startswith("[TEST] ")


READ_ONLY = [
    ("status",),
    ("status", "--json"),
    ("articles", "list"),
    ("digest", "list"),
    ("digest", "preview"),
    ("digest", "preview", "--last"),
    ("digest", "release"),
    ("subscribers", "list"),
    ("config", "check"),
]


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_read_only_commands_create_no_store(project: Project, command: tuple[str, ...]) -> None:
    done = publisher(project, *command)

    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in project.root.iterdir()) == ["articles", "publisher.toml"]
    assert "Traceback" not in done.stderr
    if command[0] not in ("status", "config"):
        assert done.stdout == ""
        assert done.stderr == (
            f"publisher: no store yet at sqlite:///{project.root}/publisher.db: "
            "`publisher run` creates it ([store] url)\n"
        )
