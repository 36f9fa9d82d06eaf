"""Limits: ``[articles] max_bytes`` refuses an oversized article by name, having read at most
max_bytes + 1 of its bytes; a file swapped for a symlink between the walk and the read is not
followed; the daemon says on every cycle that a digest needs the operator, as `publisher run`
does. Real files (a real 12 MB one, a sparse 1 GB one), the CLI in-process, a child process
for the memory a read costs, the daemon in a thread, a loopback HTTP endpoint."""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from publisher.errors import ConfigError, IngestError
from publisher.ingest import read_source
from publisher.ingest.formats import SUFFIXES
from publisher.ingest.walk import Source, source_files
from publisher.scheduler import REFRESH_JOB
from tests.conftest import SAMPLE_TITLE, Project, markdown_article
from tests.endpoint import Endpoint
from tests.feedcheck import read_back
from tests.test_daemon import Daemon

SECRET = "root:x:0:0:SECRET-MARKER-51c2"
GB = 1 << 30


def _titles(project: Project) -> list[str]:
    return [entry.title for entry in read_back(project.feed.read_bytes()).entries]


def _paragraphs(size: int) -> str:
    """About ``size`` bytes of distinct paragraphs, as the article that broke lxml had."""
    rng = random.Random(10)
    words = [f"w{n:x}" for n in range(5000)]
    paragraphs, total = [], 0
    while total < size:
        paragraph = " ".join(rng.choices(words, k=90))
        paragraphs.append(paragraph)
        total += len(paragraph) + 2
    return "\n\n".join(paragraphs)


def _sources(*paths: Path, root: Path, follow: bool = False) -> list[Source]:
    errors: list[IngestError] = []
    found = list(source_files(paths, root, SUFFIXES, errors, follow_symlinks=follow))
    assert errors == []
    return found


# -- max_bytes -----------------------------------------------------------------------------------


def test_an_oversized_article_is_refused_by_name_and_every_other_article_is_stored(
    project: Project, at_now: datetime
) -> None:
    project.configure(articles={"max_bytes": 1_000_000})
    huge = project.add_article("huge.md", markdown_article("Huge", "2026-11-23", body=_paragraphs(12_000_000)))
    sparse = project.articles / "sparse.md"
    with sparse.open("wb") as handle:  # 1 GiB that costs no disk: reading it whole would cost 1 GiB of memory
        handle.truncate(GB)
    project.add_article("small.md", markdown_article("Small news", "2026-11-22"))

    for _ in range(2):  # and again: a refused file is refused on every run, not remembered as read
        result = project.cli("run")

        assert result.exit_code == 1
        assert "Traceback" not in result.output
        assert sorted(result.stderr.splitlines()) == [
            f"publisher: error: {huge}: 12 MB, over [articles] max_bytes (1 MB); raise it or split the article",
            f"publisher: error: {sparse}: 1.07 GB, over [articles] max_bytes (1 MB); raise it or split the article",
        ]
        assert sorted(_titles(project)) == sorted([SAMPLE_TITLE, "Small news"])
    store = project.open_store()
    try:
        assert sorted(article.title for article in store.newest_articles()) == sorted([SAMPLE_TITLE, "Small news"])
    finally:
        store.close()


def test_lowering_max_bytes_refuses_a_stored_article_that_is_unchanged(project: Project, at_now: datetime) -> None:
    """The quick check (size and mtime as recorded) must not pass a file the limit now refuses."""
    big = project.add_article("big.md", markdown_article("Big", "2026-11-23", body=_paragraphs(2_000_000)))
    os.utime(big, ns=(1_700_000_000_000_000_000,) * 2)  # old enough for its stat to be trusted
    assert project.cli("run").exit_code == 0  # under the default 5 MB
    assert project.cli("ingest", str(big)).output.splitlines() == ["ingest: 0 new, 0 updated, 1 unchanged, 0 failed"]

    project.configure(articles={"max_bytes": 1_500_000})
    result = project.cli("ingest", str(big))

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"publisher: error: {big}: 2 MB, over [articles] max_bytes (1.5 MB); raise it or split the article"
    ]


def test_the_read_stops_after_max_bytes(tmp_path: Path) -> None:
    """A 1 GiB file read with max_bytes = 1 MB costs a few MB, not 1 GiB: measured in a child
    process, whose peak resident memory (VmHWM) is its own."""
    sparse = tmp_path / "sparse.md"
    with sparse.open("wb") as handle:
        handle.truncate(GB)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from publisher.errors import IngestError\n"
        "from publisher.ingest import read_source\n"
        "from publisher.ingest.walk import Source\n"
        "try:\n"
        "    read_source(Source(Path(sys.argv[1]), 'sparse'), 1_000_000)\n"
        "except IngestError as exc:\n"
        "    print(exc)\n"
        # VmHWM: this program's peak, in KiB (ru_maxrss would count the forking parent's).
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))\n"
    )

    done = subprocess.run([sys.executable, "-c", code, str(sparse)], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    refused, peak_kib = done.stdout.splitlines()
    assert refused == f"{sparse}: 1.07 GB, over [articles] max_bytes (1 MB); raise it or split the article"
    assert int(peak_kib) < 300 * 1024, f"peak RSS {int(peak_kib) // 1024} MiB: the file was read whole"


def test_a_file_at_max_bytes_is_read(tmp_path: Path) -> None:
    exact = tmp_path / "exact.md"
    exact.write_bytes(b"x" * 1000)

    assert read_source(Source(exact, "exact"), 1000) == b"x" * 1000
    exact.write_bytes(b"x" * 1001)
    with pytest.raises(IngestError) as refused:  # both are "1 kB": exact sizes then
        read_source(Source(exact, "exact"), 1000)
    assert refused.value.reason.startswith("1,001 bytes, over [articles] max_bytes (1,000 bytes); ")


@pytest.mark.parametrize(
    ("value", "problem"),
    [(0, "must be at least 1000, got 0"), (10**12, "must be at most 100,000,000, got 1,000,000,000,000")],
)
def test_max_bytes_is_bounded(project: Project, value: int, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        project.configure(articles={"max_bytes": value})
    assert str(refused.value) == f"{project.config_path}: [articles] max_bytes: {problem}"


# -- a file swapped for a symlink after the walk -------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "passwd"
    secret.parent.mkdir()
    secret.write_text(f"{SECRET}\n\nbin:x:1:1\n", encoding="utf-8")
    return secret


def _swap_for_symlink(path: Path, target: Path) -> None:
    """Replace ``path`` by a symlink in one rename, as an attacker racing the reader would."""
    link = path.with_name(".swap")
    link.symlink_to(target)
    link.rename(path)


def test_a_file_swapped_for_a_symlink_after_the_walk_is_not_read(project: Project, outside: Path) -> None:
    article = project.add_article("notes.md", markdown_article("Notes", "2026-11-23"))
    [source] = [s for s in _sources(project.articles, root=project.articles) if s.path == article]
    assert b"Notes" in read_source(source, 1_000_000)  # the file the walk found is read

    _swap_for_symlink(article, outside)

    with pytest.raises(IngestError) as refused:
        read_source(source, 1_000_000)
    assert str(refused.value) == (
        f"{article}: the file was replaced by a symlink while being ingested; not followed, run again"
    )


def test_a_folder_swapped_for_a_symlink_after_the_walk_is_not_read(project: Project, tmp_path: Path) -> None:
    article = project.add_article("desk/notes.txt", "Notes\n\nThe desk's notes.\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("Secret\n\nNot an article.\n", encoding="utf-8")
    [source] = [s for s in _sources(project.articles, root=project.articles) if s.path == article]
    assert b"desk's notes" in read_source(source, 1_000_000)

    (project.articles / "desk").rename(project.articles / "desk-old")
    (project.articles / "desk").symlink_to(elsewhere)  # the folder on the way, now leading out

    with pytest.raises(IngestError) as refused:
        read_source(source, 1_000_000)
    assert str(refused.value) == (
        f"{article}: its folder 'desk' was replaced by a symlink while being ingested; not followed, run again"
    )


def test_a_symlink_within_the_folder_is_read_at_its_resolved_target(project: Project, outside: Path) -> None:
    target = project.add_article("sub/real.md", markdown_article("Real", "2026-11-23"))
    alias = project.articles / "alias.md"
    alias.symlink_to(target)
    [source] = _sources(alias, root=project.articles)
    assert (source.key, source.target) == ("sub/real", target)
    assert b"Real" in read_source(source, 1_000_000)

    _swap_for_symlink(target, outside)  # the link still leads into the folder, the target out of it

    with pytest.raises(IngestError, match="replaced by a symlink") as refused:
        read_source(source, 1_000_000)
    assert refused.value.path == str(alias)


def test_a_followed_symlink_out_of_the_folder_is_still_read(project: Project, outside: Path) -> None:
    link = project.articles / "passwd.txt"
    link.symlink_to(outside)
    [source] = _sources(project.articles / "passwd.txt", root=project.articles, follow=True)

    assert SECRET in read_source(source, 1_000_000).decode()  # the operator allowed it


# -- the daemon says what needs the operator ------------------------------------------------------


def test_the_daemon_logs_a_digest_that_needs_the_operator_on_every_cycle(
    project: Project, endpoint: Endpoint, at_now: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    project.configure(mailer={"provider": "webhook", "url": endpoint.url + "/hook", "retries": 0, "timeout": 5})
    endpoint.reply(401, {"message": "invalid key"})
    assert project.cli("run").exit_code == 1  # the digest is refused: incomplete, waiting for the operator
    caplog.set_level(logging.INFO, logger="publisher.daemon")

    with Daemon(project.config()) as daemon:
        daemon.wait_for(REFRESH_JOB)

    errors = [r for r in caplog.records if r.name == "publisher.daemon" and r.levelno == logging.ERROR]
    [line] = [r.getMessage() for r in errors]
    assert "1 of 1 batch failed" in line and "HTTP 401: invalid key" in line, line
    assert "`publisher digest resume --retry-failed`" in line
    assert errors[0].__dict__["job"] == REFRESH_JOB and errors[0].__dict__["digest_id"]
    assert len(endpoint.requests) == 1  # the refresh sent nothing again
