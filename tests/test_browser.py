"""What people see in a browser (headless Chromium): the feeds as pages, the digest email.

The feeds are served by the real `publisher serve` on 127.0.0.1; Chromium (Debian's package,
installed by .ci/run) applies feed.xsl. The digest is rendered as a phone (375 px) and a
desktop mail client (700 px) would show it, light and dark. The screenshots are kept under
the test's tmp folder (path printed on failure) so a person can look at them; with
DIGEST_SHOTS_DIR set, the digest's are copied there too.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from publisher import digest
from publisher.ingest import ingest
from tests.conftest import NOW, SAMPLE_TITLE, Project, child_process, missing, readline_within
from tests.endpoint import Endpoint

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
    # A fake clock preloaded to run the suite a year ahead (README, Development) crashes
    # Chromium's sandbox; the browser's calendar is not under test, so it keeps the real one.
    env = {name: value for name, value in os.environ.items() if name != "LD_PRELOAD"}
    return subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
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


# -- the digest email -------------------------------------------------------------------------

LONG_URL = "https://example.org/" + "/".join(f"section-{n}-with-a-rather-long-name" for n in range(6)) + "/index.html"
# The email in an iframe exactly as wide as a phone's or a mail client's window (Chromium
# keeps its own window at least 500 px wide); the script reports the email's layout.
FRAME = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><style>body {{ margin: 0 }} iframe {{ border: 0; display: block }}</style></head>
<body><iframe id="mail" style="width: {width}px; height: {height}px" srcdoc="{email}"></iframe>
<script>
document.getElementById("mail").addEventListener("load", function () {{
  var mail = this.contentDocument, root = mail.documentElement;
  var style = function (selector, property) {{
    return getComputedStyle(mail.querySelector(selector)).getPropertyValue(property);
  }};
  document.title = JSON.stringify({{
    scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, height: root.scrollHeight,
    container: style(".container", "background-color"), text: style(".body p", "color"),
    link: style(".body a", "color"), footer: style(".footer", "color"),
    images: Array.prototype.map.call(mail.images, function (i) {{ return [i.alt, i.width, i.naturalWidth]; }})
  }});
}});
</script></body></html>
"""


def _png(width: int, height: int) -> bytes:
    """A real PNG (a horizontal gradient), for the email's images."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(c for x in range(width) for c in (x * 255 // width, 120, 200))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    pixels = zlib.compress(row * height)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@pytest.fixture
def email_html(project: Project, endpoint: Endpoint) -> str:
    """A digest with what strains a narrow screen: a long URL, wide images, a wide table and code."""
    images = {"/photo.png": _png(1200, 800), "/chart.png": _png(900, 300)}
    endpoint.handler = lambda request: (200, images[request.route], {"Content-Type": "image/png"})
    cells = "".join(f"<td>Column {n} with several words</td>" for n in range(8))
    project.add_article(
        "wide.html",
        "<html><head><title>Wide things in a narrow window</title><meta name='author' content='Ann Ode'></head>"
        "<body><article><h1>Wide things in a narrow window</h1>"
        f'<p>The full report is at <a href="{LONG_URL}">{LONG_URL}</a>, and the German word for it is '
        "Donaudampfschifffahrtsgesellschaftskapitänswitwenrentenversicherung.</p>"
        f'<p><img src="{endpoint.url}/photo.png" width="1200" height="800" alt="A gradient photo"></p>'
        "<h2>The numbers</h2>"
        f"<table><tr>{cells}</tr><tr>{cells}</tr></table>"
        f'<p><img src="{endpoint.url}/chart.png"></p>'
        "<pre>result = compute(first_argument_with_a_long_name, second_argument_with_a_long_name, "
        "third_argument_with_a_long_name)</pre>"
        "<blockquote><p>A quotation, to see its rule and colour.</p></blockquote>"
        "<ul><li>One item</li><li>Another item</li></ul>"
        "</article></body></html>",
    )
    store = project.open_store()
    config = project.config()
    result = ingest(store, [project.articles], articles_dir=project.articles, tz=config.site.timezone, now=NOW)
    assert not result.errors, result.errors
    return digest.render(config, digest.next_articles(config, store, NOW), digest_id="x", now=NOW).html


def layout_and_shot(
    frame_page: str, email_html: str, tmp_path: Path, name: str, width: int, scheme: str
) -> tuple[dict[str, Any], Path]:
    """The email in ``frame_page`` (a FRAME whose script reports the layout in its title):
    first the layout, measured in an iframe as tall as the window; then a screenshot of it
    all, ``NAME-WIDTH-SCHEME.png`` (copied to DIGEST_SHOTS_DIR when that is set)."""
    preference = f"--blink-settings=preferredColorScheme={0 if scheme == 'dark' else 1}"
    frame = tmp_path / f"frame-{name}.html"
    frame.write_text(frame_page.format(width=width, height=800, email=html.escape(email_html)), encoding="utf-8")
    dom = _browse(frame.as_uri(), tmp_path / "profile-dom", preference, f"--window-size={width},800", "--dump-dom")
    title = re.search(r"<title>(.*)</title>", dom.stdout)
    assert title, f"Chromium reported no layout: {dom.stderr[-2000:]}"
    layout: dict[str, Any] = json.loads(html.unescape(title.group(1)))
    frame.write_text(
        frame_page.format(width=width, height=layout["height"], email=html.escape(email_html)), encoding="utf-8"
    )
    shot = tmp_path / f"{name}-{width}-{scheme}.png"
    _browse(
        frame.as_uri(),
        tmp_path / "profile-shot",
        preference,
        f"--window-size={width},{layout['height']}",
        f"--screenshot={shot}",
    )
    if os.environ.get("DIGEST_SHOTS_DIR"):
        shutil.copy(shot, Path(os.environ["DIGEST_SHOTS_DIR"]))
    return layout, shot


def _png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 700])
def test_the_digest_fits_a_phone_and_a_desktop_light_and_dark(
    email_html: str, tmp_path: Path, width: int, scheme: str
) -> None:
    layout, shot = layout_and_shot(FRAME, email_html, tmp_path, "digest", width, scheme)

    assert layout["clientWidth"] == width
    assert layout["scrollWidth"] <= width, f"the email is {layout['scrollWidth']} px wide in {width} px: see {shot}"
    colours = [layout[name] for name in ("container", "text", "link", "footer")]
    if scheme == "dark":
        assert colours == ["rgb(31, 41, 55)", "rgb(243, 244, 246)", "rgb(147, 197, 253)", "rgb(156, 163, 175)"]
    else:
        assert colours == ["rgb(255, 255, 255)", "rgb(31, 41, 55)", "rgb(0, 0, 238)", "rgb(107, 114, 128)"]
    # Both images loaded and scaled down to the column; alt text kept, or empty (decorative).
    column = digest.CONTENT_WIDTH if width > 620 else width - 2 * 16
    assert layout["images"] == [["A gradient photo", column, 1200], ["", column, 900]], layout["images"]
    assert _png_size(shot) == (width, layout["height"]), shot
    assert shot.stat().st_size > 20_000, f"no real screenshot at {shot}"
