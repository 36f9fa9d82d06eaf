"""``publisher subscribers``: import a CSV, add, remove and list addresses of the local list.

Each command runs through the real CLI and the list is read back from the store.
"""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from publisher import subscribers
from publisher.cli import main
from tests.conftest import Project

HELP = [
    (("subscribers",), ["local subscriber list", 'recipients = "subscribers"', "import", "add", "remove", "list"]),
    (("subscribers", "import"), ["CSV file", "`email` column", "first column", "stay unsubscribed", "FILE:LINE"]),
    (("subscribers", "add"), ["Subscribe the ADDRESSes", "subscribed again"]),
    (("subscribers", "remove"), ["Unsubscribe the ADDRESSes", "cannot add them back"]),
    (("subscribers", "list"), ["one per line", "stderr", "--all"]),
]


@pytest.fixture(autouse=True)
def _plain_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """stderr is not a terminal here; these would make rich draw a bar anyway."""
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)


@pytest.fixture
def local_list(project: Project) -> Project:
    project.configure(digest={"recipients": "subscribers"})
    return project


def listed(project: Project) -> list[tuple[str, str]]:
    store = project.open_store()
    try:
        return [(s.email, s.state) for s in subscribers.listing(store, include_unsubscribed=True)]
    finally:
        store.close()


@pytest.mark.parametrize(("command", "phrases"), HELP, ids=[" ".join(c) for c, _ in HELP])
def test_every_subscribers_command_has_help(command: tuple[str, ...], phrases: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert re.match(rf"Usage: \S+ {re.escape(' '.join(command))}\s*\[OPTIONS\]", result.output), result.output
    help_text = " ".join(result.output.split())
    for phrase in phrases:
        assert phrase in help_text, f"{phrase!r} not in the help of {command}"


# -- import ---------------------------------------------------------------------------------------


def test_import_adds_the_good_rows_reports_each_bad_one_and_exits_1(local_list: Project) -> None:
    path = local_list.root / "readers.csv"
    path.write_text(
        "name,email\nAnn,ann@example.org\nBob,bob@@example.org\nCy,cy@example.org\nDee,dee\n"
        "Ann again,ANN@example.org\n",
        encoding="utf-8",
    )
    result = local_list.cli("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:3: 'bob@@example.org': The part after the @-sign contains invalid characters: '@'.",
        f"{path}:5: 'dee': An email address must have an @-sign.",
    ]
    assert result.stdout == ("subscribers: 2 added, 1 already on the list, 0 kept unsubscribed, 2 bad rows; 2 active\n")
    assert listed(local_list) == [("ann@example.org", "active"), ("cy@example.org", "active")]


def test_a_clean_import_exits_0_and_never_resubscribes(local_list: Project) -> None:
    assert local_list.cli("subscribers", "add", "gone@example.org", "ann@example.org").exit_code == 0
    assert local_list.cli("subscribers", "remove", "gone@example.org").exit_code == 0
    path = local_list.root / "readers.csv"
    path.write_text("Gone@Example.org\nann@example.org\nnew@example.org\n", encoding="utf-8")

    result = local_list.cli("subscribers", "import", str(path))

    assert result.exit_code == 0, result.output
    assert result.stdout == "subscribers: 1 added, 1 already on the list, 1 kept unsubscribed, 0 bad rows; 2 active\n"
    assert result.stderr == ""
    assert listed(local_list) == [
        ("ann@example.org", "active"),
        ("gone@example.org", "unsubscribed"),
        ("new@example.org", "active"),
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot be read: No such file or directory"),
        ("email\nj\xfcrgen@example.org\n".encode("latin-1"), "not UTF-8 text (save the file as UTF-8 CSV)"),
    ],
    ids=["missing", "latin-1"],
)
def test_a_file_that_cannot_be_read_is_one_line_and_exit_2(
    local_list: Project, content: bytes | None, problem: str
) -> None:
    path = local_list.root / "readers.csv"
    if content is not None:
        path.write_bytes(content)
    result = local_list.cli("subscribers", "import", str(path))
    assert result.exit_code == 2
    assert result.stderr == f"publisher: error: {path}: {problem}\n"
    assert result.stdout == ""
    assert listed(local_list) == []


def test_a_long_import_logs_its_progress_when_stderr_is_not_a_terminal(local_list: Project) -> None:
    path = local_list.root / "many.csv"
    path.write_text("email\n" + "".join(f"reader{n}@example.org\n" for n in range(2500)), encoding="utf-8")
    result = local_list.cli("subscribers", "import", str(path))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"{path}: 1000/2500 rows read",
        f"{path}: 2000/2500 rows read",
        f"{path}: 2500/2500 rows read",
    ]
    assert result.stdout.startswith("subscribers: 2500 added, ")


def test_importing_into_a_list_the_digest_does_not_use_says_so(project: Project) -> None:
    path = project.root / "readers.csv"
    path.write_text("ann@example.org\n", encoding="utf-8")
    result = project.cli("subscribers", "import", str(path))
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "note: publisher.toml sends the digest to [digest] to; "
        'set [digest] recipients = "subscribers" to send it to this list\n'
    )


# -- add, remove, list ------------------------------------------------------------------------------


def test_add_adds_the_good_addresses_and_reports_the_bad_one(local_list: Project) -> None:
    result = local_list.cli("subscribers", "add", "Ann@Example.ORG", "not an address", "bob@example.org")
    assert result.exit_code == 1
    assert result.stdout == "added Ann@example.org\nadded bob@example.org\n"
    assert result.stderr == "publisher: error: 'not an address': An email address must have an @-sign.\n"
    assert listed(local_list) == [("Ann@example.org", "active"), ("bob@example.org", "active")]

    again = local_list.cli("subscribers", "add", "ann@example.org", "ANN@example.org")
    assert again.exit_code == 0
    assert again.stdout == "ann@example.org: already subscribed\n"  # once: the two spellings are one address


def test_remove_keeps_the_address_as_unsubscribed_and_add_brings_it_back(local_list: Project) -> None:
    assert local_list.cli("subscribers", "add", "ann@example.org", "bob@example.org").exit_code == 0

    removed = local_list.cli("subscribers", "remove", "ANN@example.org", "nobody@example.org")
    assert removed.exit_code == 1
    assert removed.stdout == "unsubscribed ann@example.org\n"
    assert removed.stderr == (
        "publisher: error: 'nobody@example.org': not on the list (see `publisher subscribers list`)\n"
    )
    assert listed(local_list) == [("ann@example.org", "unsubscribed"), ("bob@example.org", "active")]

    twice = local_list.cli("subscribers", "remove", "ann@example.org")
    assert (twice.exit_code, twice.stdout) == (0, "ann@example.org: already unsubscribed\n")

    # By hand the operator may subscribe someone again (an import may not).
    back = local_list.cli("subscribers", "add", "ann@example.org")
    assert (back.exit_code, back.stdout) == (0, "resubscribed ann@example.org\n")
    assert listed(local_list) == [("ann@example.org", "active"), ("bob@example.org", "active")]


def test_list_prints_only_addresses_on_stdout_and_the_count_on_stderr(local_list: Project) -> None:
    none = local_list.cli("subscribers", "list")  # no store yet: one line, and none is created
    assert (none.exit_code, none.stdout) == (0, "")
    assert none.stderr.startswith("publisher: no store yet at sqlite:///") and none.stderr.count("\n") == 1
    assert not (local_list.root / "publisher.db").exists()
    assert local_list.cli("subscribers", "add", "dee@example.org").exit_code == 0
    assert local_list.cli("subscribers", "remove", "dee@example.org").exit_code == 0
    empty = local_list.cli("subscribers", "list")
    assert (empty.exit_code, empty.stdout, empty.stderr) == (0, "", "subscribers: 0 active\n")

    assert local_list.cli("subscribers", "add", "cy@example.org", "Ann@example.org", "bob@example.org").exit_code == 0
    assert local_list.cli("subscribers", "remove", "bob@example.org").exit_code == 0

    active = local_list.cli("subscribers", "list")
    assert active.exit_code == 0
    assert active.stdout == "Ann@example.org\ncy@example.org\n"
    assert active.stderr == "subscribers: 2 active\n"

    everyone = local_list.cli("subscribers", "list", "--all")
    assert everyone.exit_code == 0
    assert everyone.stdout == (
        "Ann@example.org\tactive\nbob@example.org\tunsubscribed\ncy@example.org\tactive\ndee@example.org\tunsubscribed\n"
    )
    assert everyone.stderr == "subscribers: 2 active, 2 unsubscribed\n"
