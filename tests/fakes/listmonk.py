"""A fake of listmonk's campaigns API, as a handler for the ``endpoint`` fixture.

It answers what listmonk's API documents, with listmonk's shapes (``{"data": ...}`` on
success, ``{"message": ...}`` with a 4xx/5xx on failure):

- every request needs ``Authorization: token USER:KEY`` (or Basic USER:KEY);
- ``GET /api/campaigns?query=`` searches names and subjects (case-insensitive, as listmonk's
  ILIKE fallback does), newest first, ``per_page`` a number or ``all``;
- ``POST /api/campaigns`` checks the fields listmonk validates (name, subject, lists, type,
  content_type, messenger, from_email, and that the body's ``{{ ... }}`` tags are template
  functions listmonk knows) and creates a draft;
- ``PUT /api/campaigns/{id}/status`` follows listmonk's transitions (only a draft or paused
  campaign can start);
- ``POST /api/campaigns/{id}/test`` takes the campaign fields plus ``subscribers`` and mails
  only those who are listmonk subscribers.

A started campaign counts as delivered to the list; ``fail()`` scripts one error answer for
the next request matching a method and path suffix.
"""

from __future__ import annotations

import base64
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.endpoint import Answer, Request

# Template functions listmonk gives a campaign body (a subset; enough to tell a wrong tag).
FUNCTIONS = ("UnsubscribeURL", "ManageURL", "OptinURL", "MessageURL", "TrackView", "TrackLink", "Date", "L")
_TAG = re.compile(r"{{(.*?)}}", re.S)
_CAMPAIGN = re.compile(r"^/api/campaigns/(\d+)(/status|/test)?$")
_FROM = re.compile(r"^((.+?)\s)?<(.+?)@(.+?)>$|^[^@\s<>]+@[^@\s<>]+$")
TRANSITIONS = {"running": ("draft", "paused", "scheduled"), "paused": ("running",), "cancelled": ("running", "paused")}


@dataclass
class FakeListmonk:
    user: str
    key: str
    lists: dict[int, str] = field(default_factory=lambda: {1: "Default list"})
    subscribers: set[str] = field(default_factory=set)  # lower-cased addresses
    campaigns: dict[int, dict[str, Any]] = field(default_factory=dict)
    tests: list[tuple[int, list[str], dict[str, Any]]] = field(default_factory=list)  # id, mailed to, as sent
    failures: deque[tuple[str, str, int, str]] = field(default_factory=deque)

    def fail(self, method: str, suffix: str, status: int, message: str) -> None:
        """Answer the next ``method`` request whose path ends with ``suffix`` with this error."""
        self.failures.append((method, suffix, status, message))

    def started(self) -> list[dict[str, Any]]:
        return [c for c in self.campaigns.values() if c["status"] != "draft"]

    def handle(self, request: Request) -> Answer:
        if not self._authorized(request.headers.get("authorization", "")):
            return _error(403, "Invalid API credentials")
        for i, (method, suffix, status, message) in enumerate(self.failures):
            if method == request.method and request.route.endswith(suffix):
                del self.failures[i]
                return _error(status, message)
        route = request.route
        if route == "/api/campaigns" and request.method == "GET":
            return self._query(request)
        if route == "/api/campaigns" and request.method == "POST":
            return self._create(_json(request))
        found = _CAMPAIGN.match(route)
        if found is None:
            return _error(404, "Not found")
        campaign = self.campaigns.get(int(found[1]))
        if campaign is None:
            return _error(404, "Campaign not found.")
        if found[2] == "/status" and request.method == "PUT":
            return self._status(campaign, _json(request))
        if found[2] == "/test" and request.method == "POST":
            return self._test(campaign, _json(request))
        if found[2] is None and request.method == "GET":
            return 200, {"data": campaign}, {}
        return _error(405, "Method not allowed")

    def _authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                value = base64.b64decode(value).decode()
            except ValueError:
                return False
        elif scheme.lower() != "token":
            return False
        return value == f"{self.user}:{self.key}"

    def _query(self, request: Request) -> Answer:
        params = parse_qs(urlsplit(request.path).query)
        text = params.get("query", [""])[0].strip().lower()
        per_page = params.get("per_page", ["20"])[0]
        found = [c for c in self.campaigns.values() if text in f"{c['name']} {c['subject']}".lower()]
        found.sort(key=lambda c: c["id"], reverse=True)
        shown = found if per_page == "all" else found[: int(per_page)]
        if params.get("no_body", ["false"])[0] == "true":
            shown = [c | {"body": ""} for c in shown]
        page = {"results": shown, "query": text, "total": len(found), "per_page": per_page, "page": 1}
        return 200, {"data": page}, {}

    def _validate(self, body: Any) -> str | None:
        """listmonk's validateCampaignFields, in its words."""
        if not isinstance(body, dict):
            return "Invalid JSON in request"
        if body.get("from_email") and not _FROM.match(str(body["from_email"])):
            return "Invalid `from_email`."
        if not 1 <= len(str(body.get("name") or "")) <= 2000:
            return "Invalid length for name."
        if not 1 <= len(str(body.get("subject") or "")) <= 5000:
            return "Invalid length for subject."
        lists = body.get("lists") or []
        if not lists or not all(isinstance(i, int) for i in lists):
            return "Invalid list IDs."
        if body.get("messenger", "email") != "email":
            return f"Unknown messenger {body.get('messenger')}"
        if body.get("type", "regular") not in ("regular", "optin"):
            return "Invalid campaign type."
        if body.get("content_type", "richtext") not in ("richtext", "html", "markdown", "plain", "visual"):
            return "Invalid content type."
        for part in ("body", "altbody"):
            for tag in _TAG.findall(str(body.get(part) or "")):
                name = tag.strip().split(" ")[0].lstrip(".")
                if name not in FUNCTIONS and not tag.strip().startswith(".Subscriber"):
                    return f'Error compiling template: template: content:1: function "{name}" not defined'
        return None

    def _create(self, body: Any) -> Answer:
        problem = self._validate(body)
        if problem:
            return _error(400, problem)
        number = len(self.campaigns) + 1
        self.campaigns[number] = {
            "id": number,
            "uuid": f"00000000-0000-4000-8000-{number:012d}",
            "name": body["name"],
            "subject": body["subject"],
            "from_email": body.get("from_email", "listmonk <noreply@listmonk.yoursite.com>"),
            "lists": [{"id": i, "name": self.lists.get(i, "")} for i in body["lists"] if i in self.lists],
            "type": body.get("type", "regular"),
            "content_type": body.get("content_type", "richtext"),
            "messenger": body.get("messenger", "email"),
            "body": body.get("body", ""),
            "altbody": body.get("altbody"),
            "headers": body.get("headers") or [],
            "status": "draft",
            "to_send": 0,
            "sent": 0,
        }
        return 200, {"data": self.campaigns[number]}, {}

    def _status(self, campaign: dict[str, Any], body: Any) -> Answer:
        status = body.get("status") if isinstance(body, dict) else None
        allowed = TRANSITIONS.get(str(status))
        if allowed is None:
            return _error(400, "Invalid status.")
        if campaign["status"] not in allowed:
            return _error(400, f"Cannot change a {campaign['status']} campaign to {status}.")
        campaign["status"] = status
        return 200, {"data": campaign}, {}

    def _test(self, campaign: dict[str, Any], body: Any) -> Answer:
        problem = self._validate(body)
        if problem:
            return _error(400, problem)
        wanted = [str(a).strip().lower() for a in body.get("subscribers") or []]
        if not wanted:
            return _error(400, "No subscribers to send test.")
        known = [a for a in wanted if a in self.subscribers]
        if not known:
            return _error(400, "Subscriber not found.")
        self.tests.append((campaign["id"], known, body))
        return 200, {"data": True}, {}


def _json(request: Request) -> Any:
    try:
        return request.json()
    except ValueError:
        return None


def _error(status: int, message: str) -> Answer:
    return status, {"message": message}, {}
