"""``publisher digest hold`` / ``release``: no digest goes out while held; the articles stay in the feeds."""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
from contextlib import closing
from datetime import datetime

import feedparser
import pytest

from publisher import clock, scheduler
from tests.conftest import SAMPLE_TITLE, Project, markdown_article, run_publisher


def publisher(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m publisher ARGS`` in the project's folder (the program's clock comes with the environment)."""
    return run_publisher(*args, cwd=project.root, unset=("PUBLISHER_CONFIG",))


def subjects(project: Project) -> list[str]:
    found = []
    for path in project.outbox_files():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.append(str(message["Subject"]))
    return found


def feed_titles(project: Project) -> list[str]:
    return [entry.title for entry in feedparser.parse(project.feed.read_bytes()).entries]


def test_a_held_digest_waits_for_the_release_and_the_feeds_go_on(project: Project, at_now: datetime) -> None:
    held = publisher(project, "digest", "hold")
    assert held.returncode == 0, held.stderr
    assert held.stdout == (
        f"digest: held since {at_now.isoformat()}; `publisher digest release` lets the next one go out\n"
    )

    run = publisher(project, "run")
    assert run.returncode == 0, run.stderr  # holding is not a failure
    assert f"digest: held since {at_now.isoformat()}, no email sent" in run.stdout
    assert project.outbox_files() == []
    assert feed_titles(project) == [SAMPLE_TITLE]  # the article is in the feeds all the same

    send = publisher(project, "digest", "send")
    assert (send.returncode, project.outbox_files()) == (0, [])
    assert "held since" in send.stdout

    status = publisher(project, "status")
    assert f"digest hold: held since {at_now.isoformat()}" in status.stdout
    shown = json.loads(publisher(project, "status", "--json").stdout)
    assert shown["hold"] == {"held": True, "since": at_now.isoformat()}
    assert shown["ok"] is True  # a hold is the operator's choice, not a problem
    assert publisher(project, "status", "--check").returncode == 0

    released = publisher(project, "digest", "release")
    assert released.stdout == f"digest: released (held since {at_now.isoformat()})\n"
    assert publisher(project, "digest", "release").stdout == "digest: was not held\n"
    assert json.loads(publisher(project, "status", "--json").stdout)["hold"] == {"held": False, "since": None}

    run = publisher(project, "run")
    assert run.returncode == 0, run.stderr
    assert len(subjects(project)) == 1  # the article that waited goes out in the first digest after


def test_holding_twice_keeps_the_first_time(
    project: Project, at_now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert publisher(project, "digest", "hold").returncode == 0
    monkeypatch.setenv(clock.ENV, "2026-11-25T08:00:00+00:00")
    again = publisher(project, "digest", "hold")
    assert f"held since {at_now.isoformat()}" in again.stdout


def test_the_daemons_digest_job_respects_the_hold(project: Project, at_now: datetime) -> None:
    project.add_article("second.md", markdown_article("Second", "2026-11-24T05:00:00Z"))
    assert publisher(project, "digest", "hold").returncode == 0

    assert scheduler.digest_job(str(project.config_path)) == "held"

    assert project.outbox_files() == []
    assert sorted(feed_titles(project)) == sorted([SAMPLE_TITLE, "Second"])  # the job's refresh still ran
    assert publisher(project, "digest", "release").returncode == 0
    assert scheduler.digest_job(str(project.config_path)) == "sent"
    assert len(project.outbox_files()) == 1


def test_a_digest_already_begun_is_not_held(project: Project, at_now: datetime) -> None:
    """Hold stops new digests; one that is pending (created, retrying) is finished by `resume`."""
    from publisher.digest import create_next

    ingested = publisher(project, "ingest", str(project.articles))
    assert ingested.returncode == 0, ingested.stderr
    with closing(project.open_store()) as store:
        assert create_next(project.config(), store, at_now) is not None
    assert publisher(project, "digest", "hold").returncode == 0

    resumed = publisher(project, "digest", "resume")

    assert resumed.returncode == 0, resumed.stderr
    assert len(project.outbox_files()) == 1


def test_hold_creates_the_store_release_does_not(project: Project) -> None:
    released = publisher(project, "digest", "release")
    assert released.returncode == 0
    assert released.stderr.startswith("publisher: no store yet at ")
    assert not (project.root / "publisher.db").exists()
    assert publisher(project, "digest", "hold").returncode == 0
    assert (project.root / "publisher.db").exists()
