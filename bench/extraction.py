"""Article extraction on real pages: publisher beside trafilatura and readability-lxml.

    python -m bench extraction            # the 181 pages of the dev set
    python -m bench extraction --quick    # every 6th page

The dev set is ``../shared/extraction-benchmark/`` beside the repository (or the folder named by
PUBLISHER_EXTRACTION_BENCHMARK): pages as ``html/<id>.html.gz`` and ``ground-truth.json``. The
scorer follows its README: tokens are ``\\w+`` matches, each text the multiset of its 4-token
shingles; per page precision tp/(tp+fp) and recall tp/(tp+fn) (a page where fp = fn = 0 scores
1, an empty result scores 0 recall), averaged over pages; F1 from the two means. Every system
reads the same decoded text, in the same run; ms/page is CPU time.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from bench.common import Figure, Report, measured
from publisher.ingest.decode import decode
from publisher.ingest.formats import read

ROOT = Path(__file__).resolve().parent.parent
_WORD = re.compile(r"\w+")
_WORST = 8


def dataset() -> Path | None:
    configured = os.environ.get("PUBLISHER_EXTRACTION_BENCHMARK")
    for folder in ([Path(configured)] if configured else []) + [ROOT.parent / "shared" / "extraction-benchmark"]:
        if (folder / "ground-truth.json").is_file():
            return folder
    return None


def shingles(text: str, n: int = 4) -> Counter[tuple[str, ...]]:
    words = _WORD.findall(text)
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def page_score(truth: str, predicted: str) -> tuple[float | None, float | None]:
    """(precision, recall) of one page; None where undefined (nothing predicted / nothing true)."""
    true, pred = shingles(truth), shingles(predicted)
    tp = sum((true & pred).values())
    fp = sum((pred - true).values())
    fn = sum((true - pred).values())
    if fp == 0 and fn == 0:
        return 1.0, 1.0
    return (tp / (tp + fp) if tp + fp else None), (tp / (tp + fn) if tp + fn else None)


@dataclass
class Score:
    name: str
    precision: float = 0.0
    recall: float = 0.0
    empty: int = 0
    ms: float = 0.0
    pages: dict[str, tuple[float, float, str]] = field(default_factory=dict)  # id: p, r, why

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def evaluate(name: str, system: Callable[[str, bytes], str], pages: dict[str, bytes], truth: dict[str, str]) -> Score:
    predictions: dict[str, str] = {}
    errors: dict[str, str] = {}
    with measured() as cost:
        for key, raw in pages.items():
            try:
                predictions[key] = system(key, raw) or ""
            except Exception as exc:  # an extractor failing on one page scores 0 there
                predictions[key] = ""
                errors[key] = " ".join(str(exc).split())[:80]
    score = Score(name, ms=1000 * cost.cpu / max(1, len(pages)))
    precisions: list[float] = []
    recalls: list[float] = []
    for key in pages:
        p, r = page_score(truth[key], predictions[key])
        if p is not None:
            precisions.append(p)
        if r is not None:
            recalls.append(r)
        score.empty += not predictions[key].strip()
        why = errors.get(key) or _why(p or 0.0, r or 0.0, truth[key], predictions[key])
        score.pages[key] = (p or 0.0, r or 0.0, why)
    score.precision = sum(precisions) / len(precisions) if precisions else 0.0
    score.recall = sum(recalls) / len(recalls) if recalls else 0.0
    return score


def _why(p: float, r: float, truth: str, predicted: str) -> str:
    if not predicted.strip():
        return "nothing extracted"
    if r < 0.5:
        return f"most of the article missed ({len(predicted)} of {len(truth)} chars)"
    if p < 0.5:
        return f"mostly not the article ({len(predicted)} chars for {len(truth)})"
    if p < r:
        return "extra text kept (chrome, captions, comments or related links)"
    return "part of the article missed"


def _publisher(key: str, raw: bytes) -> str:
    return read(Path(f"{key}.html"), raw, ZoneInfo("UTC")).body.text


def systems() -> dict[str, Callable[[str, bytes], str]]:
    found: dict[str, Callable[[str, bytes], str]] = {"publisher": _publisher}
    try:
        import trafilatura

        def _trafilatura(key: str, raw: bytes) -> str:
            return trafilatura.extract(decode(raw, html=True), include_comments=False) or ""

        found["trafilatura"] = _trafilatura
    except ImportError:
        pass
    try:
        import lxml.html
        from readability import Document

        def _readability(key: str, raw: bytes) -> str:
            summary = Document(decode(raw, html=True)).summary()
            return str(lxml.html.fromstring(summary).text_content()) if summary.strip() else ""

        found["readability-lxml"] = _readability
    except ImportError:
        pass
    return found


def table(scores: list[Score]) -> str:
    rows = [("system", "precision", "recall", "F1", "empty pages", "ms/page")]
    rows += [
        (s.name, f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}", str(s.empty), f"{s.ms:.1f}") for s in scores
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def worst(score: Score, truth_urls: dict[str, str], count: int = _WORST) -> str:
    def f1(item: tuple[str, tuple[float, float, str]]) -> float:
        p, r, _ = item[1]
        return 2 * p * r / (p + r) if p + r else 0.0

    lines = [f"worst pages for {score.name}:"]
    for key, (p, r, why) in sorted(score.pages.items(), key=f1)[:count]:
        lines.append(f"  {key[:12]}  P={p:.2f} R={r:.2f}  {why}  {truth_urls.get(key, '')[:70]}")
    return "\n".join(lines)


def run(quick: bool = False) -> Report:
    folder = dataset()
    if folder is None:
        print(
            "bench: extraction: no dev set at ../shared/extraction-benchmark/ (or PUBLISHER_EXTRACTION_BENCHMARK);"
            " skipped",
            file=sys.stderr,
        )
        return Report()
    truth_file = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    keys = sorted(truth_file)[:: 6 if quick else 1]
    pages = {key: gzip.decompress((folder / "html" / f"{key}.html.gz").read_bytes()) for key in keys}
    truth = {key: str(truth_file[key].get("articleBody") or "") for key in keys}
    urls = {key: str(truth_file[key].get("url") or "") for key in keys}
    scores = [evaluate(name, system, pages, truth) for name, system in systems().items()]
    print(f"\nextraction on {len(keys)} pages of {folder}:\n{table(scores)}\n", file=sys.stderr)
    print(worst(scores[0], urls) + "\n", file=sys.stderr)
    ours = scores[0]
    report = Report()
    report.figures.append(
        Figure(
            name=f"extraction F1, {len(keys)} real pages",
            value=ours.f1,
            floor=0.965,
            unit="F1",
            target=1.0,
            higher_is_better=True,
            floor_name="the issue's target F1 (trafilatura 2.3.1: 0.960)",
        )
    )
    best = {s.name: s for s in scores[1:]}
    if "trafilatura" in best:
        other = best["trafilatura"]
        report.figures.append(
            Figure(
                name="extraction F1 beside trafilatura",
                value=ours.f1,
                floor=other.f1,
                unit="F1",
                target=1.0,
                higher_is_better=True,
                floor_name="trafilatura.extract(include_comments=False) on the same pages",
            )
        )
        report.figures.append(
            Figure(
                name="extraction CPU ms/page beside trafilatura",
                value=ours.ms,
                floor=other.ms,
                unit="ms",
                target=1.0,
                floor_name="trafilatura.extract on the same pages",
                note="publisher's time includes sanitizing, cleaning and metadata",
            )
        )
    return report


def main() -> None:
    run(quick="--quick" in sys.argv)


if __name__ == "__main__":
    main()
