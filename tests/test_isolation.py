"""One failing stage never stops the next: feeds that cannot be written still let the digest go,
and an article too big for lxml's default limits neither stops the feeds nor the digest."""

from __future__ import annotations

import email
import email.policy
import os
import random

from lxml import etree

from tests.conftest import Project


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
