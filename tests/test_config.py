"""publisher.toml is checked before any work: one line naming the key, exit 2, nothing written."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner

from publisher import config as config_module
from publisher.cli import main
from publisher.errors import ConfigError
from tests.conftest import Project

DELETE = object()  # as a value in CASES: remove the key

CASES = [
    # (changes to the repository's publisher.toml, "[section] key" named, words of the problem)
    pytest.param({"mailer": {"provider": "smtp"}}, "[mailer] provider", "unknown provider 'smtp'", id="provider"),
    pytest.param({"digest": {"schedule": "every day at 7"}}, "[digest] schedule", "not a crontab line", id="cron"),
    pytest.param({"digest": {"schedule": "61 7 * * *"}}, "[digest] schedule", "not a crontab line", id="cron-range"),
    pytest.param({"site": {"title": DELETE}}, "[site] title", "missing (this key is required)", id="no-title"),
    pytest.param({"site": {"title": "  "}}, "[site] title", "must not be empty", id="blank-title"),
    pytest.param({"digest": {"from": DELETE}}, "[digest] from", "missing (this key is required)", id="no-from"),
    pytest.param({"digest": {"from": "@example.org"}}, "[digest] from", "not an email address", id="bad-from"),
    pytest.param({"feed": {"max_entries": "ten"}}, "[feed] max_entries", "expected an integer, got str", id="str"),
    pytest.param({"feed": {"max_entries": True}}, "[feed] max_entries", "expected an integer, got bool", id="bool"),
    pytest.param(
        {"digest": {"to": "subscribers@lists.example.org"}}, "[digest] to", "expected a list, got str", id="to-str"
    ),
    pytest.param({"digest": {"shedule": "0 7 * * *"}}, "[digest] shedule", "unknown key", id="typo"),
    pytest.param({"sight": {"title": "x"}}, "[sight]", "unknown section", id="typo-section"),
    pytest.param({"site": "Example News"}, "[site]", "expected a table", id="not-a-table"),
    pytest.param({"digest": {"timezone": "Europe/Atlantis"}}, "[digest] timezone", "unknown time zone", id="tz"),
    pytest.param({"site": {"timezone": "America"}}, "[site] timezone", "unknown time zone 'America'", id="tz-dir"),
    pytest.param({"digest": {"backlog": "7 days"}}, "[digest] backlog", "expected a duration such as 7d", id="7-days"),
    pytest.param({"digest": {"backlog": "99999999999d"}}, "[digest] backlog", "duration too long", id="huge"),
    pytest.param(
        {"digest": {"unsubscribe_url": "http://news.example.org/unsubscribe"}},
        "[digest] unsubscribe_url",
        "expected an https:// URL",
        id="unsubscribe-http",
    ),
    pytest.param({"digest": {"templates_dir": "my-templats"}}, "[digest] templates_dir", "not found", id="templates"),
    pytest.param(
        {"mailer": {"provider": "webhook", "url": ""}}, "[mailer] url", "expected an http(s):// URL", id="hook-no-url"
    ),
    pytest.param(
        {"mailer": {"provider": "webhook", "url": DELETE}}, "[mailer] url", "missing", id="hook-url-key-absent"
    ),
    pytest.param(
        {"mailer": {"provider": "mailgun", "domain": ""}}, "[mailer] domain", "missing", id="mailgun-no-domain"
    ),
    pytest.param({"mailer": {"timeout": float("nan")}}, "[mailer] timeout", "expected a positive number", id="nan"),
    pytest.param({"mailer": {"retries": -1}}, "[mailer] retries", "must be at least 0", id="retries"),
    pytest.param(
        {"mailer": {"api_key_env": "key-3b9f1e7c"}}, "[mailer] api_key_env", "NAME of an environment", id="key-env"
    ),
    pytest.param(
        {"daemon": {"refresh_minutes": 100_000_000_000}},
        "[daemon] refresh_minutes",
        "must be at most 44,640",
        id="refresh-overflow",
    ),
    pytest.param({"mailer": {"concurrency": 10_000}}, "[mailer] concurrency", "must be at most 64", id="concurrency"),
]


def write_settings(project: Project, changes: dict[str, Any]) -> None:
    """Apply ``changes`` to the project's settings and write publisher.toml WITHOUT loading it."""
    settings = copy.deepcopy(project.settings)
    for section, values in changes.items():
        if not isinstance(values, dict):
            settings[section] = values
            continue
        table = settings.setdefault(section, {})
        for key, value in values.items():
            if value is DELETE:
                del table[key]
            else:
                table[key] = value
    project.config_path.write_text(tomli_w.dumps(settings), encoding="utf-8")


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def assert_refused(project: Project, command: tuple[str, ...], where: str, problem: str) -> None:
    before = listing(project.root)

    result = project.cli(*command)

    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"publisher: error: {where}: "), line
    assert problem in line, line
    assert listing(project.root) == before  # no store, no feed, no outbox, no preview


@pytest.mark.parametrize(("changes", "key", "problem"), CASES)
def test_bad_setting_is_refused_before_any_work(
    project: Project, changes: dict[str, Any], key: str, problem: str
) -> None:
    write_settings(project, changes)

    assert_refused(project, ("run",), f"{project.config_path}: {key}", problem)


@pytest.mark.parametrize("command", [("feed",), ("digest", "send"), ("digest", "preview"), ("status",)])
def test_every_command_checks_the_config_first(project: Project, command: tuple[str, ...]) -> None:
    write_settings(project, {"digest": {"schedule": "0 25 * * *"}})

    assert_refused(project, command, f"{project.config_path}: [digest] schedule", "not a crontab line")


def test_a_file_that_is_not_toml_is_refused(project: Project) -> None:
    project.config_path.write_text("site:\n  title: Example News\n", encoding="utf-8")  # YAML, not TOML

    assert_refused(project, ("run",), str(project.config_path), "not valid TOML")


def test_a_missing_config_file_is_refused(project: Project) -> None:
    project.config_path.unlink()

    assert_refused(project, ("run",), str(project.config_path), "not found")


def test_load_raises_config_error_naming_the_key(project: Project) -> None:
    write_settings(project, {"feed": {"max_entries": 0}})

    with pytest.raises(ConfigError) as caught:
        config_module.load(project.config_path)

    assert caught.value.where == f"{project.config_path}: [feed] max_entries"
    assert caught.value.problem == "must be at least 1, got 0"
    assert caught.value.exit_code == 2


def test_mailgun_settings_take_the_api_base_default_and_drop_a_trailing_slash(project: Project) -> None:
    mailgun = project.configure(mailer={"provider": "mailgun", "domain": " mg.example.org ", "url": ""}).mailer

    assert (mailgun.url, mailgun.domain) == ("https://api.mailgun.net", "mg.example.org")
    assert (mailgun.timeout, mailgun.retries) == (30.0, 2)

    hook = project.configure(mailer={"provider": "webhook", "url": "https://hooks.example.org/mail/"}).mailer

    assert hook.url == "https://hooks.example.org/mail"


def test_relative_paths_resolve_against_the_config_files_folder(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project.root / "my-templates").mkdir()
    write_settings(project, {"digest": {"templates_dir": "my-templates"}})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    relative = os.path.relpath(project.config_path, elsewhere)
    assert relative == os.path.join("..", "site", "publisher.toml")

    config = config_module.load(Path(relative))

    root = project.root.resolve()
    assert config.path == root / "publisher.toml"
    assert config.articles_dir == root / "articles"
    assert config.feed.dir == root / "feeds"
    assert config.mailer.outbox_dir == root / "outbox"
    assert config.digest.templates_dir == root / "my-templates"
    assert config.store_url == f"sqlite:///{root / 'publisher.db'}"


def test_cli_run_from_another_folder_works_on_the_config_files_folder(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    result = CliRunner().invoke(main, ["--config", "../site/publisher.toml", "run"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert "ingest: 1 new" in result.stdout
    assert (project.root / "publisher.db").is_file()
    assert project.feed.is_file()
    assert len(project.outbox_files()) == 1
    assert list(elsewhere.iterdir()) == []


def test_absolute_paths_are_kept(project: Project, tmp_path: Path) -> None:
    outbox = tmp_path / "shared-outbox"

    config = project.configure(mailer={"outbox_dir": str(outbox)}, store={"url": f"sqlite:///{tmp_path / 'db.sqlite'}"})

    assert config.mailer.outbox_dir == outbox
    assert config.store_url == f"sqlite:///{tmp_path / 'db.sqlite'}"
