"""The emails to one reader alone: a sign-up's confirmation and the welcome after it.

Each is rendered once, from its own templates (``confirm.*.j2``, ``welcome.*.j2``: [digest]
templates_dir first, then the bundled ones), frozen as RFC 5322 bytes with the reader's own
links in it, and written to the ``notices`` table in the transaction that called for it
(publisher.store.signups). :func:`send_due` then sends each through the configured mailer as a
digest's batch is sent (publisher.dispatch): claimed first, marked after, with the notice's key
as the idempotency key; a passing failure leaves it pending for the next try, a request that
may have arrived is held in doubt unless the provider dedupes on the key. :class:`Sender` is
the thread `publisher serve` kicks after each sign-up; ``publisher run`` and the daemon retry
what it left.
"""

from __future__ import annotations

import email
import email.policy
import logging
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any
from urllib.parse import urlsplit

import jinja2

from publisher import clock
from publisher.config import Config
from publisher.delivery import Envelope, Mailer, Recipient, build_mailer
from publisher.errors import ConfigError, DeliveryError, PublisherError, RenderError
from publisher.message import POLICY, Outgoing, header_text, preferences_link
from publisher.states import BatchState
from publisher.store import Store
from publisher.store import notices as table
from publisher.store.notices import Notice, NoticeKind

log = logging.getLogger("publisher.delivery")


# -- rendering ----------------------------------------------------------------------------------


def _environment(config: Config, *, html: bool) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if config.digest.templates_dir is not None:
        loaders.append(jinja2.FileSystemLoader(config.digest.templates_dir))
    loaders.append(jinja2.PackageLoader("publisher.templates", "."))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(config: Config, kind: NoticeKind, context: dict[str, Any]) -> tuple[str, str]:
    parts = []
    for html, suffix in ((True, "html"), (False, "txt")):
        name = f"{kind}.{suffix}.j2"
        try:
            parts.append(_environment(config, html=html).get_template(name).render(context))
        except jinja2.TemplateError as exc:
            raise RenderError(f"{name}: {exc}") from exc
    return parts[0], parts[1]


def check_templates(config: Config) -> None:
    """Compile the four templates, rendering nothing: a broken one in [digest] templates_dir is a
    ConfigError when `publisher serve` or `run` starts, not a sign-up lost later."""
    for kind in NoticeKind:
        for html, suffix in ((True, "html"), (False, "txt")):
            name = f"{kind}.{suffix}.j2"
            try:
                _environment(config, html=html).get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                where = f"{config.path.name}: [digest] templates_dir"
                raise ConfigError(where, f"{exc.filename or name}:{exc.lineno}: {exc.message}") from None
            except jinja2.TemplateError as exc:
                raise ConfigError(f"{config.path.name}: [digest] templates_dir", f"{name}: {exc}") from None


def render_confirm(config: Config, address: str, link: str, unsubscribe: str, now: datetime) -> tuple[str, bytes]:
    """The confirmation email: (its key, its bytes)."""
    subject = f"Confirm your subscription to {config.site.title}"
    return _message(config, NoticeKind.CONFIRM, subject, now, unsubscribe, {"confirm_url": link, "address": address})


def render_welcome(config: Config, unsubscribe: str, now: datetime) -> tuple[str, bytes]:
    """The welcome email once confirmed: (its key, its bytes). With [digest] preferences_url,
    it links to the reader's own preferences page, as every digest's footer does."""
    chosen = config.digest.preferences_url
    extra = {"preferences_url": preferences_link(chosen, unsubscribe) if chosen else ""}
    return _message(config, NoticeKind.WELCOME, f"Welcome to {config.site.title}", now, unsubscribe, extra)


def _message(
    config: Config, kind: NoticeKind, subject: str, now: datetime, unsubscribe: str, extra: dict[str, Any]
) -> tuple[str, bytes]:
    key = f"{kind}-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"
    context = {
        "site": {"title": config.site.title, "url": config.site.url, "language": config.site.language},
        "subject": subject,
        "unsubscribe_url": unsubscribe,
        "postal_address": config.digest.postal_address,
        **extra,
    }
    html, text = _render(config, kind, context)
    sender_domain = parseaddr(config.digest.sender)[1].rpartition("@")[2]
    host = urlsplit(config.site.url).hostname or sender_domain
    message = EmailMessage(policy=POLICY)
    message["Subject"] = header_text(subject)
    message["From"] = config.digest.sender
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<{key}@{sender_domain}>"
    message["List-Id"] = f"{header_text(config.site.title)} <digest.{host}>"
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    if kind == NoticeKind.WELCOME:  # a confirmed reader's own link: one click unsubscribes (RFC 8058)
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return key, message.as_bytes()


def outgoing(notice: Notice) -> Outgoing:
    """A stored notice as the providers take a digest."""
    message = email.message_from_bytes(notice.message, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    names = ("Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id")
    return Outgoing(
        id=notice.key,
        subject=str(message["Subject"]),
        sender=str(message["From"]),
        to=(notice.email,),
        html=html_part.get_content(),
        text=text_part.get_content(),
        headers={name: str(message[name]) for name in names if message[name] is not None},
        message=notice.message,
        articles=[],
    )


# -- sending ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    key: str
    state: str
    detail: str


def send_due(config: Config, store: Store, mailer: Mailer) -> list[Sent]:
    """Send every notice still to send, oldest first; stop at the first passing failure. One
    to an address suppressed since it was queued is failed instead, unsent."""
    done: list[Sent] = []
    table.drop_suppressed(store, clock.now())  # suppressed after it was queued: never sent
    lease = timedelta(
        seconds=config.mailer.timeout * (config.mailer.retries + 1) + config.mailer.max_retry_seconds + 60
    )
    for notice in table.unfinished(store):
        now = clock.now()
        if notice.state == BatchState.SENDING:
            if now < notice.updated_at + lease:
                continue  # another sender has it in flight
            if not mailer.idempotent:
                reason = f"interrupted while sending; {mailer.name} may have accepted it"
                table.mark(store, notice.id, BatchState.IN_DOUBT, now, error=reason)
                done.append(_logged(notice, BatchState.IN_DOUBT, reason))
                continue
        if not table.claim(store, notice, now):
            continue  # another sender claimed it first
        message = outgoing(notice)
        link = message.headers["List-Unsubscribe"].strip("<>")
        envelope = Envelope(digest=message, key=notice.key, recipients=(Recipient(notice.email, link),))
        try:
            receipt = mailer.send(envelope)
        except DeliveryError as exc:
            state = _after_failure(config, mailer, exc, notice.attempts + 1)
            table.mark(store, notice.id, state, clock.now(), error=str(exc))
            done.append(_logged(notice, state, str(exc)))
            if state == BatchState.PENDING:
                break  # the provider is struggling: the next try continues
            continue
        table.mark(store, notice.id, BatchState.ACCEPTED, clock.now(), provider_id=receipt.provider_id)
        done.append(_logged(notice, BatchState.ACCEPTED, receipt.detail))
    return done


def _after_failure(config: Config, mailer: Mailer, exc: DeliveryError, attempts: int) -> BatchState:
    if exc.maybe_delivered and not mailer.idempotent:
        return BatchState.IN_DOUBT
    if not exc.retryable or attempts >= config.mailer.max_attempts:
        return BatchState.FAILED
    return BatchState.PENDING


def _logged(notice: Notice, state: str, detail: str) -> Sent:
    log.info("notice %s: %s: %s", notice.key, state, detail, extra={"batch_key": notice.key, "batch_state": state})
    return Sent(notice.key, state, detail)


class Sender:
    """A thread that sends the notices due whenever :meth:`kick` is called (``publisher serve``).

    It also runs the jobs handed to :meth:`submit` first: the server hands it each sign-up's
    store work, so that its answer takes as long whatever the address is (new, pending,
    subscribed), leaking none of that by its timing. The mailer is built on each round, so a
    missing API key is one logged line and the notice waits for ``publisher run``; the server
    never fails to start for it.
    """

    MAX_JOBS = 10_000  # waiting sign-ups; past that the server answers 503 (it is overrun)

    def __init__(self, config: Config, store: Store) -> None:
        self.config, self.store = config, store
        self._jobs: deque[Callable[[], object]] = deque()
        self._changed = threading.Condition()
        self._wanted = 0  # kicks so far
        self._done = 0  # the kicks the last finished round covered
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="publisher-notices", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        with self._changed:
            self._wanted += 1
            self._changed.notify_all()

    def submit(self, job: Callable[[], object]) -> bool:
        """Run ``job`` in the thread, then send what is due; False when too many wait already."""
        with self._changed:
            if len(self._jobs) >= self.MAX_JOBS:
                return False
            self._jobs.append(job)
            self._wanted += 1
            self._changed.notify_all()
            return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every kick so far has been served (tests, and a clean stop)."""
        with self._changed:
            target = self._wanted
            return self._changed.wait_for(lambda: self._done >= target or self._stopping, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._wanted > self._done or self._stopping)
                stopping, target = self._stopping, self._wanted
                jobs, self._jobs = list(self._jobs), deque()
            self._run_jobs(jobs)
            if stopping:  # the sign-ups taken are recorded; their emails wait for `publisher run`
                return
            try:
                mailer = build_mailer(self.config)
                try:
                    send_due(self.config, self.store, mailer)
                finally:
                    mailer.close()
            except PublisherError as exc:
                log.error("notices: not sent now, `publisher run` retries them: %s", exc)
            except Exception:  # a bug must not end the thread: the next kick tries again
                log.exception("notices: unexpected error")
            with self._changed:
                self._done = target
                self._changed.notify_all()

    @staticmethod
    def _run_jobs(jobs: list[Callable[[], object]]) -> None:
        for job in jobs:
            try:
                job()
            except PublisherError as exc:
                log.error("sign-up: not recorded: %s", exc)
            except Exception:
                log.exception("sign-up: unexpected error")
