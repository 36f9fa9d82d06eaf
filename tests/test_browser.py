"""A person opening the feed in a browser sees a page, not raw XML (headless Chromium).

The feeds are served by the real `publisher serve` on 127.0.0.1; Chromium (Debian's package,
installed by .ci/run) applies feed.xsl. The screenshots are kept under the test's tmp folder
(path printed on failure) so a person can look at them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_TITLE, Project, child_process, missing, readline_within

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def _chromium() -> str:
    """Debian's Chromium; missing, it fails the test under CI and skips it elsewhere."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    missing(
        "Chromium is not installed",
        under_ci=".ci/run must install Debian's chromium",
        elsewhere="apt-get install chromium to run the browser tests",
    )


@pytest.fixture
def served(project: Project, tmp_path: Path) -> Iterator[str]:
    """`publisher serve` on a free port, with the sample article published; yields its base URL."""
    assert project.cli("run").exit_code == 0
    command = [sys.executable, "-m", "publisher", "--config", str(project.config_path), "serve", "--port", "0"]
    # stdout holds only the "serve:" line; the access log goes to stderr, kept apart in a file.
    with child_process(command, cwd=project.root, stderr=tmp_path / "serve-stderr.log") as process:
        assert process.stdout is not None
        line = readline_within(process.stdout, 60, "`publisher serve`")  # "serve: http://127.0.0.1:PORT/ ..."
        assert line.startswith("serve: http://127.0.0.1:"), line
        yield line.split()[1]


def _browse(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("document", ["atom.xml", "rss.xml"])
def test_a_feed_opened_in_a_browser_is_a_readable_page(served: str, tmp_path: Path, document: str) -> None:
    url = served + document

    dom = _browse(url, tmp_path / "profile-dom", "--dump-dom").stdout
    shot = tmp_path / f"{document}.png"
    _browse(url, tmp_path / "profile-shot", "--window-size=900,900", f"--screenshot={shot}")

    # The stylesheet ran: the DOM is the HTML page it builds, not the feed's XML.
    assert "<html" in dom and "<feed" not in dom and "<rss" not in dom, dom[:500]
    assert "This is a web feed." in dom
    assert SAMPLE_TITLE in dom
    assert 'href="https://news.example.org/kremlin-condemns-us-approval' in dom
    assert shot.stat().st_size > 10_000, f"no real screenshot at {shot}"
