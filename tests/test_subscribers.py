"""The local subscriber list (publisher.subscribers): addresses checked and merged ignoring case,
CSV imports that report each bad row by line and never resubscribe, and lookups by address.

Run on SQLite and on PostgreSQL: the merge relies on the store's unique ``email_key``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from publisher import subscribers
from publisher.errors import ConfigError
from publisher.store import Store
from tests.conftest import NOW, Project


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, project: Project) -> Iterator[Store]:
    url = project.config().store_url if request.param == "sqlite" else request.getfixturevalue("pg_url")
    opened = Store.open(url)
    try:
        yield opened
    finally:
        opened.close()


def emails(store: Store, *, everyone: bool = False) -> list[tuple[str, str]]:
    return [(s.email, s.state) for s in subscribers.listing(store, include_unsubscribed=everyone)]


def csv_file(tmp_path: Path, text: str, name: str = "list.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


# -- addresses ------------------------------------------------------------------------------------


def test_normalize_keeps_the_local_part_and_lowercases_the_domain() -> None:
    assert subscribers.normalize("  Ann.Lee@Example.ORG ") == "Ann.Lee@example.org"
    assert subscribers.normalize("a@xn--mnchen-3ya.de") == "a@münchen.de"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("", "must have an @-sign"),
        ("ann.example.org", "must have an @-sign"),
        ("ann@localhost", "should have a period"),
        ("ann lee@example.org", "invalid characters before the @-sign"),
        ("Ann <ann@example.org>", "display name and angle brackets .* not permitted"),
    ],
)
def test_normalize_refuses_what_is_not_an_address_and_says_why(address: str, reason: str) -> None:
    with pytest.raises(subscribers.BadAddress, match=reason):
        subscribers.normalize(address)


def test_the_key_is_the_same_for_every_spelling_of_one_address() -> None:
    nfd = unicodedata.normalize("NFD", "Ärger@Example.org")
    assert subscribers.key(nfd) == subscribers.key("ärger@example.org") == "ärger@example.org"
    assert subscribers.key("A@XN--MNCHEN-3YA.DE") == subscribers.key("a@münchen.de")
    assert subscribers.key(" Not An Address ") == "not an address"


# -- add, remove, find ------------------------------------------------------------------------------


def test_add_merges_addresses_that_differ_only_in_case(store: Store) -> None:
    result = subscribers.add(
        store,
        [("Ann@example.org", "Ann"), ("ann@example.org", None), ("bob@example.org", None)],
        NOW,
        resubscribe=False,
    )
    assert (result.added, result.already) == (2, 1)
    assert emails(store) == [("Ann@example.org", "active"), ("bob@example.org", "active")]
    again = subscribers.add(store, [("ANN@example.org", None)], NOW, resubscribe=True)
    assert (again.added, again.resubscribed, again.already) == (0, 0, 1)
    [ann, _] = subscribers.listing(store)
    assert ann.name == "Ann"


def test_an_unsubscribed_address_comes_back_only_when_the_operator_adds_it(store: Store) -> None:
    subscribers.add(store, [("ann@example.org", None)], NOW, resubscribe=False)
    before = subscribers.find(store, "ann@example.org")
    assert before is not None
    assert subscribers.remove(store, "ANN@example.org", NOW + timedelta(days=1))

    kept = subscribers.add(store, [("ann@example.org", None)], NOW, resubscribe=False)
    assert (kept.added, kept.resubscribed, kept.kept_unsubscribed) == (0, 0, 1)
    assert emails(store, everyone=True) == [("ann@example.org", "unsubscribed")]

    back = subscribers.add(store, [("ann@example.org", None)], NOW, resubscribe=True)
    assert (back.added, back.resubscribed) == (0, 1)
    after = subscribers.find(store, "ann@example.org")
    assert after is not None and after.state == "active" and after.unsubscribed_at is None
    assert after.token != before.token  # a link from before the unsubscribe does not apply


def test_remove_unsubscribes_once_and_keeps_the_row(store: Store) -> None:
    subscribers.add(store, [("ann@example.org", None), ("bob@example.org", None)], NOW, resubscribe=False)
    assert subscribers.remove(store, "ann@example.org", NOW)
    assert not subscribers.remove(store, "ann@example.org", NOW)  # already
    assert not subscribers.remove(store, "nobody@example.org", NOW)
    assert emails(store) == [("bob@example.org", "active")]
    assert emails(store, everyone=True) == [("ann@example.org", "unsubscribed"), ("bob@example.org", "active")]
    assert subscribers.counts(store) == {"active": 1, "unsubscribed": 1}
    assert subscribers.active_count(store) == 1
    assert subscribers.any_active(store)
    assert subscribers.remove(store, "bob@example.org", NOW)
    assert not subscribers.any_active(store)  # everyone on the list unsubscribed


def test_find_looks_an_address_up_however_it_is_spelt(store: Store) -> None:
    subscribers.add(store, [(subscribers.normalize("Ärger@münchen.de"), None)], NOW, resubscribe=False)
    spelt = unicodedata.normalize("NFD", "ärger@XN--MNCHEN-3YA.DE")
    found = subscribers.find(store, spelt)
    assert found is not None and found.email == "Ärger@münchen.de"
    assert subscribers.find(store, "ärger@example.org") is None
    assert subscribers.find(store, "not an address") is None


# -- import ---------------------------------------------------------------------------------------


def test_import_with_a_header_reads_the_email_and_name_columns(store: Store, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "name,Email,city\nAnn Lee,ann@example.org,Oslo\n ,bob@example.org,Rome\n")
    result = subscribers.import_csv(store, path, NOW)
    assert (result.added, result.already, result.kept_unsubscribed, result.errors) == (2, 0, 0, [])
    assert [(s.email, s.name) for s in subscribers.listing(store)] == [
        ("ann@example.org", "Ann Lee"),
        ("bob@example.org", None),
    ]


def test_import_without_a_header_takes_the_first_column_and_a_byte_order_mark_is_ignored(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffann@example.org,Ann\r\nbob@example.org\r\n".encode())
    result = subscribers.import_csv(store, path, NOW)
    assert (result.added, result.errors) == (2, [])
    assert [(s.email, s.name) for s in subscribers.listing(store)] == [
        ("ann@example.org", "Ann"),
        ("bob@example.org", None),
    ]


def test_import_reports_each_bad_row_by_its_line_and_imports_the_rest(store: Store, tmp_path: Path) -> None:
    text = (
        "email,name\n"  # 1
        "ann@example.org,Ann\n"  # 2
        "not-an-address,Bob\n"  # 3
        '"cy@example.org","Cy\n'  # 4: a quoted name over two lines
        'the second"\n'  # 5
        "\n"  # 6: blank, skipped
        "dee@example,Dee\n"  # 7
        ",Nobody\n"  # 8
        "eve@example.org\n"  # 9
    )
    path = csv_file(tmp_path, text)
    result = subscribers.import_csv(store, path, NOW)
    assert result.errors == [
        f"{path}:3: 'not-an-address': An email address must have an @-sign.",
        f"{path}:7: 'dee@example': The part after the @-sign is not valid. It should have a period.",
        f"{path}:8: '': An email address must have an @-sign.",
    ]
    assert result.added == 3
    assert [(s.email, s.name) for s in subscribers.listing(store)] == [
        ("ann@example.org", "Ann"),
        ("cy@example.org", "Cy\nthe second"),
        ("eve@example.org", None),
    ]


def test_import_merges_repeats_and_keeps_unsubscribed_addresses_unsubscribed(store: Store, tmp_path: Path) -> None:
    subscribers.add(store, [("ann@example.org", None), ("gone@example.org", None)], NOW, resubscribe=False)
    subscribers.remove(store, "gone@example.org", NOW)
    path = csv_file(tmp_path, "email\nANN@example.org\nnew@example.org\nNew@Example.org\nGone@example.org\n")
    result = subscribers.import_csv(store, path, NOW)
    assert (result.added, result.already, result.kept_unsubscribed, result.errors) == (1, 2, 1, [])
    assert emails(store, everyone=True) == [
        ("ann@example.org", "active"),
        ("gone@example.org", "unsubscribed"),
        ("new@example.org", "active"),
    ]


def test_a_long_bad_value_is_cut_short_in_its_error_line(store: Store, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "email\n" + "x" * 500 + "\n")
    [error] = subscribers.import_csv(store, path, NOW).errors
    assert error.startswith(f"{path}:2: '{'x' * 80}...': ")
    assert len(error) < 250


def test_import_reports_progress_after_every_row(store: Store, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "email\na@example.org\nbad\n\nb@example.org\n")
    seen: list[tuple[int, int]] = []
    subscribers.import_csv(store, path, NOW, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_an_empty_file_or_a_header_alone_imports_nothing(store: Store, tmp_path: Path) -> None:
    for text in ("", "email,name\n"):
        result = subscribers.import_csv(store, csv_file(tmp_path, text), NOW)
        assert (result.added, result.errors) == (0, [])
    assert emails(store, everyone=True) == []


def test_a_file_that_cannot_be_read_as_csv_is_one_config_error(store: Store, tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    with pytest.raises(ConfigError, match=r"missing\.csv: cannot be read: No such file or directory$"):
        subscribers.import_csv(store, missing, NOW)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("email\nj\xfcrgen@example.org\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.csv: not UTF-8 text \(save the file as UTF-8 CSV\)$"):
        subscribers.import_csv(store, latin1, NOW)
    huge = csv_file(tmp_path, "email\nann@example.org\n" + "x" * 200_000 + "\n", "huge.csv")
    with pytest.raises(ConfigError, match=r"huge\.csv:3: not a CSV file the import can read: field larger"):
        subscribers.import_csv(store, huge, NOW)
    assert emails(store, everyone=True) == []  # nothing half-imported


# -- unsubscribe links ------------------------------------------------------------------------------


def test_a_link_is_signed_for_its_token_under_its_secret() -> None:
    secret = b"0123456789abcdef-secret"
    url = subscribers.unsubscribe_url("https://news.example.org/unsubscribe", secret, "tok_en")
    signature = subscribers.signature(secret, "tok_en")
    assert url == f"https://news.example.org/unsubscribe?s=tok_en&t={signature}"
    assert subscribers.check(secret, "tok_en", signature)
    assert not subscribers.check(secret, "other", signature)
    assert not subscribers.check(b"another-secret-0123456789", "tok_en", signature)
    assert not subscribers.check(secret, "tok_en", "é" + signature[1:])  # not even ASCII: refused, no error
    with_query = subscribers.unsubscribe_url("https://news.example.org/u?list=1", secret, "tok_en")
    assert with_query == f"https://news.example.org/u?list=1&s=tok_en&t={signature}"


def test_the_links_of_a_batch_are_the_links_of_each_token() -> None:
    secret = b"0123456789abcdef-secret"
    base = "https://news.example.org/unsubscribe"
    # Tokens as _new_token makes them, and two that need escaping in a query string.
    tokens = ["tok_en", "a-b_C9", "x" * 40, "with space", "plus+slash/é"]
    links = subscribers.Links(base, secret)

    urls = links.urls(tokens)

    assert urls == [subscribers.unsubscribe_url(base, secret, token) for token in tokens]
    assert [links.url(token) for token in tokens] == urls
    for token, url in zip(tokens, urls, strict=True):
        query = parse_qs(urlsplit(url).query, strict_parsing=True)
        assert query["s"] == [token]
        assert subscribers.check(secret, token, query["t"][0])
    assert links.urls([]) == []


def test_the_secret_must_be_set_and_long_enough(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    config = project.configure(digest={"recipients": "subscribers", "secret_env": "MY_LIST_SECRET"})
    monkeypatch.delenv("MY_LIST_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"\[digest\] secret_env: environment variable MY_LIST_SECRET is not set"):
        subscribers.secret(config)
    monkeypatch.setenv("MY_LIST_SECRET", "short")
    with pytest.raises(ConfigError, match="MY_LIST_SECRET is too short"):
        subscribers.secret(config)
    monkeypatch.setenv("MY_LIST_SECRET", "sixteen-chars-ok")
    assert subscribers.secret(config) == b"sixteen-chars-ok"
