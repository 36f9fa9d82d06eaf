"""Digests of every kind the email tests look at: the default, many articles, a reader's own copy,
right-to-left articles, and tables. Each is made by the real ingest and the real renderer."""

from __future__ import annotations

from contextlib import closing
from datetime import timedelta

from publisher import digest
from publisher.delivery import Envelope, Recipient, personal
from tests.conftest import NOW, Project, ingest_folder
from tests.delivery_helpers import UNSUBSCRIBE_SECRET

KINDS = ("default", "many", "personal", "rtl", "tables")

ARABIC = """---
title: المجلس البلدي يوافق على حديقة جديدة
date: 2026-11-23
author: Ann Ode
lang: ar
---
وافق المجلس البلدي مساء الإثنين على خطة لإنشاء حديقة جديدة في وسط المدينة. وتبلغ مساحة الحديقة
12,304 متر مربع، وسيبدأ العمل فيها في الربيع المقبل.

قال رئيس المجلس إن الحديقة ستكون مفتوحة للجميع. ~~الخطة القديمة~~ الخطة الجديدة أفضل.

> كان التصويت متقاربًا.
"""

HEBREW_NO_LANG = """---
title: מועצת העיר אישרה פארק חדש
date: 2026-11-22
---
מועצת העיר אישרה ביום שני תוכנית להקמת פארק חדש במרכז העיר. העבודות יתחילו באביב.
"""

TABLES = """---
title: Turnout by district
date: 2026-11-23
author: Data Desk
---
Turnout rose in every district.

| District | Voters | Turnout | Change since the last election |
|:---------|-------:|:-------:|-------------------------------:|
| Northern Riverside | 12,304 | 61.2% | +3.4 |
| Southern Heights | 9,876 | 58.9% | +1.1 |
| Old Town | 4,021 | 72.5% | -0.6 |

![The map of the districts](https://news.example.org/map.png)
"""


def make(project: Project, kind: str) -> bytes:
    """The message of a digest of ``kind``, as a reader (or the list) receives it."""
    if kind == "many":
        for n in range(30):
            when = (NOW - timedelta(hours=n + 1)).strftime("%Y-%m-%d %H:%M")
            body = f"Story {n} tells of the council, the park and the budget. " * 12
            project.add_article(
                f"story{n:02}.md", f"---\ntitle: Story number {n} from the council\ndate: {when}\n---\n{body}\n"
            )
    if kind == "rtl":
        project.add_article("arabic.md", ARABIC)
        project.add_article("hebrew.md", HEBREW_NO_LANG)
    if kind == "tables":
        project.add_article("tables.md", TABLES)
    if kind == "personal":
        project.configure(digest={"recipients": "subscribers"})
    config = project.config()
    with closing(project.open_store()) as store:
        ingest_folder(project, store)
        articles = digest.next_articles(config, store, NOW)
        rendered = digest.render(config, articles, digest_id="20261124-063000-0a1b2c3d", now=NOW)
        if kind != "personal":
            return rendered.message
        outgoing = digest.preview(config, store, NOW, sample_link=False)
    assert outgoing is not None
    from publisher.subscribers import Links

    link = Links(config.digest.unsubscribe_url, UNSUBSCRIBE_SECRET.encode()).url("AbCdEfGhIjKlMnOpQrStUvWx")
    envelope = Envelope(digest=outgoing, key=f"{outgoing.id}-0001", recipients=())
    return personal.message(envelope, Recipient("ada@example.org", link))
