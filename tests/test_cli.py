"""The ``publisher`` command line: help, exit codes, status, digest preview, feed, the entry point."""

from __future__ import annotations

import email
import email.policy
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import feedparser
import pytest
import tomli_w
from click.testing import CliRunner

from publisher.cli import main
from tests.conftest import SAMPLE_TITLE, Project

# Each command, and words its --help must use to say what it does.
HELP = [
    ((), ["Atom feed", "email digest", "run", "ingest", "feed", "digest", "daemon", "status"]),
    (("run",), ["ingest new files", "rebuild the feed", "send the digest"]),
    (("ingest",), ["Store the articles in PATHS"]),
    (("feed",), ["Write the feeds", "atom.xml, rss.xml, feed.json"]),
    (("articles",), ["List the stored articles", "list", "remove"]),
    (("articles", "list"), ["One line per live article"]),
    (("articles", "remove"), ["out of the feeds and future digests", "delete the file too"]),
    (("serve",), ["Serve the feeds folder", "--port", "SIGTERM"]),
    (("digest",), ["Preview or send the email digest", "preview", "send"]),
    (("digest", "preview"), [".html, .txt and .eml", "sends and marks nothing", "--out"]),
    (("digest", "send"), ["Send the digest now", "--resend-in-doubt"]),
    (("daemon",), ["[digest] schedule", "refresh feeds", "SIGTERM"]),
    (("status",), ["articles stored", "last digest", "next scheduled digest"]),
]


@pytest.mark.parametrize(("command", "phrases"), HELP, ids=[" ".join(c) or "publisher" for c, _ in HELP])
def test_every_command_has_help(command: tuple[str, ...], phrases: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert re.match(rf"Usage: \S+ {re.escape(' '.join(command))}\s*\[OPTIONS\]", result.output), result.output
    help_text = " ".join(result.output.split())  # click wraps lines
    for phrase in phrases:
        assert phrase in help_text, f"{phrase!r} not in the help of {command}"


# -- exit codes ---------------------------------------------------------------------------------


def test_an_unknown_command_is_a_usage_error(project: Project) -> None:
    result = project.cli("publish")
    assert result.exit_code == 2
    assert "No such command 'publish'" in result.stderr


def test_ingest_without_paths_is_a_usage_error(project: Project) -> None:
    result = project.cli("ingest")
    assert result.exit_code == 2
    assert "Missing argument 'PATHS...'" in result.stderr


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "publisher.toml"
    result = CliRunner().invoke(main, ["--config", str(missing), "status"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"publisher: error: {missing}: not found (`publisher init` writes one; or pass --config, "
        "set PUBLISHER_CONFIG, or cd to its folder)"
    ]


def test_a_bad_setting_is_a_config_error_naming_it(project: Project) -> None:
    project.settings["digest"]["schedule"] = "every morning"  # configure() would load it and raise
    project.config_path.write_text(tomli_w.dumps(project.settings), encoding="utf-8")
    result = project.cli("run")
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("publisher: error: ") and "[digest] schedule: not a crontab line" in line
    assert project.outbox_files() == []


def test_a_file_that_cannot_be_ingested_is_a_failure(project: Project) -> None:
    result = project.cli("ingest", str(project.articles / "missing.md"), str(project.articles))
    assert result.exit_code == 1
    assert "missing.md: no such file or folder" in result.stderr
    assert "1 new" in result.stdout  # the good file still went in
    store = project.open_store()
    try:
        assert store.article_count() == 1
    finally:
        store.close()


def test_a_digest_that_is_not_sent_is_a_failure(project: Project) -> None:
    (project.root / "blocker").write_text("a file where the outbox folder would go")
    project.configure(mailer={"outbox_dir": "blocker/outbox"})
    result = project.cli("run")
    assert result.exit_code == 1
    assert "not sent, will retry on the next run" in result.stderr
    assert project.feed.exists()  # the rest of the cycle ran


# -- status ---------------------------------------------------------------------------------------


def _next_utc(after: datetime, hour: int, weekday: int | None = None) -> datetime:
    """The first ``hour``:00 UTC after ``after`` (on ``weekday``, Monday = 0, if given)."""
    slot = after.replace(hour=hour, minute=0, second=0, microsecond=0)
    while slot <= after or (weekday is not None and slot.weekday() != weekday):
        slot += timedelta(days=1)
    return slot


def _status(project: Project) -> tuple[dict[str, str], datetime, datetime]:
    before = datetime.now(UTC).replace(microsecond=0)
    result = project.cli("status")
    after = datetime.now(UTC)
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    return lines, before, after


def test_status_of_a_fresh_project_then_after_a_run(project: Project) -> None:
    lines, before, after = _status(project)
    assert lines["articles"] == "0"
    assert lines["last digest"] == "none yet"
    assert lines["next digest"] in {
        f"{_next_utc(moment, 7).isoformat()} ('0 7 * * *', UTC)" for moment in (before, after)
    }

    assert project.cli("run").exit_code == 0
    [eml] = project.outbox_files()

    lines, before, after = _status(project)
    assert lines["articles"].startswith("1, newest ") and lines["articles"].endswith(repr(SAMPLE_TITLE))
    # The digest that was mailed, by the id it was written under, and its state.
    assert re.fullmatch(rf"{re.escape(eml.stem)} sent, 1 article, created \S+, sent \S+", lines["last digest"])
    assert "last error" not in lines
    assert lines["next digest"] in {
        f"{_next_utc(moment, 7).isoformat()} ('0 7 * * *', UTC)" for moment in (before, after)
    }


def test_status_reads_crontab_weekdays_as_crontab_does(project: Project) -> None:
    # crontab: 0 is Sunday. (APScheduler 3.x would read 0 as Monday.)
    project.configure(digest={"schedule": "0 9 * * 0"})
    lines, before, after = _status(project)
    sundays = {f"{_next_utc(moment, 9, weekday=6).isoformat()} ('0 9 * * 0', UTC)" for moment in (before, after)}
    assert lines["next digest"] in sundays


def test_status_names_a_failed_digest_and_its_error(project: Project) -> None:
    (project.root / "blocker").write_text("not a folder")
    project.configure(mailer={"outbox_dir": "blocker/outbox"})
    assert project.cli("run").exit_code == 1

    lines, _, _ = _status(project)
    assert re.search(r" pending, 1 article, created \S+, 1 attempts$", lines["last digest"])
    assert lines["last error"].startswith("outbox: cannot write ")


# -- digest preview -------------------------------------------------------------------------------


def test_digest_preview_writes_the_next_digest_and_sends_and_marks_nothing(project: Project, tmp_path: Path) -> None:
    assert project.cli("ingest", str(project.articles)).exit_code == 0
    out = tmp_path / "preview"

    result = project.cli("digest", "preview", "--out", str(out))

    assert result.exit_code == 0, result.output
    printed = [Path(line) for line in result.stdout.splitlines()]
    assert sorted(path.suffix for path in printed) == [".eml", ".html", ".txt"]
    assert sorted(printed) == sorted(out.iterdir())
    html, text, eml = (next(path for path in printed if path.suffix == s) for s in (".html", ".txt", ".eml"))
    assert SAMPLE_TITLE in html.read_text(encoding="utf-8")
    assert "The Kremlin has issued a scathing rebuke" in " ".join(text.read_text(encoding="utf-8").split())
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "Example News: 1 new"

    assert project.outbox_files() == []
    store = project.open_store()
    try:
        assert store.last_digest() is None
    finally:
        store.close()
    # Nothing was marked: the next run still sends this article.
    run = project.cli("run")
    assert run.exit_code == 0, run.output
    assert "1 article, written to" in run.stdout
    [sent] = project.outbox_files()
    sent_message = email.message_from_bytes(sent.read_bytes(), policy=email.policy.default)
    assert sent_message["Subject"] == "Example News: 1 new"


def test_digest_preview_without_out_writes_beside_the_config(project: Project) -> None:
    assert project.cli("ingest", str(project.articles)).exit_code == 0
    result = project.cli("digest", "preview")
    assert result.exit_code == 0, result.output
    printed = [Path(line) for line in result.stdout.splitlines()]
    assert len(printed) == 3
    assert all(path.parent == project.root / "preview" and path.is_file() for path in printed)


def test_digest_preview_with_nothing_new_says_so(project: Project, tmp_path: Path) -> None:
    assert project.cli("run").exit_code == 0
    out = tmp_path / "preview"

    result = project.cli("digest", "preview", "--out", str(out))

    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    assert line.startswith("digest: nothing new since the last digest, nothing to preview; ")
    assert "`publisher digest preview --last` shows the last one" in line
    assert not out.exists()
    assert len(project.outbox_files()) == 1


# -- feed -----------------------------------------------------------------------------------------


def test_feed_writes_the_atom_feed_from_the_store(project: Project) -> None:
    assert project.cli("ingest", str(project.articles)).exit_code == 0
    assert not project.feed.exists()

    result = project.cli("feed")

    assert result.exit_code == 0, result.output
    assert result.stdout == f"feeds: 4 documents in {project.feed.parent} (1 entry), 4 written, 0 removed\n"
    feed = feedparser.parse(project.feed.read_bytes())
    assert not feed.bozo, feed.bozo_exception
    assert [entry.title for entry in feed.entries] == [SAMPLE_TITLE]
    assert project.outbox_files() == []


# -- the installed entry point ------------------------------------------------------------------


def test_python_m_publisher_runs_the_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "publisher", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Turn a folder of articles into an Atom feed and an email digest" in done.stdout
    for command in ("daemon", "digest", "feed", "ingest", "run", "status"):
        assert re.search(rf"^\s+{command}\s", done.stdout, re.MULTILINE), command


def test_python_m_publisher_exits_2_on_an_unknown_command() -> None:
    done = subprocess.run([sys.executable, "-m", "publisher", "publish"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "No such command 'publish'" in done.stderr


# -- what a command imports -----------------------------------------------------------------------

# Run in a fresh interpreter: the command, then the names of the imported top-level packages.
IMPORTED = """
import sys
from publisher.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print(" ".join(sorted({name.partition(".")[0] for name in sys.modules})))
"""
# The libraries of the feed, the digest, the mailers, the store and the server.
WORK = {"sqlalchemy", "httpx", "jinja2", "lxml", "feedgen", "css_inline", "starlette", "uvicorn", "rich", "apscheduler"}


def _imported(*args: str, cwd: Path | None = None) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTED, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.parametrize("command", [(), ("run",), ("serve",), ("digest", "send"), ("status",)], ids=str)
def test_help_imports_none_of_the_libraries_that_do_the_work(command: tuple[str, ...]) -> None:
    imported = _imported(*command, "--help")
    assert "click" in imported  # the probe does see imports
    assert imported.isdisjoint(WORK), imported & WORK


def test_articles_list_imports_neither_the_feed_nor_the_digest_nor_the_server(project: Project) -> None:
    imported = _imported("--config", str(project.config_path), "articles", "list", cwd=project.root)
    assert "sqlalchemy" in imported  # it does read the store
    assert imported.isdisjoint({"jinja2", "lxml", "feedgen", "css_inline", "starlette", "uvicorn"}), imported
