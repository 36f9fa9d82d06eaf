"""The preferences page of ``publisher serve``, at the path of [digest] preferences_url.

Each digest's footer links to it with the reader's own ``?s=TOKEN&t=SIG``: the same token and
HMAC as their unsubscribe link (publisher.subscribers), checked in constant time before the
store is touched.

    GET, HEAD   the reader's choice (everything, or some topics: the tags of the site's
                articles) in a form; it changes nothing, since mail scanners fetch every link
    POST        action=save (mode=all, or mode=some with topic=...) or action=unsubscribe

Every request first takes a token from the client's bucket (publisher.ratelimit): past the
limit the answer is 429 whatever the link. A missing, forged or unknown token is the same 400
page. A POST from another origin (its Origin header names another host) is refused; the body
is read up to :data:`MAX_BODY` bytes. Pages set no cookie, are not cached, send no Referer, and
allow no script (the unsubscribe page's headers).
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from publisher import clock, pages, preferences, subscribers
from publisher.config import Config
from publisher.errors import StoreError
from publisher.ratelimit import Limiter
from publisher.server import _mask, _one
from publisher.states import SubscriberState
from publisher.store import Store

MAX_BODY = 16_384  # a form with every topic ticked is far smaller
PER_MINUTE, BURST = 20.0, 10  # requests of one client: a reader clicking about never meets it

logger = logging.getLogger(__name__)

HEADERS = pages.headers("preferences.html.j2")


class PreferencesPage:
    """The page (see the module docstring); ``limiter`` is per client address."""

    def __init__(self, config: Config, store: Store, limiter: Limiter | None = None) -> None:
        self.store = store
        self.secret = subscribers.secret(config)
        self.site = config.site.title
        self.language = config.site.language
        self.limiter = limiter or Limiter(PER_MINUTE, BURST)
        self.public_host = urlsplit(config.digest.preferences_url).netloc.lower()  # behind a proxy
        self.config = config
        # Several digests to the local list: the page offers each; topics are the first one's.
        self.several = len(preferences.local_digests(config)) > 1

    async def endpoint(self, request: Request) -> Response:
        if not self.limiter.allow(request.client.host if request.client else "-"):
            return self._page(429, "busy")
        token, sig = _one(request, "s"), _one(request, "t")
        if token is None or sig is None or not subscribers.check(self.secret, token, sig):
            return self._page(400, "invalid")
        if request.method == "POST" and not _same_origin(request, self.public_host):
            return self._page(400, "invalid")
        form: dict[str, list[str]] = {}
        if request.method == "POST":
            body = await pages.body(request, MAX_BODY)
            if body is None:
                return self._page(413, "invalid")
            try:
                form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=preferences.MAX_TOPICS + 10)
            except ValueError:  # more fields than any form of this page has
                return self._page(413, "invalid")
        try:
            return await run_in_threadpool(self._answer, request.method, token, sig, form)
        except StoreError as exc:
            logger.error("preferences: %s", exc)
            return self._page(503, "unavailable")

    def _answer(self, method: str, token: str, sig: str, form: dict[str, list[str]]) -> Response:
        person = subscribers.by_token(self.store, token)
        if person is None:  # signed by us, but no longer on the list
            return self._page(400, "invalid")
        state = "choose"
        if method == "POST" and form.get("action") == ["unsubscribe"]:
            subscribers.unsubscribe_token(self.store, token, clock.now())
            return self._page(200, "unsubscribed", address=_mask(person.email))
        if person.state == SubscriberState.UNSUBSCRIBED:
            return self._page(200, "unsubscribed", address=_mask(person.email))
        known = preferences.known_topics(self.store)
        if method == "POST" and form.get("action") == ["save"]:
            wanted = None if form.get("mode") != ["some"] else [t for t in form.get("topic", []) if t in known]
            if wanted is not None and len(set(wanted)) > preferences.MAX_TOPICS:
                return self._page(413, "invalid")
            if wanted == []:
                state = "empty"
            else:
                preferences.choose(self.store, token, wanted, clock.now(), self.config.digest.name)
                state = "saved"
            if self.several and state == "saved":
                wanted_digests = set(form.get("digests", []))
                preferences.keep_digests(self.store, token, person.id, self.config, wanted_digests, clock.now())
        chosen = preferences.choice_of(self.store, person.id, self.config.digest.name)
        digests = [
            (d.name, preferences.receives(preferences.choice_of(self.store, person.id, d.name), d.default))
            for d in preferences.local_digests(self.config)
        ]
        topics = [(key, shown, chosen is not None and key in chosen) for key, shown in known.items()]
        action = "?" + urlencode({"s": token, "t": sig})  # the form posts back to this very URL
        return self._page(
            400 if state == "empty" else 200,
            state,
            address=_mask(person.email),
            action=action,
            topics=topics,
            everything=chosen is None or chosen == () or preferences.EVERYTHING in chosen,
            digests=digests if self.several else [],
        )

    def _page(self, status: int, state: str, **values: object) -> Response:
        context: dict[str, object] = {"address": "", "action": "", "topics": [], "everything": True, "digests": []}
        html = pages.TEMPLATES.get_template("preferences.html.j2").render(
            context | values, state=state, site=self.site, language=self.language, digest=self.config.digest.name
        )
        return HTMLResponse(html, status_code=status, headers=HEADERS)


def _same_origin(request: Request, public_host: str) -> bool:
    """No Origin header (an old client, a mail client's POST), or one naming this host: the
    one asked, or the public one of [digest] preferences_url (a proxy may rename it)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() in (request.headers.get("host", "").lower(), public_host)
