"""Shared fixtures: a throwaway project folder laid out like the repository.

``project`` is a tmp folder with publisher.toml (the repository's own defaults: SQLite
store, outbox mailer), ``articles/`` holding the sample article, and helpers to change the
config, open the store and run the CLI in-process.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NoReturn

import pytest
import tomli_w
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from publisher import clock
from publisher import config as config_module
from publisher.config import Config
from publisher.store import Store

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "articles" / "000_b518ed41a9e9a454.txt"
SAMPLE_TITLE = "Kremlin Condemns US Approval of Long-Range Missile Strikes on Russia: \u2018New Round of Tension\u2019"
# A fixed "now" for tests that compare output byte for byte.
NOW = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="Rewrite tests/golden/* from the current output instead of comparing.",
    )


@dataclass
class Project:
    root: Path
    settings: dict[str, Any]

    @property
    def config_path(self) -> Path:
        return self.root / "publisher.toml"

    @property
    def articles(self) -> Path:
        return self.root / "articles"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def feed(self) -> Path:
        return self.root / "feeds" / "atom.xml"

    def configure(self, **sections: dict[str, Any]) -> Config:
        """Merge ``section={key: value}`` into publisher.toml, write it, and load it."""
        for name, values in sections.items():
            self.settings.setdefault(name, {}).update(values)
        self.config_path.write_text(tomli_w.dumps(self.settings), encoding="utf-8")
        return self.config()

    def config(self) -> Config:
        return config_module.load(self.config_path)

    def open_store(self) -> Store:
        return Store.open(self.config().store_url)

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """Run ``publisher --config <this project> ARGS`` in-process."""
        from publisher.cli import main

        return CliRunner().invoke(main, ["--config", str(self.config_path), *args], env=env, catch_exceptions=False)

    def add_article(self, name: str, content: str | bytes) -> Path:
        path = self.articles / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        return path

    def outbox_files(self) -> list[Path]:
        return sorted(self.outbox.glob("*.eml")) if self.outbox.exists() else []


def run_publisher(
    *args: str, cwd: Path, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``python -m publisher ARGS`` in ``cwd``, as a user types it: this environment less the
    variables in ``unset``, plus ``env``."""
    base = {key: value for key, value in os.environ.items() if key not in unset}
    return subprocess.run(
        [sys.executable, "-m", "publisher", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=base | (env or {}),
        timeout=120,
        check=False,
    )


def markdown_article(title: str, date: str, tags: list[str] | None = None, body: str = "") -> str:
    """A Markdown article with front matter: title, date and (if given) tags."""
    front = f"title: {title}\ndate: {date}\n"
    if tags is not None:
        front += f"tags: {json.dumps(tags)}\n"
    return f"---\n{front}---\n{body or f'The text of {title}.'}\n"


def ingest_folder(project: Project, store: Store, when: datetime = NOW) -> None:
    """Ingest the project's articles folder; every file must go in."""
    from publisher.ingest import ingest

    config = project.config()
    result = ingest(store, [project.articles], articles_dir=project.articles, tz=config.site.timezone, now=when)
    assert not result.errors, result.errors


@pytest.fixture
def at_now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The program's clock set to NOW, here and in the commands and daemons a test starts."""
    monkeypatch.setenv(clock.ENV, NOW.isoformat())
    return NOW


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    settings = tomllib.loads((REPO / "publisher.toml").read_text(encoding="utf-8"))
    root = tmp_path / "site"
    root.mkdir()
    (root / "articles").mkdir()
    shutil.copy(SAMPLE, root / "articles" / SAMPLE.name)
    proj = Project(root=root, settings=copy.deepcopy(settings))
    proj.configure()
    yield proj


def missing(what: str, *, under_ci: str, elsewhere: str) -> NoReturn:
    """Something a test needs from outside Python is not there: fail under CI, skip elsewhere.

    CI (`.ci/run`) provides it, so there a missing one is a broken CI, not a test to skip.
    """
    if os.environ.get("CI"):
        pytest.fail(f"{what}: {under_ci}")
    pytest.skip(f"{what} ({elsewhere})")


def postgres_url() -> str:
    """The PostgreSQL URL that CI provides in PUBLISHER_TEST_POSTGRES_URL."""
    url = os.environ.get("PUBLISHER_TEST_POSTGRES_URL")
    if url:
        return url
    missing(
        "PUBLISHER_TEST_POSTGRES_URL is not set",
        under_ci="CI must provide PostgreSQL for these tests",
        elsewhere="set it to run the PostgreSQL store tests",
    )


@pytest.fixture
def endpoint() -> Iterator[Any]:
    """A recording HTTP server on 127.0.0.1 (see tests/endpoint.py)."""
    from tests.endpoint import Server

    with Server() as running:
        yield running


@contextmanager
def child_process(command: list[str], *, cwd: Path, stderr: Path) -> Iterator[subprocess.Popen[str]]:
    """A `publisher` process with stdout piped and stderr in a file; killed if still running at the end."""
    with stderr.open("w") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=cwd)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        assert process.stdout is not None
        process.stdout.close()


def readline_within(stream: IO[str], timeout: float, what: str) -> str:
    """One line from ``stream`` (a child's stdout), or fail after ``timeout`` s instead of hanging."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"no line from {what} within {timeout} s")


@pytest.fixture
def refused_url() -> str:
    """A base URL on a port that was bound and then closed: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    server = make_url(postgres_url())
    name = f"publisher_test_{secrets.token_hex(4)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
