"""The sign-up pages of ``publisher serve`` (a local list): see publisher.signup for the flow.

    [signup] url           GET: the form. POST: a sign-up, answered alike whatever the address
    [signup] url/confirm   GET: one button (changes nothing). POST: confirms, if the link is good

The POST of a sign-up goes through, in order: the client's rate limit (429, the one answer
that depends on the client, never on the address), the body's size (413 past
:data:`MAX_BODY` bytes, read no further), its type and shape (400: urlencoded UTF-8 with one
``email``), where it comes from (403 unless Origin, else Referer, names an allowed origin, or
the form carries this server's signed form token), the honeypot (a bot that fills the hidden
``website`` field is told "check your inbox" and nothing happens), the address's own rate
limit and the store's once-per-window rule (both silent: the same "check your inbox"). The
store work and the confirmation email are left to a background thread
(publisher.notices.Sender), so the answer takes as long whatever is behind the address.

The pages set no cookie, are not cached, send no Referer, and allow no script or frame.
"""

from __future__ import annotations

import ipaddress
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from publisher import clock, notices, pages, signup, subscribers
from publisher.config import Config
from publisher.errors import StoreError
from publisher.notices import Sender
from publisher.ratelimit import Limiter
from publisher.store import Store

logger = logging.getLogger(__name__)

MAX_BODY = 4096  # bytes: an address (320 at most), the honeypot and the form token fit many times
# Sign-up POSTs from one client (an IPv4 address, an IPv6 /64): a household or an office signs
# up a few readers, a script hundreds.
CLIENT_BURST, CLIENT_PER_MINUTE = 10, 0.5
# Sign-ups for one address, whatever the client: past these, answered alike and dropped before
# the store is asked (which in any case mails one confirmation per [signup] window).
ADDRESS_BURST, ADDRESS_PER_MINUTE = 3, 1 / 60
# Confirmation and unsubscribe pages from one client: a reader needs two requests.
PAGE_BURST, PAGE_PER_MINUTE = 20, 10.0
HONEYPOT = "website"

HEADERS = pages.headers("signup.html.j2")


def client_key(request: Request, header: str = "") -> str:
    """Who the client is, for the rate limits: the peer (or the trusted proxy's header), an
    IPv6 address by its /64 (one host commonly holds the whole /64)."""
    raw = request.headers.get(header, "").split(",")[-1].strip() if header else ""
    if not raw:
        raw = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw or "-"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address.ipv4_mapped or address) if isinstance(address, ipaddress.IPv6Address) else str(address)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class SignUpPages:
    """The endpoints; ``store`` and ``sender`` are the server's."""

    def __init__(self, config: Config, store: Store, sender: Sender) -> None:
        self.config, self.store, self.sender = config, store, sender
        self.settings = signup.settings(config)
        self.secret = subscribers.secret(config)
        notices.check_templates(config)
        self.origins = frozenset({_origin(self.settings.url), _origin(config.site.url), *self.settings.origins})
        self.clients = Limiter(CLIENT_PER_MINUTE, CLIENT_BURST)
        self.addresses = Limiter(ADDRESS_PER_MINUTE, ADDRESS_BURST)
        self.pages = Limiter(PAGE_PER_MINUTE, PAGE_BURST)
        self.form_path = urlsplit(self.settings.url).path or "/"
        self.confirm_path = urlsplit(signup.confirm_path_url(config)).path

    # -- the form -------------------------------------------------------------------------------

    async def subscribe(self, request: Request) -> Response:
        client = client_key(request, self.settings.client_header)
        if request.method != "POST":
            if not self.pages.allow(client):
                return self._page(429, "busy")
            token = signup.form_token(self.secret, clock.now(), self.settings.window)
            return self._page(200, "form", action="", form_token=token)
        if not self.clients.allow(client):
            return self._page(429, "busy", headers={"Retry-After": str(round(60 / CLIENT_PER_MINUTE))})
        body = await pages.body(request, MAX_BODY)
        if body is None:
            return self._page(413, "too_large")
        fields = _form(request, body)
        if fields is None or len(fields.get("email", [])) != 1:
            return self._page(400, "bad")
        if not self._same_site(request, fields):
            return self._page(403, "forbidden")
        try:
            address = subscribers.normalize(fields["email"][0])
        except subscribers.BadAddress:
            return self._page(400, "bad")
        if any(value.strip() for value in fields.get(HONEYPOT, [])):
            return self._sent()  # a bot: told what a reader is told, and nothing happens
        if not self.addresses.allow(subscribers.key(address)):
            return self._sent()
        now = clock.now()
        if not self.sender.submit(lambda: signup.sign_up(self.config, self.store, address, now, client)):
            return self._page(503, "unavailable")
        return self._sent()

    def _same_site(self, request: Request, fields: dict[str, list[str]]) -> bool:
        """Against cross-site request forgery: the browser's Origin, else its Referer, names
        an allowed origin; or, with neither, the form carries our signed form token."""
        origin = request.headers.get("origin")
        if origin and origin != "null":
            return origin.rstrip("/").lower() in self.origins
        referer = request.headers.get("referer")
        if referer:
            return _origin(referer) in self.origins
        tokens = fields.get("form_token", [])
        return len(tokens) == 1 and signup.check_form_token(self.secret, tokens[0], clock.now())

    def _sent(self) -> Response:
        return self._page(200, "sent")

    # -- the confirmation -----------------------------------------------------------------------

    async def confirm(self, request: Request) -> Response:
        if not self.pages.allow(client_key(request, self.settings.client_header)):
            return self._page(429, "busy")
        token, expires, sig = _one(request, "s"), _one(request, "e"), _one(request, "t")
        now = clock.now()
        if (
            token is None
            or expires is None
            or sig is None
            or not signup.check_confirm(self.secret, token, expires, sig, now)
        ):
            return self._page(400, "invalid")
        if request.method != "POST":  # mail scanners fetch every link: a GET only shows the button
            action = "?" + urlencode({"s": token, "e": expires, "t": sig})
            return self._page(200, "confirm", action=action)
        client = client_key(request, self.settings.client_header)
        try:
            outcome = await run_in_threadpool(signup.confirm, self.config, self.store, token, expires, now, client)
        except StoreError as exc:
            logger.error("confirm: %s", exc)
            return self._page(503, "unavailable")
        if outcome == signup.ConfirmOutcome.CONFIRMED:
            self.sender.kick()
            return self._page(200, "confirmed")
        if outcome == signup.ConfirmOutcome.ALREADY:
            return self._page(200, "already")
        return self._page(400, "invalid")

    def _page(self, status: int, state: str, *, headers: dict[str, str] | None = None, **context: Any) -> Response:
        html = pages.TEMPLATES.get_template("signup.html.j2").render(
            state=state,
            site=self.config.site.title,
            language=self.config.site.language,
            consent_text=self.settings.consent_text,
            confirm_text=signup.CONFIRM_TEXT,
            window=_duration(self.settings.window),
            action=context.pop("action", ""),
            form_token=context.pop("form_token", ""),
        )
        return HTMLResponse(html, status_code=status, headers={**HEADERS, **(headers or {})})


def _form(request: Request, body: bytes) -> dict[str, list[str]] | None:
    """The urlencoded fields, or None for anything else (another type, not UTF-8, malformed)."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return None
    try:
        text = body.decode("utf-8")
        return parse_qs(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=8, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None


def _one(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    return values[0] if len(values) == 1 else None


def _duration(window: timedelta) -> str:
    hours = int(window.total_seconds() // 3600)
    if hours >= 48 and hours % 24 == 0:
        return f"{hours // 24} days"
    if hours >= 1:
        return f"{hours} hours" if hours > 1 else "1 hour"
    return f"{int(window.total_seconds() // 60)} minutes"
