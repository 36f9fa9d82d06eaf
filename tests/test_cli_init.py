"""``publisher init``: a new project from the files shipped in the package, run through the real entry point."""

from __future__ import annotations

import email
import email.policy
import re
import subprocess
import tomllib
from datetime import datetime
from pathlib import Path

import feedparser

from publisher import config as config_module
from publisher.config import KEYS, PROVIDERS
from publisher.scaffold import skeleton
from tests.conftest import REPO, run_publisher


def publisher(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m publisher ARGS`` in ``cwd``, as a user types it."""
    return run_publisher(*args, cwd=cwd, env=env)


def next_commands(stdout: str) -> list[str]:
    """The commands `init` prints after "next:", one per line, without their comments."""
    after = stdout.split("next:\n", 1)[1]
    return [line.split("#")[0].strip() for line in after.splitlines() if line.startswith("  ")]


def test_init_writes_a_project_that_loads_and_prints_the_next_commands(tmp_path: Path, at_now: datetime) -> None:
    done = publisher("init", "news", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    root = tmp_path / "news"
    assert done.stdout.splitlines()[:2] == ["wrote news/publisher.toml", "wrote news/articles/hello.md"]
    assert next_commands(done.stdout) == ["cd news", "publisher config check", "publisher run"]
    config = config_module.load(root / "publisher.toml")
    assert config.mailer.provider == "outbox"
    assert config.articles_dir == root / "articles"
    # Dated now, so that the first digest (only articles newer than [digest] backlog) takes it.
    assert f"date: {at_now.isoformat()}" in (root / "articles" / "hello.md").read_text(encoding="utf-8")


def test_the_printed_commands_give_a_feed_and_a_digest(tmp_path: Path, at_now: datetime) -> None:
    done = publisher("init", "news", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    root = tmp_path / "news"
    commands = next_commands(done.stdout)
    assert commands[0] == "cd news"

    for command in commands[1:]:
        ran = publisher(*command.split()[1:], cwd=root)
        assert ran.returncode == 0, (command, ran.stdout, ran.stderr)

    feed = feedparser.parse((root / "feeds" / "atom.xml").read_bytes())
    assert [entry.title for entry in feed.entries] == ["Hello, world"]
    [sent] = (root / "outbox").glob("*.eml")
    message = email.message_from_bytes(sent.read_bytes(), policy=email.policy.default)
    assert str(message["Subject"]) == "Hello, world · My Site"


def test_init_overwrites_nothing(tmp_path: Path) -> None:
    config = tmp_path / "publisher.toml"
    config.write_text("# mine\n", encoding="utf-8")

    done = publisher("init", cwd=tmp_path)

    assert done.returncode == 1
    assert config.read_text(encoding="utf-8") == "# mine\n"
    assert not (tmp_path / "articles").exists()  # the project is there already: nothing added to it
    assert done.stderr.splitlines() == [
        "publisher: publisher.toml exists already, left as it is",
        "publisher: error: nothing written: the project is there already (`publisher config check` checks it)",
    ]
    assert done.stdout == ""


def test_init_keeps_an_existing_article_and_says_so(tmp_path: Path) -> None:
    article = tmp_path / "articles" / "hello.md"
    article.parent.mkdir()
    article.write_text("my own hello\n", encoding="utf-8")

    done = publisher("init", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert article.read_text(encoding="utf-8") == "my own hello\n"
    assert done.stdout.splitlines()[0] == "wrote publisher.toml"
    assert done.stderr == "publisher: articles/hello.md exists already, left as it is\n"
    assert next_commands(done.stdout) == ["publisher config check", "publisher run"]  # already in the folder


def test_init_into_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("", encoding="utf-8")
    done = publisher("init", "taken", cwd=tmp_path)
    assert done.returncode != 0
    assert len(done.stderr.splitlines()) == 1 and "taken" in done.stderr
    assert "Traceback" not in done.stderr


def documented_keys(text: str) -> dict[str, set[str]]:
    """The keys the template names under each [section], set or commented out (`# key = ...`)."""
    found: dict[str, set[str]] = {}
    section = None
    for line in text.splitlines():
        if heading := re.fullmatch(r"\[(\w+)\]|#? ?\[\[(\w+)\]\]", line.strip()):  # [section] or [[list]]
            section = heading.group(1) or heading.group(2)
            found[section] = set()
        elif section and (key := re.match(r"#?\s{0,3}(\w+) = ", line)):
            found[section].add(key.group(1))
    return found


def test_the_template_documents_every_key_and_every_provider() -> None:
    text = skeleton("publisher.toml")
    assert documented_keys(text) == {section: set(keys) for section, keys in KEYS.items()}
    for provider in (p for p in PROVIDERS if p != "outbox"):  # outbox is set, and needs no more keys
        assert re.search(rf"^# {provider}\b", text, re.M), f"no block for {provider}"
    provider_line = next(line for line in text.splitlines() if line.startswith("provider = "))
    assert all(name in provider_line for name in PROVIDERS)
    tomllib.loads(text)  # as written, it is TOML


def test_the_repository_config_names_every_provider() -> None:
    text = (REPO / "publisher.toml").read_text(encoding="utf-8")
    provider_line = next(line for line in text.splitlines() if line.startswith("provider = "))
    assert all(name in provider_line for name in PROVIDERS), provider_line
