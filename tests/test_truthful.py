"""Truthful status: a digest is "sent" only when every batch was accepted; one that needs the
operator makes every `publisher run` exit 1 with one line saying what to do; `status --json`
and `status --check` for monitoring; outbox copies never overwrite one another; a WebSub hub
that is down is one line a run, retried across runs, and never fails the run."""

from __future__ import annotations

import email
import email.policy
import json
import socket
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, inspect

from publisher import websub
from publisher.delivery.outbox import address_of, file_name
from publisher.websub import Backlog
from tests.conftest import NOW, Project, markdown_article
from tests.delivery_helpers import UNSUBSCRIBE_SECRET, subscribe
from tests.endpoint import Endpoint


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, project: Project) -> str:
    """The project's store on SQLite (its own file) or on a fresh PostgreSQL database."""
    if request.param == "postgresql":
        project.configure(store={"url": request.getfixturevalue("pg_url")})
    return str(request.param)


def _json_status(project: Project) -> dict[str, Any]:
    result = project.cli("status", "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# -- a digest the provider refused --------------------------------------------------------------


def test_a_refused_digest_is_not_sent_and_every_run_says_what_to_do_until_resumed(
    project: Project, endpoint: Endpoint, backend: str, at_now: Any
) -> None:
    project.configure(mailer={"provider": "webhook", "url": endpoint.url + "/hook", "retries": 0, "timeout": 5})
    endpoint.reply(401, {"message": "invalid key"})

    first = project.cli("run")

    assert first.exit_code == 1
    digest_id = _json_status(project)["digests"][0]["id"]
    for _ in range(2):  # not only the run that failed: every run until the operator acts
        again = project.cli("run")
        assert again.exit_code == 1, again.output
        [line] = again.stderr.splitlines()
        assert digest_id in line and "1 of 1 batch failed" in line and "HTTP 401: invalid key" in line, line
        assert "`publisher digest resume --retry-failed`" in line
        assert "Traceback" not in again.output
    assert len(endpoint.requests) == 1  # nothing was sent again without the operator's word

    shown = project.cli("status")
    assert shown.exit_code == 0
    assert f"last digest: {digest_id} incomplete" in shown.stdout
    assert ", sent " not in shown.stdout  # it reached nobody
    assert "0 of 1 recipient reached" in shown.stdout

    check = project.cli("status", "--check")
    assert check.exit_code == 1
    [problem] = check.stdout.splitlines()
    assert digest_id in problem and "--retry-failed" in problem

    data = _json_status(project)
    both = project.cli("status", "--json", "--check")
    assert both.exit_code == 1 and json.loads(both.stdout) == data
    assert data["ok"] is False
    [digest] = data["digests"]
    assert (digest["state"], digest["sent_at"]) == ("incomplete", None)
    assert digest["batches"] == {"total": 1, "accepted": 0, "failed": 1, "in_doubt": 0, "pending": 0, "sending": 0}
    assert digest["recipients"]["reached"] == 0
    assert [b["state"] for b in digest["unfinished_batches"]] == ["failed"]
    assert [(p["kind"], p["digest_id"]) for p in data["problems"]] == [("digest_incomplete", digest_id)]

    resumed = project.cli("digest", "resume", "--retry-failed")  # the key is fixed: the endpoint accepts
    assert resumed.exit_code == 0, resumed.output

    after = project.cli("run")
    assert after.exit_code == 0, after.output
    assert after.stderr == ""
    check = project.cli("status", "--check")
    assert (check.exit_code, check.stdout) == (0, "ok\n")
    data = _json_status(project)
    assert data["ok"] is True and data["problems"] == []
    assert data["digests"][0]["state"] == "sent" and data["digests"][0]["batches"]["accepted"] == 1


def test_a_digest_the_operator_closes_is_no_longer_reported(project: Project, endpoint: Endpoint, at_now: Any) -> None:
    project.configure(mailer={"provider": "webhook", "url": endpoint.url + "/hook", "retries": 0, "timeout": 5})
    endpoint.reply(403, {"message": "forbidden"})
    assert project.cli("run").exit_code == 1
    digest_id = _json_status(project)["digests"][0]["id"]

    wrong = project.cli("digest", "close", "20990101-000000-00000000")
    assert wrong.exit_code == 1 and len(wrong.stderr.splitlines()) == 1
    closed = project.cli("digest", "close", digest_id)

    assert closed.exit_code == 0, closed.output
    after = project.cli("run")
    assert after.exit_code == 0, after.output
    assert project.cli("status", "--check").exit_code == 0
    shown = project.cli("status")
    assert f"digest {digest_id}: closed" in shown.stdout and "0 of 1 recipient reached" in shown.stdout
    assert project.cli("digest", "close", digest_id).exit_code == 1  # only an incomplete digest closes


# -- status on a folder with no store -----------------------------------------------------------


def test_status_creates_no_sqlite_store(project: Project) -> None:
    db = project.root / "publisher.db"
    assert not db.exists()

    shown = project.cli("status")
    check = project.cli("status", "--check")
    data = _json_status(project)

    assert shown.exit_code == 0 and "no store yet" in shown.stdout
    assert check.exit_code == 1
    [line] = check.stdout.splitlines()
    assert "no store yet" in line and "[store] url" in line
    assert data["store"]["exists"] is False and data["ok"] is False
    assert data["digests"] == [] and data["articles"]["count"] == 0
    assert not db.exists() and not list(project.root.glob("publisher.db*"))


def test_status_creates_no_tables_in_an_empty_postgresql_database(project: Project, pg_url: str) -> None:
    project.configure(store={"url": pg_url})

    check = project.cli("status", "--check")

    assert check.exit_code == 1 and "no store yet" in check.stdout
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert inspect(conn).get_table_names() == []
    finally:
        engine.dispose()


def test_status_json_after_a_good_run(project: Project, backend: str, at_now: Any) -> None:
    assert project.cli("run").exit_code == 0

    data = _json_status(project)
    check = project.cli("status", "--check")

    assert (check.exit_code, check.stdout) == (0, "ok\n")
    assert data["format"] == 1 and data["ok"] is True
    assert data["store"]["exists"] is True and isinstance(data["store"]["schema_version"], int)
    assert data["articles"]["count"] == 1
    [digest] = data["digests"]
    assert digest["state"] == "sent" and digest["sent_at"] == NOW.isoformat()
    assert digest["batches"]["accepted"] == digest["batches"]["total"] == 1
    assert data["next_digest"] == {"at": "2026-11-24T07:00:00+00:00", "schedule": "0 7 * * *", "timezone": "UTC"}
    assert data["problems"] == [] and data["hubs"] == []


# -- outbox copies ------------------------------------------------------------------------------

LOOKALIKES = ["a+b@example.org", "a_b@example.org", "a/b@example.org", "a=b@example.org"]


def test_every_reader_of_a_local_list_gets_their_own_outbox_copy(
    project: Project, monkeypatch: pytest.MonkeyPatch, at_now: Any
) -> None:
    monkeypatch.setenv("PUBLISHER_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)
    subscribe(project, LOOKALIKES)

    result = project.cli("run")

    assert result.exit_code == 0, result.output
    [folder] = [p for p in project.outbox.iterdir() if p.is_dir()]
    copies = sorted(folder.rglob("*.eml"))
    assert len(copies) == 4
    readers = {}
    for copy in copies:
        message = email.message_from_bytes(copy.read_bytes(), policy=email.policy.default)
        readers[address_of(copy.relative_to(folder).as_posix())] = str(message["To"])
    assert sorted(readers) == sorted(LOOKALIKES)
    assert all(address in to for address, to in readers.items())
    assert "4 of 4 recipients reached" in project.cli("status").stdout


@given(st.lists(st.emails(), min_size=2, max_size=8, unique_by=str.lower))
def test_outbox_names_are_unique_reversible_and_fit_a_file_system(addresses: list[str]) -> None:
    names = [file_name(address) for address in addresses]

    assert len(set(names)) == len(names)
    assert len({name.lower() for name in names}) == len(names)  # a case-insensitive file system too
    for address, name in zip(addresses, names, strict=True):
        assert address_of(name) == address
        assert all(0 < len(part.encode()) <= 210 and part not in (".", "..") for part in name.split("/"))
        assert not name.startswith(".")


def test_a_long_address_is_a_name_each_part_of_which_fits(project: Project) -> None:
    address = "\u00fc" * 60 + "@" + ".".join(["m\u00fcnchen"] * 6) + ".de"

    name = file_name(address)
    path = project.outbox / "d" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")  # the file system takes it

    assert address_of(path.relative_to(project.outbox / "d").as_posix()) == address
    assert "/" in name and not (project.outbox / "d" / file_name("x@example.org")).exists()


# -- WebSub hubs --------------------------------------------------------------------------------

FEEDS = "https://news.example.org/feeds/"


def _pinged(endpoint: Endpoint, start: int = 0) -> list[str]:
    return [dict(request.form())["hub.url"] for request in endpoint.requests[start:]]


def test_a_hub_that_is_down_is_one_line_a_run_never_fails_it_and_is_retried_later(
    project: Project, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setenv("PUBLISHER_NOW", NOW.isoformat())
    project.configure(feed={"hubs": [endpoint.url + "/hub"]})
    project.add_article("tagged.md", markdown_article("Tagged", "2026-11-20", ["Economy"]))
    for _ in range(10):
        endpoint.reply(503, {"message": "hub is down"})

    first = project.cli("run")

    assert first.exit_code == 0, first.output
    assert len(endpoint.requests) == 1  # the first ping found it down: no retries, no other feed tried
    [line] = first.stderr.splitlines()
    assert line.startswith("websub: ") and "is down" in line and "HTTP 503" in line and "4 feeds" in line, line

    second = project.cli("run")  # within the backoff: the hub is not asked
    assert second.exit_code == 0, second.output
    assert len(endpoint.requests) == 1
    [line] = second.stderr.splitlines()
    assert "next try after" in line
    assert "websub:" in project.cli("status").stdout
    assert _json_status(project)["hubs"][0]["failures"] == 1

    # The tag goes away meanwhile: its feed is deleted, and must not be announced.
    project.add_article("tagged.md", markdown_article("Tagged", "2026-11-20"))
    endpoint.replies.clear()
    monkeypatch.setenv("PUBLISHER_NOW", (NOW + timedelta(minutes=2)).isoformat())
    third = project.cli("run")

    assert third.exit_code == 0, third.output
    assert third.stderr == ""
    pinged = _pinged(endpoint, start=1)
    assert FEEDS + "tags/economy.xml" not in pinged
    assert sorted(pinged) == sorted([FEEDS + "atom.xml", FEEDS + "rss.xml", FEEDS + "feed.json"])
    assert _json_status(project)["hubs"] == []


@pytest.fixture
def silent_hub() -> Iterator[str]:
    """A hub whose connections the kernel accepts (backlog) and nobody ever answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as sock:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hub"


def test_hubs_that_never_answer_cost_one_budget_and_one_line_each(
    project: Project, silent_hub: str, endpoint: Endpoint, tmp_path: Path
) -> None:
    topics = [FEEDS + "atom.xml", FEEDS + "rss.xml", FEEDS + "feed.json"]
    with closing(project.open_store()) as store:
        backlog = Backlog.load(store)

    results, owed = websub.announce(
        [silent_hub, endpoint.url + "/hub"], topics, backlog, NOW, exists=lambda t: True, budget=2.0, timeout=0.3
    )

    down = [r for r in results if r.hub == websub.http.printable_url(silent_hub)]
    assert len(down) == 1 and "is down" in down[0].message and "no answer" in down[0].message
    # the silent hub took its timeout; what the budget left went to the other hub, the rest waits
    [waiting] = [h for h in owed.hubs() if h.hub == down[0].hub]
    assert waiting.topics == tuple(topics) and waiting.failures == 1
    assert waiting.retry_at is not None and waiting.retry_at > NOW
    other = [h for h in owed.hubs() if h.hub != down[0].hub]
    answered = [r for r in results if r.hub != down[0].hub and r.ok]
    assert len(answered) + sum(len(h.topics) for h in other) == len(topics)


def test_pings_owed_in_the_old_format_are_sent_to_every_hub(project: Project, endpoint: Endpoint, at_now: Any) -> None:
    project.configure(feed={"hubs": [endpoint.url + "/a", endpoint.url + "/b"]})
    assert project.cli("run").exit_code == 0  # the feeds exist, announced
    endpoint.requests.clear()
    with closing(project.open_store()) as store:  # as the previous version left a failed ping
        store.put_setting("websub_pending", json.dumps([FEEDS + "rss.xml", FEEDS + "tags/gone.xml"]))

    result = project.cli("run")

    assert result.exit_code == 0, result.output
    assert [(r.route, dict(r.form())["hub.url"]) for r in endpoint.requests] == [
        ("/a", FEEDS + "rss.xml"),
        ("/b", FEEDS + "rss.xml"),
    ]
    assert project.cli("run").exit_code == 0 and len(endpoint.requests) == 2  # owed no more
