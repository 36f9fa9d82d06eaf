"""Several digests per site ([[digest]] blocks): each with its own schedule and filter, each
exactly once per article, its missed slots coalesced; the single [digest] as before."""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import text

from publisher.config import DigestConfig
from publisher.errors import ConfigError
from publisher.store import Store
from publisher.store import digests as digest_rows
from tests.conftest import Project, markdown_article

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
DAYS = 30
DOWN = range(13, 16)  # Sun 15, Mon 16, Tue 17 Nov: no run at all (the weekly's Monday slot too)
RUN_HOURS = (6, 8, 10)
COMMON = {
    "from": "Example News <news@example.org>",
    "to": ["subscribers@lists.example.org"],
    "unsubscribe_url": "https://news.example.org/unsubscribe",
}
DAILY = COMMON | {"name": "daily", "schedule": "0 7 * * *", "tags": ["news"], "subject": "Daily: {{ articles|length }}"}
WEEKLY = COMMON | {
    "name": "weekly",
    "schedule": "0 9 * * 1",
    "tags": ["analysis"],
    "subject": "Weekly: {{ articles|length }}",
    "backlog": "14d",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, project: Project) -> Iterator[str]:
    if request.param == "postgresql":
        project.configure(store={"url": request.getfixturevalue("pg_url")})
    yield request.param


def several(project: Project, *blocks: dict[str, Any]) -> None:
    project.settings["digest"] = list(blocks)
    project.configure()


def tags_of(day: int) -> list[str]:
    """Day by day: news, analysis, both."""
    return [["news"], ["analysis"], ["news", "analysis"]][day % 3]


def mailed(project: Project) -> list[EmailMessage]:
    found = []
    for path in sorted(project.outbox.rglob("*.eml")) if project.outbox.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def digest_name(message: EmailMessage) -> str:
    match = re.fullmatch(r"<([a-z]+)-\d{8}-\d{6}-[0-9a-f]{8}(\.[0-9a-f]+)?@example\.org>", str(message["Message-ID"]))
    assert match, message["Message-ID"]
    return match.group(1)


def titles(message: EmailMessage) -> list[str]:
    part = message.get_body(("plain",))
    assert part is not None
    return re.findall(r"Day \d\d [a-z+]+", str(part.get_content()))


def test_two_digests_over_thirty_days_each_article_once_in_each_it_matches(project: Project, backend: str) -> None:
    for sample in project.articles.iterdir():
        sample.unlink()
    several(project, DAILY, WEEKLY)
    for day in range(DAYS):
        date = START + timedelta(days=day)
        title = f"Day {day:02d} {'+'.join(tags_of(day))}"
        project.add_article(
            f"day{day:02d}.md", markdown_article(title, f"{date:%Y-%m-%d}T05:00:00Z", tags_of(day), "Text.")
        )
        if day in DOWN:
            continue
        for hour in RUN_HOURS:
            done = project.cli("run", env={"PUBLISHER_NOW": date.replace(hour=hour).isoformat()})
            assert done.exit_code == 0, done.output

    got: dict[str, list[str]] = {"daily": [], "weekly": []}
    messages = mailed(project)
    for message in messages:
        shown = titles(message)
        assert shown, "never an empty email"
        assert message["Subject"] == f"{digest_name(message).capitalize()}: {len(shown)}"
        got[digest_name(message)] += shown
    every = [f"Day {d:02d} {'+'.join(tags_of(d))}" for d in range(DAYS)]
    # The first run (day 0, 06:00) only notes the digests; the daily's first slot is day 0 07:00.
    assert sorted(got["daily"]) == [t for t in every if "news" in t]
    # The weekly's last slot is Monday 30 Nov (day 28) 09:00: day 29's article waits for the next.
    assert sorted(got["weekly"]) == [t for t in every[:29] if "analysis" in t]
    both = [t for t in every if "news+analysis" in t]
    assert both and all(t in got["daily"] and t in got["weekly"] for t in both[:-1])

    store = Store.open(project.config().store_url)
    try:
        made = {name: [d.created_at for d in store.recent_digests(100, name)][::-1] for name in got}
        assert all(d.state == "sent" for d in store.recent_digests(100))
    finally:
        store.close()
    # One daily a day at the 08:00 run (none on a day with nothing new for it), and over the
    # three days down one catch-up digest, at the first run after them: not three.
    back = START + timedelta(days=DOWN.stop, hours=6)
    down_from = START + timedelta(days=DOWN.start)
    assert [t for t in made["daily"] if down_from <= t <= back] == [back]
    assert [t for t in made["weekly"] if down_from <= t <= back] == [back]
    news_days = [d for d in range(DAYS) if "news" in tags_of(d) and d not in DOWN and d != DOWN.stop]
    assert [t for t in made["daily"] if t != back] == [START + timedelta(days=d, hours=8) for d in news_days]
    mondays = [START + timedelta(days=d, hours=10) for d in (7, 21, 28)]
    assert [t for t in made["weekly"] if t != back] == mondays
    assert len(messages) == len(made["daily"]) + len(made["weekly"])


def test_the_single_digest_sends_on_every_run_as_before(project: Project) -> None:
    for sample in project.articles.iterdir():
        sample.unlink()
    for day in range(3):
        date = START + timedelta(days=day)
        project.add_article(
            f"d{day}.md", markdown_article(f"Day {day:02d} news", f"{date:%Y-%m-%d}T05:00:00Z", body="Text.")
        )
        done = project.cli("run", env={"PUBLISHER_NOW": date.replace(hour=6).isoformat()})
        assert done.exit_code == 0, done.output
    messages = mailed(project)
    assert [titles(m) for m in messages] == [["Day 00 news"], ["Day 01 news"], ["Day 02 news"]]
    assert all(re.fullmatch(r"<\d{8}-\d{6}-[0-9a-f]{8}@example\.org>", str(m["Message-ID"])) for m in messages)


def test_a_digest_takes_articles_by_tag_and_by_source() -> None:
    chosen = DigestConfig.__new__(DigestConfig)
    object.__setattr__(chosen, "tags", ("News",))
    object.__setattr__(chosen, "sources", ("blog",))
    assert chosen.takes(["news"], "feed:blog/abc")
    assert not chosen.takes(["news"], "feed:other/abc")
    assert not chosen.takes(["news"], "local.md")
    assert not chosen.takes(["sport"], "feed:blog/abc")


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ([DAILY, DAILY], "digest[1].name: 'daily' is the name of another digest; names must differ"),
        ([DAILY, COMMON], "digest[1].name: missing (each [[digest]] block needs a name)"),
        ([DAILY | {"name": "Daily!"}], "digest[0].name: expected a short name"),
        ([DAILY, WEEKLY | {"sources": ["nope"]}], "digest[1].sources: no [[sources]] block is named 'nope'"),
        ([DAILY | {"schedule": "daily"}], "digest[0].schedule: not a crontab line"),
        ([DAILY | {"colour": "red"}], "digest[0].colour: unknown key"),
    ],
)
def test_a_bad_digest_block_is_one_line_naming_it(project: Project, blocks: list[Any], message: str) -> None:
    project.settings["digest"] = blocks
    with pytest.raises(ConfigError) as caught:
        project.configure()
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_migration_gives_old_rows_to_the_digest_and_lets_an_article_into_another(
    project: Project, backend: str
) -> None:
    """The migration step itself, wherever it sits in MIGRATIONS once other branches add theirs."""
    assert project.cli("run", env={"PUBLISHER_NOW": "2026-11-24T06:30:00Z"}).exit_code == 0  # one digest, one article
    store = project.open_store()
    try:
        with store.transaction() as conn:  # as version 12 left it: article_id unique, no names
            conn.execute(
                text(
                    "CREATE TABLE old_rows (digest_id VARCHAR(64) NOT NULL REFERENCES digests (id)"
                    " ON DELETE CASCADE, article_id INTEGER NOT NULL UNIQUE REFERENCES articles (id)"
                    " ON DELETE CASCADE, position INTEGER NOT NULL)"
                )
            )
            conn.execute(text("INSERT INTO old_rows SELECT digest_id, article_id, position FROM digest_articles"))
            conn.execute(text("DROP TABLE digest_articles"))
            conn.execute(text("ALTER TABLE old_rows RENAME TO digest_articles"))
            conn.execute(text("ALTER TABLE digests DROP COLUMN name"))
        with store.transaction() as conn:
            digest_rows.several(conn)
        [old] = store.recent_digests(10)
        assert old.name == "digest" and old.article_count == 1
        [article] = store.digest_articles(old.id)
        when = datetime(2026, 11, 25, tzinfo=UTC)
        assert not store.create_digest("again", when, "s", b"m", [article.id])  # once in "digest"
        assert store.create_digest("weekly-1", when, "s", b"m", [article.id], "weekly")  # and once in "weekly"
        assert not store.create_digest("weekly-2", when, "s", b"m", [article.id], "weekly")
        assert store.undigested_articles(when - timedelta(days=30), when, "daily") == [article]
        assert store.undigested_articles(when - timedelta(days=30), when, "weekly") == []
    finally:
        store.close()


def test_the_commands_name_the_digests(project: Project) -> None:
    for sample in project.articles.iterdir():
        sample.unlink()
    several(project, DAILY, WEEKLY)
    project.add_article(
        "both.md", markdown_article("Day 00 news+analysis", "2026-11-02T05:00:00Z", ["news", "analysis"])
    )
    env = {"PUBLISHER_NOW": "2026-11-02T06:00:00Z"}
    assert project.cli("run", env=env).exit_code == 0  # notes the digests: no slot has passed yet
    assert project.outbox_files() == []

    status = project.cli("status", env=env)
    assert "next digest daily: 2026-11-02T07:00:00+00:00 ('0 7 * * *', UTC)" in status.stdout
    assert "next digest weekly: 2026-11-02T09:00:00+00:00 ('0 9 * * 1', UTC)" in status.stdout
    checked = project.cli("config", "check", env=env).stdout
    assert "publisher.toml: digest[1] subject and templates (the bundled templates) compile" in checked
    assert "next digest weekly: 2026-11-02T09:00:00+00:00 ('0 9 * * 1', UTC)" in checked
    shown = json.loads(project.cli("status", "--json", env=env).stdout)
    assert shown["next_digests"] == [
        {"name": "daily", "at": "2026-11-02T07:00:00+00:00", "schedule": "0 7 * * *", "timezone": "UTC"},
        {"name": "weekly", "at": "2026-11-02T09:00:00+00:00", "schedule": "0 9 * * 1", "timezone": "UTC"},
    ]
    preview = project.cli("digest", "preview", "--digest", "weekly", env=env)
    assert preview.exit_code == 0, preview.output
    [html] = [line for line in preview.stdout.splitlines() if line.endswith(".html")]
    assert "/digest-weekly-20261102-060000-" in html

    sent = project.cli("digest", "send", "--digest", "weekly", env=env)  # now, out of its schedule
    assert sent.exit_code == 0, sent.output
    [eml] = project.outbox_files()
    assert eml.name.startswith("weekly-")
    both = project.cli("digest", "send", env=env)  # each digest: the daily has it still, the weekly nothing new
    assert both.exit_code == 0, both.output
    assert sorted(p.name.split("-")[0] for p in project.outbox_files()) == ["daily", "weekly"]

    listed = project.cli("digest", "list", "--digest", "daily", env=env)
    assert [line.split("\t")[0].split("-")[0] for line in listed.stdout.splitlines()] == ["daily"]
    assert len(project.cli("digest", "list", env=env).stdout.splitlines()) == 2

    unknown = project.cli("digest", "list", "--digest", "monthly", env=env)
    assert unknown.exit_code == 2
    assert unknown.stderr.strip().endswith("--digest: no digest named 'monthly'; the digests are daily, weekly")
    assert len(unknown.stderr.splitlines()) == 1


def test_local_readers_get_the_default_digests_unless_they_chose(
    project: Project, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """daily (default = true) and weekly (default = false), both to the local list: a reader
    who never chose gets the daily only; one who opted out of it and into the weekly, the
    weekly only; one who chose a topic of the daily, that part of it."""
    from publisher import journal, preferences, subscribers

    monkeypatch.setenv("PUBLISHER_UNSUBSCRIBE_SECRET", "several-digests-secret-7Hq2Lp9X")
    for sample in project.articles.iterdir():
        sample.unlink()
    local = {"recipients": "subscribers"}
    several(project, DAILY | local | {"tags": []}, WEEKLY | local | {"tags": [], "default": False})
    project.add_article("a.md", markdown_article("Day 00 news", "2026-11-02T05:00:00Z", ["news"], "Text."))
    project.add_article("b.md", markdown_article("Day 00 sport", "2026-11-02T05:00:00Z", ["sport"], "Text."))
    store = project.open_store()
    readers = ["ada@example.org", "bob@example.org", "cy@example.org"]
    try:
        subscribers.add(store, [(a, None) for a in readers], START, resubscribe=False)
        token = {s.email: s.token for s in subscribers.listing(store)}
        assert preferences.opt(store, token["bob@example.org"], "daily", False, START)
        assert preferences.opt(store, token["bob@example.org"], "weekly", True, START)
        assert preferences.choose(store, token["cy@example.org"], ["Sport"], START, "daily")
    finally:
        store.close()
    for when in ("2026-11-02T06:00:00Z", "2026-11-02T10:00:00Z"):  # notes the digests; then both slots passed
        done = project.cli("run", env={"PUBLISHER_NOW": when})
        assert done.exit_code == 0, done.output

    got: dict[tuple[str, str], list[str]] = {}
    for path in project.outbox.rglob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        got[(digest_name(message), str(message["To"]))] = sorted(titles(message))
    assert got == {
        ("daily", "ada@example.org"): ["Day 00 news", "Day 00 sport"],
        ("daily", "cy@example.org"): ["Day 00 sport"],
        ("weekly", "bob@example.org"): ["Day 00 news", "Day 00 sport"],
    }
    store = project.open_store()
    try:
        assert {d.name for d in store.recent_digests(10)} == {"daily", "weekly"}
        assert all(journal.summary(store, d.id).finished for d in store.recent_digests(10))
    finally:
        store.close()


def test_a_bad_template_of_one_digest_names_its_block(project: Project) -> None:
    several(project, DAILY, WEEKLY | {"subject": "{{ articles|nosuchfilter }}"})
    done = project.cli("run", env={"PUBLISHER_NOW": "2026-11-02T06:00:00Z"})
    assert done.exit_code == 2
    [line] = done.stderr.splitlines()
    assert "publisher.toml: digest[1].subject: not a valid template" in line


def test_the_daemon_runs_each_digest_once_after_downtime(project: Project) -> None:
    """Each [[digest]] is a job of its own in the store; missed slots coalesce per digest."""
    import threading

    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from publisher.scheduler import REFRESH_JOB
    from tests.test_daemon import Daemon, saved_jobs

    jobs = ("digest:daily", "digest:weekly")

    class Daemons(Daemon):
        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self._fired.update({job: threading.Event() for job in jobs})

    several(project, DAILY, WEEKLY)
    now = datetime.now(UTC).replace(microsecond=0)  # the daemon keeps APScheduler's own time
    dated = f"{now - timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}"
    project.add_article("both.md", markdown_article("Day 00 news+analysis", dated, ["news", "analysis"], "Text."))
    config = project.config()
    with Daemons(config) as first:
        first.wait_for(REFRESH_JOB)
    assert set(saved_jobs(config)) == set(jobs)
    assert all(not first.runs(job) for job in jobs)

    jobstore = SQLAlchemyJobStore(url=config.store_url)  # down for 10 days: both slots missed
    jobstore.start(BackgroundScheduler(timezone=UTC), "default")
    try:
        for job_id in jobs:
            job = jobstore.lookup_job(job_id)
            state = job.__getstate__()
            state["next_run_time"] = now - timedelta(days=10)
            job.__setstate__(state)
            jobstore.update_job(job)
    finally:
        jobstore.shutdown()

    with Daemons(config) as second:
        ran = [second.wait_for(job) for job in jobs]
        second.wait_for(REFRESH_JOB)
    assert [len(second.runs(job)) for job in jobs] == [1, 1]  # not one per missed slot
    assert [event.retval for event in ran] == ["sent", "sent"]
    assert sorted(digest_name(m) for m in mailed(project)) == ["daily", "weekly"]
    assert all(titles(m) == ["Day 00 news+analysis"] for m in mailed(project))
    assert all(when is not None and when > now for when in saved_jobs(config).values())


def test_no_digest_for_a_failing_source_with_nothing_new(project: Project, refused_url: str) -> None:
    """A digest of one remote source that is down sends nothing; the other digest goes on."""
    for sample in project.articles.iterdir():
        sample.unlink()
    project.settings["sources"] = [{"name": "blog", "url": f"{refused_url}/feed.xml", "timeout": 5}]
    several(
        project,
        DAILY | {"tags": []},
        WEEKLY | {"name": "blog", "tags": [], "schedule": "0 7 * * *", "sources": ["blog"]},
    )
    project.add_article("a.md", markdown_article("Day 00 news", "2026-11-02T05:00:00Z", ["news"], "Text."))
    for when in ("2026-11-02T06:00:00Z", "2026-11-02T08:00:00Z"):
        done = project.cli("run", env={"PUBLISHER_NOW": when})
        assert "blog" in done.stderr  # the failing source named in its line
    assert [(digest_name(m), titles(m)) for m in mailed(project)] == [("daily", ["Day 00 news"])]


def test_readers_choose_their_digests_on_the_preferences_page(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from publisher import preferences, subscribers
    from tests.test_server import TIMEOUT, Running

    secret = "several-digests-secret-7Hq2Lp9X"
    monkeypatch.setenv("PUBLISHER_UNSUBSCRIBE_SECRET", secret)
    page = "https://news.example.org/preferences"
    local = {"recipients": "subscribers", "preferences_url": page, "tags": []}
    several(project, DAILY | local, WEEKLY | local | {"default": False})
    store = project.open_store()
    try:
        subscribers.add(store, [("ada@example.org", None)], START, resubscribe=False)
        [ada] = subscribers.listing(store)
    finally:
        store.close()
    link = subscribers.Links(page, secret.encode()).url(ada.token).removeprefix("https://news.example.org")

    def ticked(html: str) -> list[str]:
        return re.findall(r'name="digests" value="([a-z]+)" checked', html)

    with Running(project.config()) as running, httpx.Client(base_url=running.url, timeout=TIMEOUT) as http:
        shown = http.get(link)
        assert shown.status_code == 200
        assert re.findall(r'name="digests" value="([a-z]+)"', shown.text) == ["daily", "weekly"]
        assert ticked(shown.text) == ["daily"]  # no choice yet: the digests marked default
        saved = http.post(link, data={"action": "save", "mode": "all", "digests": ["weekly"]})
        assert saved.status_code == 200 and "Your choice is saved" in saved.text
        assert ticked(saved.text) == ["weekly"]
        again = http.post(link, data={"action": "save", "mode": "all", "digests": ["daily", "weekly"]})
        assert ticked(again.text) == ["daily", "weekly"]
    store = project.open_store()
    try:
        assert preferences.choice_of(store, ada.id, "daily") is None  # everything, as before any choice
        assert preferences.choice_of(store, ada.id, "weekly") == (preferences.EVERYTHING,)
    finally:
        store.close()


def test_a_digest_nobody_takes_keeps_its_articles_for_the_first_who_does(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from publisher import preferences, subscribers

    monkeypatch.setenv("PUBLISHER_UNSUBSCRIBE_SECRET", "several-digests-secret-7Hq2Lp9X")
    for sample in project.articles.iterdir():
        sample.unlink()
    local = {"recipients": "subscribers", "tags": []}
    several(project, DAILY | local, WEEKLY | local | {"default": False, "schedule": "0 7 * * *"})
    project.add_article("a.md", markdown_article("Day 00 news", "2026-11-02T05:00:00Z", ["news"], "Text."))
    store = project.open_store()
    try:
        subscribers.add(store, [("ada@example.org", None)], START, resubscribe=False)
        [ada] = subscribers.listing(store)
    finally:
        store.close()
    project.cli("run", env={"PUBLISHER_NOW": "2026-11-02T06:00:00Z"})
    done = project.cli("run", env={"PUBLISHER_NOW": "2026-11-02T08:00:00Z"})
    assert "digest weekly: no reader of the local list takes this digest, no email sent" in done.output
    store = project.open_store()
    try:
        assert [d.name for d in store.recent_digests(10)] == ["daily"]
        assert preferences.opt(store, ada.token, "weekly", True, START)
    finally:
        store.close()
    project.cli("run", env={"PUBLISHER_NOW": "2026-11-03T08:00:00Z"})
    got = sorted((digest_name(m), titles(m)) for m in mailed(project))
    assert got == [("daily", ["Day 00 news"]), ("weekly", ["Day 00 news"])]


def test_resume_continues_each_digest_left_unsent_and_starts_none(project: Project) -> None:
    from publisher.digest import create_next

    for sample in project.articles.iterdir():
        sample.unlink()
    several(project, DAILY | {"tags": []}, WEEKLY | {"tags": []})
    project.add_article("a.md", markdown_article("Day 00 news", "2026-11-02T05:00:00Z", ["news"], "Text."))
    env = {"PUBLISHER_NOW": "2026-11-02T06:00:00Z"}
    assert project.cli("run", env=env).exit_code == 0  # ingests; notes the digests, sends none
    when = datetime(2026, 11, 2, 6, 5, tzinfo=UTC)
    store = project.open_store()
    try:  # frozen, as a run that died before its send left it
        made = create_next(project.config().for_digest("weekly"), store, when)
        assert made is not None and made.name == "weekly"
    finally:
        store.close()
    done = project.cli("digest", "resume", env=env)
    assert done.exit_code == 0, done.output
    assert [(digest_name(m), titles(m)) for m in mailed(project)] == [("weekly", ["Day 00 news"])]
    again = project.cli("digest", "resume", env=env)
    assert "nothing to resume" in again.output
    assert len(mailed(project)) == 1
