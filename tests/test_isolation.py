"""One failing stage never stops the next: feeds that cannot be written still let the digest go,
and an article too big for lxml's default limits neither stops the feeds nor the digest."""

from __future__ import annotations

import contextlib
import email
import email.policy
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from tests.conftest import Project, missing
from tests.feedcheck import read_back


def test_feeds_that_cannot_be_written_are_one_line_and_the_digest_still_goes(project: Project) -> None:
    (project.root / "blocker").write_text("a file where the feeds folder would go")
    project.configure(feed={"dir": "blocker/feeds"})

    result = project.cli("run")

    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert "blocker/feeds" in line and "[feed] dir" in line, line
    assert "Traceback" not in result.output
    assert "feeds: not written" in result.stdout
    assert len(project.outbox_files()) == 1  # the digest went out all the same

    again = project.cli("feed")
    assert again.exit_code == 1 and again.stderr.count("\n") == 1


def test_an_article_of_ten_megabytes_is_published_and_mailed(project: Project) -> None:
    rng = random.Random(7)
    words = ["".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
    paragraphs = (" ".join(rng.choice(words) for _ in range(90)) + "." for _ in range(22_000))
    project.add_article("huge.md", "---\ntitle: A very long report\n---\n" + "\n\n".join(paragraphs) + "\n")
    assert (project.articles / "huge.md").stat().st_size > 10_000_000

    result = project.cli("run")

    assert result.exit_code == 0, result.output
    root = etree.parse(str(project.feed), etree.XMLParser(huge_tree=True)).getroot()
    titles = [title.text for title in root.iter("{http://www.w3.org/2005/Atom}title")]
    assert "A very long report" in titles
    [sent] = project.outbox_files()
    message = email.message_from_bytes(sent.read_bytes(), policy=email.policy.default)
    assert "A very long report" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_a_fifo_named_as_an_article_is_refused_not_waited_on(project: Project) -> None:
    fifo = project.articles / "pipe.txt"
    os.mkfifo(fifo)

    result = project.cli("ingest", str(fifo), str(project.articles))

    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert "pipe.txt" in line and "not a regular file" in line, line
    assert "1 new" in result.stdout  # the sample article still went in


@pytest.fixture
def small_disk(project: Project) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted where the feeds go: a real disk that fills up (needs root)."""
    folder = project.root / "feeds"
    folder.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(folder)], capture_output=True
    )
    if not mounted or mounted.returncode != 0:
        missing("a small tmpfs", under_ci=".ci/run runs as root, which may mount one", elsewhere="run as root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_full_disk_under_the_feeds_is_one_line_the_digest_goes_and_no_temp_file_stays(
    project: Project, small_disk: Path
) -> None:
    for n in range(40):  # enough text that the feeds need more room than is left
        project.add_article(f"a{n:02d}.md", f"---\ntitle: Story {n}\n---\n" + f"Paragraph {n} of news. " * 400 + "\n")
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    with contextlib.suppress(OSError):  # the disk full to the last block
        while os.write(fd, b"\0" * 4096):
            pass
    os.close(fd)

    result = project.cli("run")

    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert "feeds" in line and "No space left on device" in line, line
    assert "Traceback" not in result.output
    assert len(project.outbox_files()) == 1  # the digest went out all the same
    assert [p.name for p in small_disk.rglob("*") if p.is_file()] == ["filler"]  # no temp file, no half a feed

    filler.unlink()  # room again: the next run writes the feeds
    again = project.cli("run")
    assert again.exit_code == 0, again.output
    assert len(read_back(project.feed.read_bytes()).entries) > 0
