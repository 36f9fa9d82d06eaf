"""Issue 11: what an HTML page says of itself reaches the store, the seed comes out once, the
benchmark's scorer scores as its README says, and a huge page stays bounded."""

from __future__ import annotations

import json
import time
from contextlib import closing
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.extraction import Score, page_score, table
from publisher.ingest import ingest
from publisher.ingest.formats import read
from tests.conftest import NOW, SAMPLE, SAMPLE_TITLE, Project

TZ = ZoneInfo("Europe/Berlin")
PARAGRAPHS = [
    "The city council approved the new cycling plan on Tuesday evening after a debate that lasted four hours.",
    "Under the plan, twelve kilometres of protected lanes will be built over the next three years.",
    "Construction on the first section is expected to begin in the spring, once the contracts are signed.",
]
LD = {
    "@context": "https://schema.org",
    "@graph": [
        {"@type": "WebSite", "name": "Town Post"},
        {
            "@type": "NewsArticle",
            "headline": "Council Backs Cycling Plan",
            "datePublished": "2024-05-02T10:00:00+02:00",
            "dateModified": "2024-05-03T08:15:00+02:00",
            "author": [{"@type": "Person", "name": "Rana Haddad"}],
            "publisher": {"@type": "Organization", "name": "Town Post"},
        },
    ],
}
PAGE = f"""<!DOCTYPE html><html lang="ar" dir="rtl"><head>
<title>Council Backs Cycling Plan | Town Post</title>
<meta property="og:image" content="https://example.org/bikes.jpg">
<meta property="og:image:alt" content="Cyclists on the bridge">
<meta name="description" content="Twelve kilometres of lanes.">
<link rel="canonical" href="https://example.org/news/cycling-plan">
<script type="application/ld+json">{json.dumps(LD)}</script>
</head><body><header><h1 class="logo">Town Post</h1><p>News you can use</p></header>
<article><h1>Council Backs Cycling Plan</h1>{"".join(f"<p>{p}</p>" for p in PARAGRAPHS)}</article>
</body></html>"""


def test_an_html_page_fills_the_article_metadata(project: Project) -> None:
    path = project.add_article("cycling.html", PAGE)
    with closing(project.open_store()) as store:
        result = ingest(store, [path], articles_dir=project.articles, tz=TZ, now=NOW)
        assert result.errors == []
        article = store.article("cycling")
    assert article is not None
    assert article.title == "Council Backs Cycling Plan"
    assert article.author == "Rana Haddad"
    assert article.published.isoformat() == "2024-05-02T08:00:00+00:00"
    assert article.body_text.split("\n\n") == PARAGRAPHS
    assert article.meta == {
        "language": "ar",
        "direction": "rtl",
        "image": "https://example.org/bikes.jpg",
        "image_alt": "Cyclists on the bridge",
        "canonical": "https://example.org/news/cycling-plan",
        "modified": "2024-05-03T08:15:00+02:00",
        "description": "Twelve kilometres of lanes.",
    }


def test_direction_comes_from_the_script_when_the_page_declares_neither() -> None:
    words = "وافق مجلس المدينة مساء الثلاثاء على خطة جديدة للدراجات بعد نقاش طويل أمام جمهور كبير"
    page = f"<html><body><h1>خطة الدراجات</h1><p>{words}</p><p>{words} اليوم</p></body></html>"
    draft = read(Path("a.html"), page.encode(), TZ)
    assert draft.meta.get("direction") == "rtl"
    assert "language" not in draft.meta


def test_an_unsafe_image_url_is_not_kept() -> None:
    page = PAGE.replace("https://example.org/bikes.jpg", "javascript:alert(1)")
    assert "image" not in read(Path("a.html"), page.encode(), TZ).meta


def test_the_seed_comes_out_each_paragraph_once_without_chrome() -> None:
    draft = read(SAMPLE, SAMPLE.read_bytes(), TZ)
    assert draft.title == SAMPLE_TITLE
    assert len(draft.body.paragraphs) == 5
    assert len(set(draft.body.paragraphs)) == 5
    for chrome in ("Leave a Comment", "Your email address", "Scroll to Top"):
        assert chrome not in draft.body.text


def test_the_scorer_follows_the_benchmark_readme() -> None:
    truth = "one two three four five six"
    assert page_score(truth, truth) == (1.0, 1.0)
    assert page_score(truth, "") == (None, 0.0)  # nothing predicted: recall 0, precision undefined
    precision, recall = page_score(truth, "one two three four five seven")
    assert (precision, recall) == (2 / 3, 2 / 3)
    score = Score("x", precision=0.9, recall=0.6)
    assert round(score.f1, 3) == 0.72
    assert "0.720" in table([score])


def test_a_huge_page_is_extracted_in_bounded_time() -> None:
    sentence = "The quick brown fox jumps over the lazy dog near the river bank today. " * 3
    page = "<html><body><h1>Long</h1>" + "".join(f"<p>{i} {sentence}</p>" for i in range(20_000)) + "</body></html>"
    started = time.perf_counter()
    draft = read(Path("long.html"), page.encode(), TZ)
    assert len(draft.body.paragraphs) == 20_000
    assert time.perf_counter() - started < 60  # linear: about 3 s here; quadratic would be hours
