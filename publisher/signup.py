"""Readers who sign themselves up: double opt-in for the local list (issue 14).

    sign-up form POST --> pending subscriber + consent (form) + confirmation notice queued
    confirmation link: GET shows one button --> POST --> active + consent (confirm) + welcome queued

The confirmation link carries the subscriber's random token, the link's expiry (Unix
seconds) and an HMAC-SHA256 of both under the list's secret ([digest] secret_env), with a
``confirm:`` prefix so that no unsubscribe signature ever confirms (nor the reverse). It is
checked in constant time before the store is touched. One address is mailed at most one
confirmation per [signup] window, whatever the number of sign-ups (publisher.store.signups
keeps that in the store, so a restart or a second server does not reset it). A GET never
confirms: mail scanners and link previews fetch every URL of a message, and a subscription
they could start would be no opt-in at all.

The form's own page carries a signed form token (an expiry and its HMAC, ``form:`` prefix):
a browser that sends neither Origin nor Referer still proves the form came from here.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from publisher import notices, subscribers
from publisher.config import Config, SignupConfig
from publisher.store import Store
from publisher.store.signups import ConfirmOutcome, SignUpOutcome, activity
from publisher.store.signups import confirm as confirm_in_store
from publisher.store.signups import sign_up as sign_up_in_store

__all__ = ["ConfirmOutcome", "SignUpOutcome", "activity", "confirm", "confirm_url", "sign_up"]

# The words of the confirmation page's button, recorded with each confirmation.
CONFIRM_TEXT = "Yes, subscribe me"


def settings(config: Config) -> SignupConfig:
    assert config.signup is not None, "config.load sets [signup]"
    return config.signup


def confirm_path_url(config: Config) -> str:
    """The confirmation page's public URL: the sign-up page's, plus ``/confirm``."""
    return settings(config).url.rstrip("/") + "/confirm"


def _mac(secret: bytes, purpose: bytes, *parts: str) -> str:
    message = purpose + b":" + ":".join(parts).encode("utf-8", "replace")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def confirm_url(config: Config, secret: bytes, token: str, now: datetime) -> str:
    """The signed confirmation link for the reader holding ``token``, valid for [signup] window."""
    expires = str(int((now + settings(config).window).timestamp()))
    query = urlencode({"s": token, "e": expires, "t": _mac(secret, b"confirm", token, expires)})
    return f"{confirm_path_url(config)}?{query}"


def check_confirm(secret: bytes, token: str, expires: str, sig: str, now: datetime) -> bool:
    """The link is ours (constant-time compare) and not expired."""
    good = hmac.compare_digest(_mac(secret, b"confirm", token, expires).encode(), sig.encode("utf-8", "replace"))
    return good and expires.isdigit() and now.timestamp() < int(expires)


def issued(config: Config, expires: str) -> datetime:
    """When a link with this expiry was sent (a link carries its expiry, the window is fixed)."""
    return datetime.fromtimestamp(int(expires), UTC) - settings(config).window


def form_token(secret: bytes, now: datetime, life: timedelta) -> str:
    expires = str(int((now + life).timestamp()))
    return f"{expires}.{_mac(secret, b'form', expires)}"


def check_form_token(secret: bytes, value: str, now: datetime) -> bool:
    expires, _, sig = value.partition(".")
    good = hmac.compare_digest(_mac(secret, b"form", expires).encode(), sig.encode("utf-8", "replace"))
    return good and expires.isdigit() and now.timestamp() < int(expires)


def sign_up(config: Config, store: Store, address: str, now: datetime, client: str | None) -> SignUpOutcome:
    """A sign-up for ``address`` (normalized): see the module docstring. ``client`` is kept
    with the consent only when [signup] record_client says so."""
    secret = subscribers.secret(config)
    chosen = settings(config)

    def render(token: str, when: datetime) -> tuple[str, bytes]:
        link = confirm_url(config, secret, token, when)
        unsubscribe = subscribers.unsubscribe_url(config.digest.unsubscribe_url, secret, token)
        return notices.render_confirm(config, address, link, unsubscribe, when)

    return sign_up_in_store(
        store,
        address,
        subscribers.key(address),
        now,
        chosen.window,
        render,
        chosen.consent_text,
        client if chosen.record_client else None,
    )


def confirm(
    config: Config, store: Store, token: str, expires: str, now: datetime, client: str | None
) -> ConfirmOutcome:
    """Confirm the reader holding ``token`` (the link checked already); a welcome is queued."""
    secret = subscribers.secret(config)
    chosen = settings(config)

    def render(held: str, when: datetime) -> tuple[str, bytes]:
        unsubscribe = subscribers.unsubscribe_url(config.digest.unsubscribe_url, secret, held)
        return notices.render_welcome(config, unsubscribe, when)

    text = f"{CONFIRM_TEXT} ({chosen.consent_text})"
    return confirm_in_store(
        store,
        token,
        issued(config, expires),
        now,
        render,
        text,
        client if chosen.record_client else None,
        welcome=chosen.welcome,
    )
