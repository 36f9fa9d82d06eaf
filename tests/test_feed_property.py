"""200 random articles through ingest and every feed writer: every document valid, and equal.

Each example writes 200 article files (.txt, .md with or without front matter, .html) with
arbitrary Unicode titles and bodies, built from strings Hypothesis draws and a seed it picks:
control characters, markup, ``&`` and quotes, right-to-left text, very long lines; odd file
names too (the article key is in the entry id). Files that cannot become articles must be
reported as an IngestError with a reason; the others must be in the store. The feeds are then written with
room for every article and with 20 per document (so archives and tag feeds fill up), and each
document must pass tests/feedcheck.py and read back equal to what the store holds.
"""

from __future__ import annotations

import copy
import html
import json
import random
import tempfile
import tomllib
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from lxml import etree

from publisher import clock
from publisher.errors import IngestError
from publisher.feed import ids, tag_slug, write_feeds
from publisher.feed.model import Entry, entry
from publisher.ingest import ingest
from publisher.store import Article
from tests.conftest import NOW, REPO, Project
from tests.feedcheck import ATOM_NS, CONTENT_NS, as_feedparser_reads, check_atom, check_json_feed, check_rss, read_back

ARTICLES = 200
FEEDS = "https://news.example.org/feeds/"
A = f"{{{ATOM_NS}}}"

# Pieces that have broken feeds somewhere: markup, entities, quotes, controls, bidi, emoji...
TRICKY = [
    "&", "&amp;", "&lt;", "&#x26;", "&nbsp;", "<", ">", "<b>", "</b>", "<i>x</i>", "<script>alert(1)</script>",
    "<![CDATA[", "]]>", "<!--", "-->", '"', "'", "\\", "`", "*", "_", "#", "[x](y)", "\x00", "\x07", "\x0b", "\x1b",
    "\x7f", "\x85", "\r", "\r\n", "\t", "\u2028", "\u200f", "\u202e", "\ufeff", "\ufffe", "\uffff", "שלום",
    "مرحبا", "Привет", "東京", "😀", "🇺🇦", "e\u0301", "\U0001d11e",
]  # fmt: skip
# Body markup, in the syntax of each format (relative links must come out absolute).
MARKUP = [
    '<a href="../rel/page.html">a link</a>', '<img src="img/pic.png" alt="pic">', "<p>", "</p>", "<br>",
    '<a href="javascript:alert(1)">x</a>', "<table><tr><td>cell</td></tr></table>", "[link](other/page.md)",
    "![image](/img/x.png)", "**bold**", "- item", "> quote", "## Heading", "    code", "---",
]  # fmt: skip

# Code point ranges the random text is drawn from: controls, Latin, combining marks, Hebrew
# and Arabic (right to left), CJK, the XML-illegal U+FFFE/U+FFFF, astral emoji and symbols.
RANGES = [
    (0x00, 0x1F), (0x20, 0x7E), (0x7F, 0x9F), (0xA0, 0x24F), (0x300, 0x36F), (0x590, 0x6FF), (0x2000, 0x206F),
    (0x4E00, 0x9FFF), (0xFFF0, 0xFFFF), (0x1F300, 0x1FAFF), (0x1D100, 0x1D1FF), (0xE0000, 0xE007F),
]  # fmt: skip
NAMES = ["", "", "", " two words", "-ü", "&amp", "東京", "+plus", "#hash", "%20", "'quote"]
ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8)), ZoneInfo("Europe/Berlin")]

# Hypothesis holds about 8 KB of choices per example, far less than 200 articles of text: it
# draws a pool of arbitrary strings and a seed, and the articles are built from those.
pool = st.lists(st.text(st.characters(codec="utf-8"), max_size=24), min_size=10, max_size=40)
seed = st.integers(0, 2**32 - 1)


def _text(rng: random.Random, size: int) -> str:
    low, high = rng.choice(RANGES)
    if low in (0x00, 0x7F):  # a few controls are dirt to clean; many make the file binary data
        size = rng.randint(1, 2)
    return "".join(chr(rng.randint(low, high)) for _ in range(size))


def _fragment(rng: random.Random, strings: list[str]) -> str:
    kind = rng.random()
    if kind < 0.35:
        return rng.choice(strings)
    if kind < 0.65:
        return rng.choice(TRICKY)
    if kind < 0.9:
        return _text(rng, rng.randint(1, 30))
    # a very long line (of a string without controls: thousands of them make a file binary data)
    printable = "".join(c for c in rng.choice(strings) if unicodedata.category(c) != "Cc")
    return (printable or "x") * rng.randint(50, 2000)


def _line(rng: random.Random, strings: list[str]) -> str:
    return "".join(_fragment(rng, strings) for _ in range(rng.randint(1, 5)))


def _body(rng: random.Random, strings: list[str]) -> list[str]:
    paragraphs = []
    for i in range(rng.randint(0, 5)):
        parts = [_fragment(rng, strings) for _ in range(rng.randint(1, 6))]
        if rng.random() < 0.7:
            parts.append(f"and plain words, paragraph {i}.")  # most articles have some text
        parts.insert(rng.randint(0, len(parts)), rng.choice(MARKUP))
        paragraphs.append(" ".join(parts))
    return paragraphs


AFTER_EVERY_DATE = datetime(2101, 1, 1, tzinfo=UTC)  # the feeds' clock: after every date _published makes


def _published(rng: random.Random) -> str | None:
    kind = rng.random()
    if kind < 0.4:
        return None
    day = date(1900, 1, 1) + timedelta(days=rng.randint(0, 73000))
    if kind < 0.6:
        return day.isoformat()
    moment = datetime.combine(day, datetime.min.time()) + timedelta(seconds=rng.randint(0, 86399))
    if rng.random() < 0.3:
        moment = moment.replace(microsecond=rng.randint(0, 999999))
    return moment.replace(tzinfo=rng.choice(ZONES)).isoformat()


def article_file(rng: random.Random, strings: list[str]) -> tuple[str, str]:
    """(suffix, file text) of one random article."""
    suffix = rng.choice(["txt", "md", "md", "html"])
    title, body = _line(rng, strings), _body(rng, strings)
    if suffix == "txt":
        return suffix, title + "\n\n" + "\n\n".join(body) + "\n"
    if suffix == "html":
        head = html.escape(title) if rng.random() < 0.5 else title  # markup in the title itself, or escaped
        paragraphs = "".join(f"<p>{p}</p>" for p in body)
        page = f"<html><head><title>{head}</title></head><body><article><h1>{head}</h1>{paragraphs}</article>"
        return suffix, page + "</body></html>"
    if rng.random() < 0.3:
        return suffix, f"# {title}\n\n" + "\n\n".join(body) + "\n"
    meta: dict[str, Any] = {"title": title}
    if (when := _published(rng)) is not None:
        meta["date"] = when
    if rng.random() < 0.6:
        tags = ["news", "News", "économie", "R&D <x>", "\x02", _line(rng, strings)]
        meta["tags"] = [rng.choice(tags) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.4:
        meta["author"] = _line(rng, strings)
    if rng.random() < 0.4:
        meta["summary"] = _line(rng, strings)
    # JSON is YAML: every character survives, controls as \u escapes. Not astral ones: ensure_ascii
    # would write them as surrogate pairs, which YAML reads as two lone surrogates.
    front = "".join(f"{key}: {json.dumps(value, ensure_ascii=False)}\n" for key, value in meta.items())
    return suffix, f"---\n{front}---\n" + "\n\n".join(body) + "\n"


def _project(root: Path) -> Project:
    settings_ = tomllib.loads((REPO / "publisher.toml").read_text(encoding="utf-8"))
    (root / "articles").mkdir()
    project = Project(root=root, settings=copy.deepcopy(settings_))
    project.configure(feed={"hubs": ["https://hub.example.org/"]})
    return project


# No shrinking: the seed and the pool are the failing example, and each try takes seconds.
@settings(
    max_examples=10,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(pool, seed)
def test_random_articles_give_valid_feeds_that_read_back_equal(strings: list[str], seed: int) -> None:
    rng = random.Random(seed)
    files = [article_file(rng, strings) for _ in range(ARTICLES)]
    with tempfile.TemporaryDirectory() as tmp:
        project = _project(Path(tmp))
        written = {}
        for i, (suffix, text) in enumerate(files):
            name = f"a{i:03d}{rng.choice(NAMES)}.{suffix}"
            path = project.add_article(name, text)
            written[str(path)] = path.stem
        store = project.open_store()
        result = ingest(
            store, [project.articles], articles_dir=project.articles, tz=project.config().site.timezone, now=NOW
        )

        for error in result.errors:
            assert isinstance(error, IngestError) and error.reason.strip(), error
            assert error.path in written, error
        rejected = {written[error.path] for error in result.errors}
        articles = store.newest_articles()
        assert sorted(a.key for a in articles) == sorted(set(written.values()) - rejected)
        assert sorted(result.new) == sorted(a.key for a in articles)

        for max_entries in (500, 20):
            config = project.configure(feed={"max_entries": max_entries})
            with clock.frozen(AFTER_EVERY_DATE):  # no article waits for its date (an embargo)
                feed = write_feeds(config, store)
                assert not write_feeds(config, store).changed  # the same store gives the same bytes
            made = [_entry(config, article, articles) for article in articles]
            expected = {item.id: (item, article) for article, item in zip(articles, made, strict=True)}
            assert len(expected) == len(articles)  # ids are unique
            _check_documents(feed.dir, expected, [item.id for item in made], max_entries)
        store.close()


def _entry(config: Any, article: Article, articles: list[Article]) -> Entry:
    """The entry the feeds should hold: its id made from the key, its updated set apart from
    the articles of the same instant before it (by id)."""
    tie = sum(1 for other in articles if other.published == article.published and other.id < article.id)
    return entry(config, article, ids.new_id(config.site, article.key), tie=tie)


def _check_documents(
    root: Path, expected: dict[str, tuple[Entry, Article]], order: list[str], max_entries: int
) -> None:
    """Every document under ``root``: valid, its entries equal to the store's, all placed right."""
    main = order[:max_entries]
    archived: list[str] = []
    for path in sorted(root.rglob("*.xml")):
        name = path.relative_to(root).as_posix()
        data = path.read_bytes()
        if name == "rss.xml":
            items = check_rss(data).findall("channel/item")
            parsed = read_back(data)
            assert {link.rel: link.href for link in parsed.feed.links}["self"] == FEEDS + "rss.xml"
            assert [e.id for e in parsed.entries] == [item.findtext("guid") for item in items] == main
            for got, item in zip(parsed.entries, items, strict=True):
                _same(got, *expected[got.id], rss=True)
                _same_xml(item, expected[got.id][0], rss=True)
            continue
        entries = check_atom(data).findall(f"{A}entry")
        parsed = read_back(data)
        assert [e.id for e in parsed.entries] == [entry.findtext(f"{A}id") for entry in entries]
        for got, element in zip(parsed.entries, entries, strict=True):
            _same_xml(element, expected[got.id][0], rss=False)
        assert {link.rel: link.href for link in parsed.feed.links}["self"] == FEEDS + name
        ids = [e.id for e in parsed.entries]
        assert ids == [i for i in order if i in set(ids)], f"{name}: entries not newest first"
        for got in parsed.entries:
            _same(got, *expected[got.id], rss=False)
        if name == "atom.xml":
            assert ids == main
        elif name.startswith("archive/"):
            assert all(expected[i][0].month == path.stem for i in ids), f"{name}: entries of another month"
            archived += ids
        else:
            assert name.startswith("tags/"), name
            for i in ids:
                # the plain slug, or the slug and a digest when tags slugify alike (publisher.feed.tags)
                stems = {tag_slug(tag) or "tag" for tag in expected[i][0].tags}
                assert any(path.stem == s or path.stem.rsplit("-", 1)[0] == s[:60] for s in stems), (name, i)
    assert sorted(main + archived) == sorted(order), "every entry is in atom.xml or in exactly one archive"

    feed = check_json_feed((root / "feed.json").read_bytes())
    assert feed["feed_url"] == FEEDS + "feed.json"
    assert [item["id"] for item in feed["items"]] == main
    for item in feed["items"]:
        want, article = expected[item["id"]]
        assert item["title"] == want.title == article.title
        assert (item["url"], item["content_html"], item["summary"]) == (want.url, want.content_html, want.summary)
        assert item["authors"] == [{"name": want.author}] and item["tags"] == list(want.tags)
        assert datetime.fromisoformat(item["date_published"]) == want.published == article.published
        assert datetime.fromisoformat(item["date_modified"]) == want.updated >= want.published


def _same(got: Any, want: Entry, article: Article, *, rss: bool) -> None:
    """A feedparser entry says what the store holds (the feed's strings are XML-clean)."""
    assert want.title == article.title
    assert got.title == as_feedparser_reads(want.title), (got.title, want.title)
    assert got.link == want.url
    if "content" in got:
        assert got.content[0].value == as_feedparser_reads(want.content_html)
        # RSS's description is HTML, so the plain-text summary goes in escaped; Atom's is text.
        summary = html.escape(want.summary, quote=False) if rss else want.summary
        assert got.get("summary", "") == as_feedparser_reads(summary)
    else:  # RSS without a description (the summary was cleaned down to nothing): feedparser's summary
        assert not want.summary and got.summary == as_feedparser_reads(want.content_html)
    # feedparser repairs an author's name in some paths and not others (it builds author_detail
    # from the raw name): either reading is the store's name.
    assert got.author in {want.author, as_feedparser_reads(want.author)}
    # RSS categories are element text, which feedparser "repairs"; Atom's are attributes.
    terms = [as_feedparser_reads(tag) for tag in want.tags] if rss else list(want.tags)
    assert [tag.term for tag in got.get("tags", [])] == terms
    if rss:  # RFC 822 dates hold whole seconds
        assert parsedate_to_datetime(got.published) == want.published.replace(microsecond=0)
        return
    assert datetime.fromisoformat(got.published) == want.published == article.published
    assert datetime.fromisoformat(got.updated) == want.updated >= want.published


def _same_xml(item: etree._Element, want: Entry, *, rss: bool) -> None:
    """The document's own text, exactly (feedparser adjusts some, see as_feedparser_reads)."""
    if rss:
        assert item.findtext("title") == want.title
        if want.summary:
            assert item.findtext(f"{{{CONTENT_NS}}}encoded") == want.content_html
            assert item.findtext("description") == html.escape(want.summary, quote=False)
        else:  # feedgen: no synopsis, so the HTML is the description (and there is no content:encoded)
            assert item.find(f"{{{CONTENT_NS}}}encoded") is None
            assert item.findtext("description") == want.content_html
        assert [c.text for c in item.findall("category")] == list(want.tags)
        return
    assert item.findtext(f"{A}title") == want.title
    assert item.findtext(f"{A}content") == want.content_html
    assert item.findtext(f"{A}summary", "") == want.summary
    assert item.findtext(f"{A}author/{A}name") == want.author
    assert [c.get("term") for c in item.findall(f"{A}category")] == list(want.tags)
