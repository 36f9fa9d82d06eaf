"""How the cost of ingest grows with what changed.

Two figures, each beside a floor measured in the same run, in CPU seconds:

- ingest N dirty files into a fresh store, against reading every file and storing the raw
  bytes with one ``executemany`` into a SQLite table (the least any ingest must do);
- ingest the same N files again, unchanged, against a ``stat`` and a SHA-256 of every file
  (what telling "unchanged" apart costs when nothing can be trusted).

The files are made here: seed-like scraped pages (the body twice, chrome lines between),
Markdown with front matter, and HTML pages, a third each. Their modification times are set an
hour back, as files that were not written in the very second of the run.

    python -m bench.ingest           # N = 10,000
    python -m bench.ingest quick     # a few hundred
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.common import Figure, Report, best_of
from publisher.ingest import ingest
from publisher.store import Store

NOW = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)
FULL = 10_000
QUICK = 300
_TEXT = (
    "the harbour council said on monday that repairs to the old bridge would take longer than "
    "planned because engineers found damage below the waterline and the ferry service will run "
    "an extra boat each morning while residents asked for clearer notice of closures and the "
    "mayor promised a public meeting next week to explain the costs and the new timetable"
)
_WORDS = _TEXT.split(" ")
_CHROME = (
    "Skip to content",
    "Leave a Comment",
    "Your email address will not be published. Required fields are marked *",
    "Share this:",
    "Related Posts:",
    "Scroll to Top",
    "© 2024 Example News. All rights reserved.",
)


def _sentence(rng: random.Random, words: int) -> str:
    picked = rng.choices(_WORDS, k=words)
    return " ".join(picked).capitalize() + "."


def _paragraphs(rng: random.Random) -> list[str]:
    return [" ".join(_sentence(rng, rng.randint(8, 20)) for _ in range(rng.randint(3, 6))) for _ in range(5)]


def _txt(rng: random.Random, n: int) -> str:
    paragraphs = _paragraphs(rng)
    chrome = "\n\n".join(rng.sample(_CHROME[1:], 2))
    body = "\n\n".join(paragraphs)
    return f"{_CHROME[0]}\n\nStory number {n} about the harbour\n\n{body}\n\n{chrome}\n\n{body}\n\n{_CHROME[-2]}\n"


def _md(rng: random.Random, n: int) -> str:
    paragraphs = _paragraphs(rng)
    paragraphs[1] = f"Some **bold** words, a [link](https://example.org/{n}) and `code`. " + paragraphs[1]
    items = "\n".join(f"- {_sentence(rng, 5)}" for _ in range(3))
    body = "\n\n".join([*paragraphs[:3], items, *paragraphs[3:]])
    return (
        f"---\ntitle: 'Report {n}: the harbour'\ndate: 2024-{1 + n % 12:02}-{1 + n % 28:02}T09:30:00+01:00\n"
        f"author: Jo Writer\ntags: [harbour, bridge, n{n % 7}]\nlayout: post\n---\n\n"
        f"{body}\n\n## Related Posts:\n\n{_CHROME[1]}\n\n{body}\n"
    )


def _html(rng: random.Random, n: int) -> str:
    paragraphs = "".join(f"<p>{p}</p>" for p in _paragraphs(rng))
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>Page {n} | Example News</title>'
        f'<meta name="description" content="Page {n} summary."><meta name="keywords" content="harbour, n{n % 5}">'
        f'<meta property="article:published_time" content="2024-03-{1 + n % 28:02}T08:00:00Z"></head><body>'
        f'<header><a href="/">Example News</a><nav><a href="/a">A</a> <a href="/b">B</a></nav></header>'
        f'<article><h1>Page {n} headline</h1><div class="entry-meta">By Jo</div>{paragraphs}'
        f'<div class="sharedaddy"><h3>Share this:</h3><a href="#">Twitter</a></div>{paragraphs}</article>'
        f"<aside><h2>Related</h2><ul><li><a href='/x'>Other</a></li></ul></aside>"
        f'<div id="comments"><h3>Leave a Reply</h3><form><textarea></textarea></form></div>'
        f"<footer>{_CHROME[-1]}</footer><script>track()</script></body></html>"
    )


def make_files(folder: Path, count: int, seed: int = 7) -> list[Path]:
    """``count`` dirty article files in ``folder`` (100 to a subfolder), an hour old."""
    rng = random.Random(seed)
    makers = ((".txt", _txt), (".md", _md), (".html", _html))
    old = time.time_ns() - 3600 * 10**9
    paths = []
    for n in range(count):
        suffix, make = makers[n % 3]
        path = folder / f"{n // 100:03}" / f"story-{n:05}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make(rng, n), encoding="utf-8")
        os.utime(path, ns=(old, old))
        paths.append(path)
    return paths


def _floor_fresh(paths: list[Path], db: Path) -> None:
    rows = [(str(path), path.read_bytes()) for path in paths]
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE raw (path TEXT PRIMARY KEY, data BLOB NOT NULL)")
        conn.executemany("INSERT INTO raw VALUES (?, ?)", rows)
    conn.close()


def _floor_unchanged(paths: list[Path]) -> None:
    for path in paths:
        os.stat(path)
        hashlib.sha256(path.read_bytes()).hexdigest()


def _ingest(store: Store, folder: Path) -> None:
    result = ingest(store, [folder], articles_dir=folder, tz=ZoneInfo("UTC"), now=NOW)
    if result.errors:
        raise RuntimeError(f"bench: ingest failed: {result.errors[0]}")


def run(quick: bool) -> Report:
    count = QUICK if quick else FULL
    repeats = 1 if quick else 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "articles"
        paths = make_files(folder, count)
        runs = iter(range(2 * repeats))

        def floor_fresh() -> None:
            _floor_fresh(paths, root / f"floor-{next(runs)}.db")

        stores: list[Store] = []

        def fresh() -> None:
            stores.append(Store.open(f"sqlite:///{root / f'store-{len(stores)}.db'}"))
            _ingest(stores[-1], folder)

        fresh_floor = best_of(repeats, floor_fresh)
        fresh_cost = best_of(repeats, fresh)
        unchanged_floor = best_of(repeats + 1, lambda: _floor_unchanged(paths))
        unchanged = best_of(repeats + 1, lambda: _ingest(stores[-1], folder))
        for store in stores:
            store.close()
    n = f"{count:,}"
    return Report(
        figures=[
            Figure(
                name=f"ingest {n} dirty files, fresh store",
                value=fresh_cost,
                floor=fresh_floor,
                unit="s CPU",
                target=5.0,
                floor_name="read + one executemany of the raw bytes into a SQLite table",
            ),
            Figure(
                name=f"re-ingest {n} unchanged files",
                value=unchanged,
                floor=unchanged_floor,
                unit="s CPU",
                target=2.0,
                floor_name="stat + sha256 of every file",
            ),
        ]
    )


if __name__ == "__main__":
    report = run(quick="quick" in sys.argv[1:])
    for figure in report.figures:
        print(
            f"{figure.name}: {figure.value:.2f} {figure.unit} vs floor {figure.floor:.2f} "
            f"({figure.floor_name}) = {figure.ratio:.1f}x, target {figure.target}x, met: {figure.met}"
        )
