"""Hand a digest to the mailing endpoint: outbox folder, a JSON webhook, or Mailgun.

Each mailer's ``send`` returns a :class:`Receipt` once the endpoint accepted the digest, or
raises :class:`DeliveryError`; nothing here touches the store. httpx errors become
DeliveryError in :func:`_post` only, and the API key never appears in an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from publisher import http
from publisher.config import Config, MailerConfig
from publisher.digest import Outgoing
from publisher.errors import ConfigError, DeliveryError
from publisher.files import write_atomic


@dataclass(frozen=True)
class Receipt:
    provider_id: str | None
    detail: str


class Mailer(Protocol):
    name: str
    # True when sending the same digest twice cannot deliver it twice (the endpoint
    # dedupes on the digest id), so a send interrupted by a crash may simply be repeated.
    idempotent: bool

    def send(self, digest: Outgoing) -> Receipt: ...


def build_mailer(config: Config) -> Mailer:
    """The configured mailer; raises ConfigError when its secret is missing."""
    mailer = config.mailer
    if mailer.provider == "outbox":
        return OutboxMailer(mailer)
    key = mailer.api_key()
    if mailer.provider == "mailgun":
        if not key:
            raise ConfigError(
                f"{config.path.name}: [mailer] api_key_env",
                f"environment variable {mailer.api_key_env} is not set (Mailgun needs an API key)",
            )
        return MailgunMailer(mailer, key)
    return WebhookMailer(mailer, key)


class OutboxMailer:
    name = "outbox"
    idempotent = True  # the file is named by the digest id: a second write replaces it

    def __init__(self, config: MailerConfig) -> None:
        self.dir = config.outbox_dir

    def send(self, digest: Outgoing) -> Receipt:
        path = self.dir / f"{digest.id}.eml"
        try:
            write_atomic(path, digest.message)
        except OSError as exc:
            raise DeliveryError(f"outbox: cannot write {path}: {exc.strerror or exc}", retryable=False) from exc
        return Receipt(provider_id=None, detail=f"written to {path}")


class _HttpMailer:
    name = "http"

    def __init__(self, config: MailerConfig, key: str | None) -> None:
        self.config = config
        self.key = key

    def _secrets(self) -> list[str]:
        """Every form of the key or a URL token that an endpoint's error or httpx could echo."""
        return ([self.key] if self.key else []) + http.url_secrets(self.config.url)

    def _send_with_retries(self, request: Any) -> httpx.Response:
        response: httpx.Response = http.retrying(self.config.retries)(request)
        return response

    def _post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST once; any failure becomes a DeliveryError with the endpoint's own words."""
        where = f"{self.name}: {http.printable_url(url)}"
        headers = {"User-Agent": http.USER_AGENT, **kwargs.pop("headers", {})}
        try:
            with httpx.Client(timeout=self.config.timeout, follow_redirects=False) as client:
                response = client.post(url, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"{where}: no answer within {self.config.timeout:g}s", retryable=True) from exc
        except httpx.HTTPError as exc:
            reason = http.shorten(http.redact(http.describe(exc), self._secrets()))
            raise DeliveryError(f"{where}: cannot connect ({reason})", retryable=True) from exc
        if response.is_success:
            return response
        retryable = http.retryable_status(response.status_code)
        reason = http.shorten(http.redact(http.error_text(response), self._secrets())) or response.reason_phrase
        raise DeliveryError(
            f"{where}: HTTP {response.status_code}: {reason}",
            retryable=retryable,
            retry_after=http.retry_after(response) if retryable else None,
        )


class WebhookMailer(_HttpMailer):
    name = "webhook"
    idempotent = True  # the endpoint gets Idempotency-Key: <digest id>

    def send(self, digest: Outgoing) -> Receipt:
        headers = {"Idempotency-Key": digest.id}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        payload = {
            "id": digest.id,
            "subject": digest.subject,
            "from": digest.sender,
            "to": list(digest.to),
            "html": digest.html,
            "text": digest.text,
            "headers": digest.headers,
            "articles": digest.articles,
        }
        response = self._send_with_retries(lambda: self._post(self.config.url, json=payload, headers=headers))
        where = http.printable_url(self.config.url)
        return Receipt(provider_id=_json_field(response, "id"), detail=f"accepted by {where}")


class MailgunMailer(_HttpMailer):
    """Mailgun's messages API: ``POST {url}/v3/{domain}/messages``, basic auth ``api:KEY``."""

    name = "mailgun"
    idempotent = False  # Mailgun has no idempotency key: a blind resend may mail twice

    def _secrets(self) -> list[str]:
        # Basic auth sends base64("api:KEY"): an endpoint echoing the header leaks the key in it.
        if not self.key:
            return []
        return [*super()._secrets(), http.basic_auth("api", self.key)]

    def send(self, digest: Outgoing) -> Receipt:
        url = f"{self.config.url}/v3/{self.config.domain}/messages"
        # A dict (a list value repeats the field): httpx takes a list of pairs as raw content.
        fields: dict[str, str | list[str]] = {
            "from": digest.sender,
            "to": list(digest.to),
            "subject": digest.subject,
            "text": digest.text,
            "html": digest.html,
        }
        fields |= {f"h:{name}": value for name, value in digest.headers.items()}
        fields["v:digest-id"] = digest.id
        auth = ("api", self.key or "")
        response = self._send_with_retries(lambda: self._post(url, data=fields, auth=auth))
        provider_id = _json_field(response, "id")
        return Receipt(provider_id=provider_id, detail=f"queued by Mailgun as {provider_id}")


def _json_field(response: httpx.Response, name: str) -> str | None:
    try:
        value = response.json().get(name)
    except (ValueError, AttributeError):
        return None
    return str(value) if value is not None else None
