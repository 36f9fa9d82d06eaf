"""Readers' topics (publisher.preferences, the page of publisher.preferences_page) and the GDPR
commands (publisher.gdpr): end to end, through a real server on 127.0.0.1 and the outbox.

The readers choose on the page the digest's own footer links to; the next digest is read back
from the outbox with the stdlib ``email`` parser, and its batches from the journal. The store
is SQLite or PostgreSQL (``store`` parameter).
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from publisher import dispatch, journal, preferences, server, subscribers
from publisher.delivery import Envelope, Mailer, Receipt, build_mailer
from publisher.digest import create_next
from publisher.errors import DeliveryError
from publisher.store import Store
from publisher.store import preferences as table
from tests.conftest import NOW, Project, markdown_article
from tests.test_server import TIMEOUT, Running

SECRET = "preferences-secret-4Tq9Wm2Lx8Rz"
READERS = ["ada@example.org", "bob@example.org", "cy@example.org", "dee@example.org", "eve@example.org"]
PAGE = "https://news.example.org/preferences"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, project: Project, monkeypatch: pytest.MonkeyPatch, at_now: object) -> Project:
    """A local list of READERS, a preferences page, and a first batch of tagged articles."""
    monkeypatch.setenv("PUBLISHER_UNSUBSCRIBE_SECRET", SECRET)
    for path in project.articles.iterdir():
        path.unlink()  # the sample article has no tags: these tests want their own
    store_url = {"url": request.getfixturevalue("pg_url")} if request.param == "postgresql" else {}
    project.configure(digest={"recipients": "subscribers", "preferences_url": PAGE}, store=store_url)
    project.add_article("python-1.md", markdown_article("Snakes at work", "2026-11-23", ["Python"]))
    project.add_article("rust-1.md", markdown_article("Borrowing rules", "2026-11-23", ["Rust"]))
    project.add_article("go-1.md", markdown_article("Goroutines", "2026-11-23", ["Go"]))
    with opened(project) as store:
        subscribers.add(store, [(a, None) for a in READERS], NOW, resubscribe=False)
    return project


@pytest.fixture
def client(site: Project) -> Iterator[httpx.Client]:
    with Running(site.config()) as running, httpx.Client(base_url=running.url, timeout=TIMEOUT) as http:
        yield http


class opened:
    def __init__(self, project: Project) -> None:
        self.store = project.open_store()

    def __enter__(self) -> Store:
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.store.close()


def copies(project: Project, seen: set[Path]) -> tuple[Path, dict[str, EmailMessage]]:
    """The outbox folder of the digest written since ``seen``, and its copies by To address."""
    [folder] = [path for path in project.outbox.iterdir() if path.is_dir() and path not in seen]
    found: dict[str, EmailMessage] = {}
    for path in folder.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        found[str(message["To"])] = message
    return folder, found


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def titles(message: EmailMessage) -> set[str]:
    text = text_of(message)
    return {
        title for title in ("Snakes", "Borrowing", "Goroutines", "Decorators", "Lifetimes", "Flexbox") if title in text
    }


def page_link(message: EmailMessage) -> str:
    """The footer's preferences link, as a reader's mail client shows it (path and query)."""
    [url] = re.findall(r"Choose your topics: (\S+)", text_of(message))
    html = message.get_body(("html",))
    assert html is not None and "Choose your topics</a>" in str(html.get_content())
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == PAGE
    return f"{parts.path}?{parts.query}"


def choose(client: httpx.Client, link: str, *topics: str) -> httpx.Response:
    form = {"action": "save", "mode": "some", "topic": list(topics)} if topics else {"action": "save", "mode": "all"}
    return client.post(link, data=form)


def test_choices_made_on_the_page_shape_the_next_digest_and_share_batches(site: Project, client: httpx.Client) -> None:
    first = site.cli("run")
    assert first.exit_code == 0, first.output
    folder, mails = copies(site, set())
    assert sorted(mails) == READERS
    assert all(titles(m) == {"Snakes", "Borrowing", "Goroutines"} for m in mails.values())
    links = {address: page_link(message) for address, message in mails.items()}

    shown = client.get(links["ada@example.org"])
    assert shown.status_code == 200
    assert 'value="python"' in shown.text and 'value="rust"' in shown.text and 'value="go"' in shown.text
    for address, topics in [("ada", ["python"]), ("bob", ["python"]), ("cy", ["rust", "go"]), ("dee", ["go"])]:
        saved = choose(client, links[f"{address}@example.org"], *topics)
        assert saved.status_code == 200 and "Your choice is saved" in saved.text
    # A topic no article has is not kept: the page offers only what exists.
    choose(client, links["cy@example.org"], "rust", "nonsense")

    site.add_article("python-2.md", markdown_article("Decorators", "2026-11-23", ["python", "Web"]))
    site.add_article("rust-2.md", markdown_article("Lifetimes", "2026-11-23", ["Rust"]))
    site.add_article("web-1.md", markdown_article("Flexbox", "2026-11-23", ["Web"]))
    second = site.cli("run")
    assert second.exit_code == 0, second.output
    second_folder, later = copies(site, {folder})

    assert sorted(later) == ["ada@example.org", "bob@example.org", "cy@example.org", "eve@example.org"]  # dee: no Go
    assert titles(later["ada@example.org"]) == titles(later["bob@example.org"]) == {"Decorators"}
    assert titles(later["cy@example.org"]) == {"Lifetimes"}
    assert titles(later["eve@example.org"]) == {"Decorators", "Lifetimes", "Flexbox"}  # no choice: everything
    with opened(site) as store:
        digest = store.digest(second_folder.name)  # the outbox's folder is named after the digest
        assert digest is not None
        batches = journal.batches_of(store, digest.id)
        members = {b.number: [p.email for p in journal.recipients(store, b.id)] for b in batches}
        assert sorted(members.values()) == [
            ["ada@example.org", "bob@example.org"],
            ["cy@example.org"],
            ["eve@example.org"],
        ]
        assert members[1] == ["eve@example.org"]  # the digest's own message first
        copied = preferences.messages(site.config(), store, digest)
        assert set(copied) == {n for n in members if n != 1}
        assert all(copy.message != digest.message for copy in copied.values())
    # Each copy keeps the reader's own links: the personal unsubscribe link, the page's link.
    assert "s=" in str(later["cy@example.org"]["List-Unsubscribe"])
    assert page_link(later["cy@example.org"]) == links["cy@example.org"]

    third = site.cli("run")  # nothing new: nothing sent twice
    assert third.exit_code == 0, third.output
    assert len([p for p in site.outbox.iterdir() if p.is_dir()]) == 2


def test_a_reader_with_no_choice_gets_the_digest_byte_for_byte(site: Project) -> None:
    with opened(site) as store:
        [ada] = [s for s in subscribers.listing(store) if s.email == "ada@example.org"]
        assert preferences.choose(store, ada.token, ["Rust"], NOW)
        # "Everything" again: the row goes, and with nobody choosing the plan is the journal's own.
        assert preferences.choose(store, ada.token, None, NOW)
        assert not table.anyone_chose(store)
        assert preferences.choose(store, ada.token, ["rust"], NOW)
    assert site.cli("run").exit_code == 0
    with opened(site) as store:
        digest = store.last_digest()
        assert digest is not None
        [everyone_batch, ada_batch] = journal.batches_of(store, digest.id)
        assert [p.email for p in journal.recipients(store, ada_batch.id)] == ["ada@example.org"]
        assert preferences.messages(site.config(), store, digest).keys() == {2}
        assert len(journal.recipients(store, everyone_batch.id)) == 4
    _, mails = copies(site, set())
    assert titles(mails["ada@example.org"]) == {"Borrowing"}
    assert titles(mails["eve@example.org"]) == {"Snakes", "Borrowing", "Goroutines"}


def test_a_plan_is_written_once_and_groups_readers_by_what_they_get(site: Project) -> None:
    """Two choices that select the same articles share batches; batches hold at most ``size``."""
    assert site.cli("ingest", str(site.articles)).exit_code == 0
    config = site.config()
    with opened(site) as store:
        tokens = {s.email: s.token for s in subscribers.listing(store)}
        for address, topics in [("ada", ["python"]), ("bob", ["PYTHON", "web"]), ("cy", ["python"]), ("dee", ["rust"])]:
            preferences.choose(store, tokens[f"{address}@example.org"], topics, NOW)
        digest = create_next(config, store, NOW)
        assert digest is not None
        assert preferences.plan(config, store, digest.id, 2, NOW)
        assert not preferences.plan(config, store, digest.id, 2, NOW)  # planned already: nothing changes
        planned = [[p.email for p in journal.recipients(store, b.id)] for b in journal.batches_of(store, digest.id)]
    # eve (everything) first; ada, bob and cy all get the Python article alone: one group, in batches of 2.
    assert planned == [
        ["eve@example.org"],
        ["ada@example.org", "bob@example.org"],
        ["cy@example.org"],
        ["dee@example.org"],
    ]


def test_when_nobody_takes_everything_the_first_batch_carries_a_copy(site: Project) -> None:
    with opened(site) as store:
        for reader in subscribers.listing(store):
            preferences.choose(store, reader.token, ["Rust"], NOW)
    assert site.cli("run").exit_code == 0
    config = site.config()
    with opened(site) as store:
        digest = store.last_digest()
        assert digest is not None
        [batch] = journal.batches_of(store, digest.id)
        assert batch.recipient_count == len(READERS)
        [(number, copy)] = preferences.messages(config, store, digest).items()
    assert number == 1
    assert [a["title"] for a in copy.articles] == ["Borrowing rules"]
    _, mails = copies(site, set())
    assert all(titles(m) == {"Borrowing"} for m in mails.values())


class FailsOnce:
    """The outbox, refusing one batch (a passing failure) the first time it comes: every request
    is recorded, so that a test sees what each batch carried on each try."""

    name, idempotent, batch_size, owns_list = "fails-once", True, 1000, False

    def __init__(self, inner: Mailer, key: str) -> None:
        self.inner, self.key = inner, key
        self.requests: list[tuple[str, bytes, tuple[str, ...]]] = []

    def send(self, envelope: Envelope) -> Receipt:
        self.requests.append((envelope.key, envelope.digest.message, tuple(r.email for r in envelope.recipients)))
        if envelope.key == self.key and sum(key == self.key for key, _, _ in self.requests) == 1:
            raise DeliveryError("503 from the test: try again later", retryable=True)
        return self.inner.send(envelope)

    def prepare(self) -> None:
        self.inner.prepare()

    def close(self) -> None:
        self.inner.close()


def test_a_retried_batch_carries_the_copy_as_planned_and_nothing_goes_twice(site: Project) -> None:
    config = site.config()
    with opened(site) as store:
        tokens = {s.email: s.token for s in subscribers.listing(store)}
        preferences.choose(store, tokens["ada@example.org"], ["python"], NOW)
    assert site.cli("ingest", str(site.articles)).exit_code == 0
    with opened(site) as store:
        digest = create_next(config, store, NOW)
        assert digest is not None
        mailer = FailsOnce(build_mailer(config), f"{digest.id}-0002")  # ada's batch: the copy
        first = dispatch.send_digest(config, store, mailer, NOW, create=False)
        assert first.state == "pending", first.message
        # Ada changes her mind after the plan: the batch planned for her still goes as planned.
        preferences.choose(store, tokens["ada@example.org"], ["go"], NOW)
        second = dispatch.send_digest(config, store, mailer, NOW, create=False)
        assert second.state == "sent", second.message
    [planned, retried] = [(body, to) for key, body, to in mailer.requests if key.endswith("-0002")]
    assert planned == retried and planned[1] == ("ada@example.org",)
    accepted = [key for key, _, _ in mailer.requests]
    assert sorted(accepted) == sorted([f"{digest.id}-0001", f"{digest.id}-0002", f"{digest.id}-0002"])
    _, mails = copies(site, set())
    assert titles(mails["ada@example.org"]) == {"Snakes"}


def test_the_webhook_gets_each_readers_preferences_link(site: Project, endpoint: Any) -> None:
    site.configure(mailer={"provider": "webhook", "url": endpoint.url + "/hook", "retries": 0, "timeout": 5})
    assert site.cli("run").exit_code == 0
    [request] = endpoint.requests
    body = request.json()
    assert body["personal_preferences"] in body["text"]
    for reader in body["recipients"]:
        unsubscribe, mine = urlsplit(reader["unsubscribe_url"]), urlsplit(reader["preferences_url"])
        assert f"{mine.scheme}://{mine.netloc}{mine.path}" == PAGE
        assert mine.query == unsubscribe.query and "s=" in mine.query and "t=" in mine.query


def test_forged_cross_origin_and_too_many_requests_are_refused(site: Project, client: httpx.Client) -> None:
    with opened(site) as store:
        ada = next(s for s in subscribers.listing(store) if s.email == "ada@example.org")
    good = f"/preferences?s={ada.token}&t={subscribers.signature(SECRET.encode(), ada.token)}"
    forged = f"/preferences?s={ada.token}&t={subscribers.signature(b'not-the-secret-at-all', ada.token)}"
    unknown = f"/preferences?s=nobody&t={subscribers.signature(SECRET.encode(), 'nobody')}"
    refused = [choose(client, forged, "rust"), choose(client, unknown, "rust"), client.get(forged)]
    assert {r.status_code for r in refused} == {400}
    assert len({r.text for r in refused}) == 1  # the same page, whatever exists behind the link
    too_many = client.post(good, content="&".join(["topic=rust"] * 1000), headers={"Content-Type": FORM})
    too_long = client.post(good, content="topic=" + "x" * 20_000, headers={"Content-Type": FORM})
    assert (too_many.status_code, too_long.status_code) == (413, 413)
    other = client.post(
        good, data={"action": "save", "mode": "some", "topic": "rust"}, headers={"Origin": "https://evil.example"}
    )
    assert other.status_code == 400
    with opened(site) as store:
        assert preferences.choice_of(store, ada.id) is None  # nothing changed
    answers = [client.get(good).status_code for _ in range(preferences_page_burst())]
    assert answers[0] == 200 and answers[-1] == 429  # the requests above took their tokens too
    assert client.get(unknown).status_code == 429  # the limit answers first, whatever the link


def preferences_page_burst() -> int:
    from publisher.preferences_page import BURST

    return BURST


def test_unsubscribing_from_the_page(site: Project, client: httpx.Client) -> None:
    with opened(site) as store:
        ada = next(s for s in subscribers.listing(store) if s.email == "ada@example.org")
    link = f"/preferences?s={ada.token}&t={subscribers.signature(SECRET.encode(), ada.token)}"
    assert client.get(link).status_code == 200
    done = client.post(link, data={"action": "unsubscribe"})
    assert done.status_code == 200 and "is unsubscribed" in done.text
    with opened(site) as store:
        found = subscribers.find(store, "ada@example.org")
        assert found is not None and found.state == "unsubscribed"


def test_export_then_forget_and_the_address_never_comes_back(site: Project, tmp_path: Path) -> None:
    with opened(site) as store:
        ada = next(s for s in subscribers.listing(store) if s.email == "ada@example.org")
        preferences.choose(store, ada.token, ["Python"], NOW)
    assert site.cli("run").exit_code == 0

    exported = site.cli("subscribers", "export", "ADA@example.org")
    assert exported.exit_code == 0, exported.output
    data = json.loads(exported.output)
    assert data["subscriber"]["email"] == "ada@example.org"
    assert data["preferences"] == [{"digest": "digest", "topics": ["python"], "updated_at": NOW.isoformat()}]
    assert [b["state"] for b in data["batches"]] == ["accepted"]

    forgotten = site.cli("subscribers", "forget", "ada@example.org")
    assert forgotten.exit_code == 0, forgotten.output
    assert forgotten.output == "erased ada@example.org: only a one-way hash of the address is kept\n"
    again = site.cli("subscribers", "export", "ada@example.org")
    assert again.exit_code == 1
    assert again.output.strip() == (
        "publisher: error: 'ada@example.org': erased on 2026-11-24; nothing is stored about it but a one-way hash"
    )
    with opened(site) as store:
        assert subscribers.find(store, "ada@example.org") is None
        with store.transaction() as conn:
            from sqlalchemy import select, text

            rows = conn.execute(text("SELECT email FROM batch_recipients")).scalars().all()
            hashes = conn.execute(select(table.forgotten.c.hash)).scalars().all()
        assert "ada@example.org" not in rows and len(rows) == 4
        assert hashes == [subscribers.forget_hash(SECRET.encode(), "ada@example.org")]
        assert "ada" not in hashes[0]

    csv = tmp_path / "list.csv"
    csv.write_text("email\nAda@Example.org\nnew@example.org\n", encoding="utf-8")
    imported = site.cli("subscribers", "import", str(csv))
    assert imported.exit_code == 0, imported.output
    assert "1 added" in imported.output and "1 erased on request not added" in imported.output
    added = site.cli("subscribers", "add", "ada@example.org")
    assert added.exit_code == 1
    assert added.output.strip() == (
        "publisher: error: ada@example.org: erased at the reader's request (`subscribers forget`); not added"
    )
    with opened(site) as store:
        assert subscribers.find(store, "ada@example.org") is None
        assert subscribers.find(store, "new@example.org") is not None


def test_forget_refuses_an_address_not_on_the_list_and_import_needs_the_secret(
    site: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = site.cli("subscribers", "forget", "nobody@example.org")
    assert missing.exit_code == 1
    assert missing.output.strip() == (
        "publisher: error: 'nobody@example.org': not on the list (see `publisher subscribers list --all`)"
    )
    assert site.cli("subscribers", "forget", "bob@example.org").exit_code == 0
    monkeypatch.delenv("PUBLISHER_UNSUBSCRIBE_SECRET")
    refused = site.cli("subscribers", "add", "someone@example.org")
    assert refused.exit_code != 0
    assert "secret" in refused.output and "Traceback" not in refused.output


def test_unsubscribe_links_are_limited_each_on_its_own_and_guesses_per_client(
    site: Project, client: httpx.Client
) -> None:
    with opened(site) as store:
        readers = subscribers.listing(store)
    links = [f"/unsubscribe?s={r.token}&t={subscribers.signature(SECRET.encode(), r.token)}" for r in readers]
    forged = f"/unsubscribe?s={readers[0].token}&t={subscribers.signature(b'not-the-secret-at-all', 'x')}"
    # Guesses from one client run out; the readers' own links from that client still work:
    # a mail provider's servers click many readers' links from one address.
    from publisher.signup_pages import PAGE_BURST

    guesses = [client.get(forged).status_code for _ in range(PAGE_BURST + 1)]
    assert guesses[0] == 400 and guesses[-1] == 429
    assert all(client.get(link).status_code == 200 for link in links)
    # One link asked for over and over is limited on its own.
    hammered = [client.get(links[0]).status_code for _ in range(server.LINK_BURST + 1)]
    assert hammered[-1] == 429 and client.get(links[1]).status_code == 200
