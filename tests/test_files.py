"""Files the walk and the feed writer meet: symlinks out of the articles folder, paths too long
for the store, names that are not UTF-8, temp files a killed writer left, control characters
in names. Real files and symlinks, the CLI in-process, a real PostgreSQL (``pg_url``)."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import tomli_w

from tests.conftest import SAMPLE_TITLE, Project, child_process, readline_within
from tests.feedcheck import read_back

LEAVES = "symlink leaves the articles folder; set [articles] follow_symlinks = true to allow"
SECRET = "root:x:0:0:SECRET-MARKER-7f3a"


def _titles(project: Project) -> list[str]:
    return [entry.title for entry in read_back(project.feed.read_bytes()).entries]


def _mailed(project: Project) -> str:
    [path] = project.outbox_files()
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    return "".join(part.get_content() for part in message.walk() if part.get_content_maintype() == "text")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the project, with a file an attacker wants published."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "passwd").write_text(f"{SECRET}\n\nbin:x:1:1\n", encoding="utf-8")
    (folder / "other.txt").write_text("Outside article\n\nIts text.\n", encoding="utf-8")
    return folder


def test_a_symlink_out_of_the_articles_folder_is_refused_by_name(
    project: Project, outside: Path, at_now: datetime
) -> None:
    (project.articles / "passwd.txt").symlink_to(outside / "passwd")
    (project.articles / "linked").symlink_to(outside, target_is_directory=True)

    result = project.cli("run")

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    refused = sorted(line for line in result.stderr.splitlines() if LEAVES in line)
    assert len(refused) == 2, result.stderr
    assert refused[0].endswith(f"articles/linked: {LEAVES}")
    assert refused[1].endswith(f"articles/passwd.txt: {LEAVES}")
    assert _titles(project) == [SAMPLE_TITLE]  # the sample article still went out
    assert "SECRET-MARKER" not in project.feed.read_text(encoding="utf-8")
    assert "SECRET-MARKER" not in _mailed(project)

    named = project.cli("ingest", str(project.articles / "passwd.txt"))
    assert named.exit_code == 1
    assert named.stderr.splitlines() == [f"publisher: error: {project.articles / 'passwd.txt'}: {LEAVES}"]


def test_symlinks_within_the_articles_folder_keep_working(tmp_path: Path, project: Project, at_now: datetime) -> None:
    # [articles] dir itself a symlink (as /srv/news/articles -> /data/articles): all of it is inside.
    real = tmp_path / "data-articles"
    (real / ".drafts").mkdir(parents=True)
    (real / ".drafts" / "shown.txt").write_text("Shown through a link\n\nText.\n", encoding="utf-8")
    (real / "shown.txt").symlink_to(real / ".drafts" / "shown.txt")  # a file within: read
    (real / "posts").mkdir()
    (real / "posts" / "one.txt").write_text("Post one\n\nText.\n", encoding="utf-8")
    (real / "again").symlink_to(real / "posts", target_is_directory=True)  # a folder within: not walked twice
    (project.root / "linked-articles").symlink_to(real, target_is_directory=True)
    project.configure(articles={"dir": "linked-articles"})

    result = project.cli("run")

    assert result.exit_code == 0, result.output
    assert "ingest: 2 new, 0 updated, 0 unchanged, 0 failed" in result.stdout
    assert sorted(_titles(project)) == ["Post one", "Shown through a link"]
    listed = project.cli("articles", "list").stdout.splitlines()
    assert sorted(line.split("\t")[0] for line in listed) == [".drafts/shown", "posts/one"]


def test_follow_symlinks_lets_them_in_keyed_by_the_links_own_path(
    project: Project, outside: Path, at_now: datetime
) -> None:
    (project.articles / "sub").mkdir()
    (project.articles / "sub" / "passwd.txt").symlink_to(outside / "passwd")
    (project.articles / "linked").symlink_to(outside, target_is_directory=True)
    (outside / "loop").symlink_to(outside, target_is_directory=True)  # would walk forever
    project.configure(articles={"follow_symlinks": True})

    result = project.cli("run")

    assert result.exit_code == 1  # the loop, only
    assert result.stderr.splitlines() == [
        f"publisher: error: {project.articles / 'linked' / 'loop'}: "
        "symlink loop: it leads back to a folder being walked; skipped"
    ]
    assert "3 new" in result.stdout
    keys = sorted(line.split("\t")[0] for line in project.cli("articles", "list").stdout.splitlines())
    assert keys == ["000_b518ed41a9e9a454", "linked/other", "sub/passwd"]


def test_follow_symlinks_must_be_true_or_false(project: Project) -> None:
    project.settings["articles"]["follow_symlinks"] = "yes"
    project.config_path.write_text(tomli_w.dumps(project.settings), encoding="utf-8")

    result = project.cli("run")

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"publisher: error: {project.config_path}: [articles] follow_symlinks: expected true or false, got str"
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_kind(request: pytest.FixtureRequest, project: Project) -> Iterator[str]:
    if request.param == "postgresql":
        project.configure(store={"url": request.getfixturevalue("pg_url")})
    yield request.param


def _path_of_key_length(root: Path, length: int, name: str) -> Path:
    """A file under ``root`` whose key (path under it, without ``.txt``) has ``length`` characters."""
    parts: list[str] = []
    left = length - len(name)
    while left > 0:
        part = "d" * min(200, left - 1)  # each folder takes its name and a slash
        parts.append(part)
        left -= len(part) + 1
    assert left == 0, "pick lengths that add up"
    return root.joinpath(*parts, name + ".txt")


def test_a_path_too_long_for_the_store_is_refused_alike_on_every_store(
    project: Project, store_kind: str, at_now: datetime
) -> None:
    too_long = _path_of_key_length(project.articles, 501, "long")
    too_long.parent.mkdir(parents=True)
    too_long.write_text("Too long\n\nText.\n", encoding="utf-8")
    longest = _path_of_key_length(project.articles / "ok", 497, "emoji")  # "ok/" + 497: 500, the most
    longest.parent.mkdir(parents=True)
    longest.write_text("\U0001f389\U0001f389\n\nA title that makes no slug: the slug comes from the path.\n")
    (project.articles / "zz-later.txt").write_text("Later article\n\nText.\n", encoding="utf-8")

    result = project.cli("run")

    assert result.exit_code == 1
    assert "Traceback" not in result.output and "StringDataRightTruncation" not in result.output
    assert result.stderr.splitlines() == [
        f"publisher: error: {too_long}: path too long: 501 characters under the articles folder "
        "without the suffix, at most 500; shorten the folder or file names"
    ]
    assert "ingest: 3 new, 0 updated, 0 unchanged, 1 failed" in result.stdout
    assert sorted(_titles(project)) == sorted([SAMPLE_TITLE, "Later article", "\U0001f389\U0001f389"])
    store = project.open_store()
    try:
        assert all(len(article.slug) <= 200 for article in store.newest_articles())
    finally:
        store.close()


def test_a_name_that_is_not_utf8_is_refused_alike_on_every_store(
    project: Project, store_kind: str, at_now: datetime
) -> None:
    bad = os.path.join(os.fsencode(project.articles), b"caf\xe9.txt")
    with open(bad, "wb") as handle:
        handle.write(b"Latin-1 name\n\nText.\n")
    (project.articles / "zz-later.txt").write_text("Later article\n\nText.\n", encoding="utf-8")

    result = project.cli("run")

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    [line] = result.stderr.splitlines()
    assert "caf" in line and "not valid UTF-8" in line and "rename it" in line, line
    assert sorted(_titles(project)) == sorted([SAMPLE_TITLE, "Later article"])


_STUCK_WRITER = """
import os, signal, sys
from pathlib import Path
from publisher import files

def stuck(fd):  # the data is written, not yet synced or renamed: a writer that is slow here
    print("writing", flush=True)
    signal.pause()  # until killed

os.fsync = stuck
files.write_atomic(Path(sys.argv[1]), b"<half a feed")
"""


def _temps(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".tmp"))


def _age(path: Path, seconds: float) -> None:
    """Make ``path`` look untouched for ``seconds``."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_temp_files_left_by_a_killed_writer_go_with_the_next_rebuild(tmp_path: Path, project: Project) -> None:
    assert project.cli("run").exit_code == 0
    feeds = project.root / "feeds"
    tags = feeds / "tags"
    tags.mkdir(exist_ok=True)

    with child_process(
        [sys.executable, "-c", _STUCK_WRITER, str(feeds / "atom.xml")], cwd=project.root, stderr=tmp_path / "err"
    ) as writer:
        assert writer.stdout is not None
        assert readline_within(writer.stdout, 30, "the writer") == "writing\n"
        [in_flight] = _temps(feeds)
        assert in_flight.startswith(".atom.xml.")
        _age(feeds / in_flight, 3600)  # however old: its writer still holds it
        fd, fresh = tempfile.mkstemp(dir=feeds, prefix=".rss.xml.", suffix=".tmp")  # created this instant
        os.close(fd)
        _age(Path(fresh), 0)  # "this instant" by the clock the cleanup reads (a faked one too)
        fd, orphan = tempfile.mkstemp(dir=tags, prefix=".economy.xml.", suffix=".tmp")
        os.close(fd)
        _age(Path(orphan), 3600)
        fd, foreign = tempfile.mkstemp(dir=feeds, prefix=".notes.html.", suffix=".tmp")  # not a name of ours
        os.close(fd)
        _age(Path(foreign), 3600)

        assert project.cli("feed").exit_code == 0
        assert _temps(feeds) == sorted([in_flight, Path(fresh).name, Path(foreign).name])
        assert _temps(tags) == []  # the orphan went

        writer.send_signal(signal.SIGKILL)
        writer.wait(30)

    assert project.cli("feed").exit_code == 0
    assert _temps(feeds) == sorted([Path(fresh).name, Path(foreign).name])  # the killed writer's went
    _age(Path(fresh), 3600)
    result = project.cli("feed")
    assert result.exit_code == 0 and "0 written, 0 removed" in result.stdout
    assert _temps(feeds) == [Path(foreign).name]
    assert _titles(project) == [SAMPLE_TITLE]


def test_articles_list_keeps_one_line_per_article_whatever_the_names(project: Project, at_now: datetime) -> None:
    names = ["two\nlines", "a\ttab", "back\\slash", "bell\x07and\x1bescape"]
    for name in names:
        project.add_article(f"{name}.txt", f"Title of {name.splitlines()[0]}\n\nText.\n")
    assert project.cli("ingest", str(project.articles)).exit_code == 0

    result = project.cli("articles", "list")

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == len(names) + 1
    assert all(line.count("\t") == 2 for line in lines)
    shown = sorted(line.split("\t")[0] for line in lines)
    assert shown == sorted(["000_b518ed41a9e9a454", "two\\nlines", "a\\ttab", "back\\\\slash", "bell\\aand\\033escape"])
    for key in shown:  # as `ls -b` shows names: bash's $'...' gives each id back, and remove takes it
        decoded = subprocess.run(["bash", "-c", f"printf %s $'{key}'"], capture_output=True, check=True).stdout
        removed = project.cli("articles", "remove", decoded.decode())
        assert removed.exit_code == 0 and removed.stdout.startswith("removed "), (key, removed.output)
    assert project.cli("articles", "list").stdout == ""
