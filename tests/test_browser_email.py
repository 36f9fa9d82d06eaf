"""Right-to-left and table digests in headless Chromium, as a phone (375 px) and a desktop mail
client (700 px) show them, light and dark: nothing wider than the window, each article laid out
in its own direction, table cells whole. Screenshots are kept in the test's tmp folder, and
copied to DIGEST_SHOTS_DIR when it is set (the README's pictures come from there).
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Project
from tests.email_kinds import make
from tests.test_browser import _png_size, layout_and_shot

# The email in an iframe exactly as wide as the window; the script reports its layout.
FRAME = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><style>body {{ margin: 0 }} iframe {{ border: 0; display: block }}</style></head>
<body><iframe id="mail" style="width: {width}px; height: {height}px" srcdoc="{email}"></iframe>
<script>
document.getElementById("mail").addEventListener("load", function () {{
  var mail = this.contentDocument, root = mail.documentElement;
  var articles = Array.prototype.map.call(mail.querySelectorAll(".article[dir]"), function (cell) {{
    var p = cell.querySelector(".body p"), box = cell.getBoundingClientRect();
    return {{
      title: cell.querySelector(".title").textContent,
      direction: getComputedStyle(cell).direction,
      align: p ? getComputedStyle(p).textAlign : null,
      // An RTL paragraph's text hugs the right edge: its last line's right end is the cell's.
      right: p ? Math.round(box.right - p.getBoundingClientRect().right) : null
    }};
  }});
  var cells = Array.prototype.map.call(mail.querySelectorAll(".table-box td, .table-box th"), function (cell) {{
    var range = mail.createRange(); range.selectNodeContents(cell);
    return {{ text: cell.textContent, lines: range.getClientRects().length, align: getComputedStyle(cell).textAlign }};
  }});
  var boxes = Array.prototype.map.call(mail.querySelectorAll(".table-box"), function (box) {{
    return [box.scrollWidth, box.clientWidth];
  }});
  document.title = JSON.stringify({{
    scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, height: root.scrollHeight,
    articles: articles, cells: cells, boxes: boxes
  }});
}});
</script></body></html>
"""


def _html(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def _layout_and_shot(
    email_html: str, tmp_path: Path, name: str, width: int, scheme: str
) -> tuple[dict[str, Any], Path]:
    layout, shot = layout_and_shot(FRAME, email_html, tmp_path, name, width, scheme)
    assert _png_size(shot) == (width, layout["height"]), shot
    assert shot.stat().st_size > 10_000, f"no real screenshot at {shot}"
    return layout, shot


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 700])
def test_an_rtl_digest_is_laid_out_right_to_left(project: Project, tmp_path: Path, width: int, scheme: str) -> None:
    layout, shot = _layout_and_shot(_html(make(project, "rtl")), tmp_path, "digest-rtl", width, scheme)

    assert layout["scrollWidth"] <= layout["clientWidth"] == width, f"wider than {width} px: see {shot}"
    by_title = {a["title"]: a for a in layout["articles"]}
    arabic = by_title["المجلس البلدي يوافق على حديقة جديدة"]
    hebrew = by_title["מועצת העיר אישרה פארק חדש"]
    english = next(a for title, a in by_title.items() if title.startswith("Kremlin"))
    assert (arabic["direction"], hebrew["direction"], english["direction"]) == ("rtl", "rtl", "ltr"), shot
    assert arabic["align"] in ("right", "start") and english["align"] in ("left", "start")
    assert arabic["right"] <= 40, f"the Arabic text does not start at the right: see {shot}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 700])
def test_a_table_digest_keeps_its_cells_whole(project: Project, tmp_path: Path, width: int, scheme: str) -> None:
    layout, shot = _layout_and_shot(_html(make(project, "tables")), tmp_path, "digest-table", width, scheme)

    assert layout["scrollWidth"] <= layout["clientWidth"] == width, f"wider than {width} px: see {shot}"
    cells = {c["text"]: c for c in layout["cells"]}
    for number in ("12,304", "9,876", "61.2%", "+3.4"):
        assert cells[number]["lines"] == 1, f"{number} broken over lines at {width} px: see {shot}"
    for word in ("District", "Voters", "Turnout"):
        assert cells[word]["lines"] == 1, f"{word} broken at {width} px: see {shot}"
    assert cells["12,304"]["align"] == "right" and cells["61.2%"]["align"] == "center"
    assert layout["boxes"], "the table is not in its scrolling box"
