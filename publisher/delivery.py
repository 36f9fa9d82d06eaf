"""Hand a digest to the mailing endpoint: outbox folder, a JSON webhook, or Mailgun.

Each mailer's ``send`` returns a :class:`Receipt` once the endpoint accepted the digest, or
raises :class:`DeliveryError`; nothing here touches the store. httpx errors become
DeliveryError in :func:`_post` only, and the API key never appears in an error.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from publisher import __version__
from publisher.config import Config, MailerConfig
from publisher.digest import Outgoing
from publisher.errors import ConfigError, DeliveryError
from publisher.files import write_atomic

USER_AGENT = f"publisher/{__version__}"

# httpx logs every request at INFO with its full URL, query-string token included, and the
# CLI logs INFO to stderr: keep httpx to warnings so a send prints only our own one line.
logging.getLogger("httpx").setLevel(logging.WARNING)


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
        """Every form of the key that could come back in an endpoint's error or an httpx message."""
        return [self.key] if self.key else []

    def _send_with_retries(self, request: Any) -> httpx.Response:
        retrying = Retrying(
            stop=stop_after_attempt(self.config.retries + 1),
            wait=wait_exponential_jitter(initial=1, max=20),
            retry=retry_if_exception(lambda exc: isinstance(exc, DeliveryError) and exc.retryable),
            reraise=True,
        )
        response: httpx.Response = retrying(request)
        return response

    def _post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST once; any failure becomes a DeliveryError with the endpoint's own words."""
        where = f"{self.name}: {_without_secrets(url)}"
        headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
        try:
            with httpx.Client(timeout=self.config.timeout, follow_redirects=False) as client:
                response = client.post(url, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"{where}: no answer within {self.config.timeout:g}s", retryable=True) from exc
        except httpx.HTTPError as exc:
            reason = _shorten(self._redact(str(exc)))
            raise DeliveryError(f"{where}: cannot connect ({reason})", retryable=True) from exc
        if response.is_success:
            return response
        retryable = response.status_code in (408, 425, 429) or response.status_code >= 500
        reason = _shorten(self._redact(_error_text(response))) or response.reason_phrase
        raise DeliveryError(f"{where}: HTTP {response.status_code}: {reason}", retryable=retryable)

    def _redact(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, "[redacted]")
        return text


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
        where = _without_secrets(self.config.url)
        return Receipt(provider_id=_json_field(response, "id"), detail=f"accepted by {where}")


class MailgunMailer(_HttpMailer):
    """Mailgun's messages API: ``POST {url}/v3/{domain}/messages``, basic auth ``api:KEY``."""

    name = "mailgun"
    idempotent = False  # Mailgun has no idempotency key: a blind resend may mail twice

    def _secrets(self) -> list[str]:
        # Basic auth sends base64("api:KEY"): an endpoint echoing the header leaks the key in it.
        if not self.key:
            return []
        return [self.key, base64.b64encode(f"api:{self.key}".encode()).decode("ascii")]

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


def _error_text(response: httpx.Response) -> str:
    """The provider's own error message, whole: redact it before :func:`_shorten`."""
    try:
        body = response.json()
        text = (body.get("message") or body.get("error") or json.dumps(body)) if isinstance(body, dict) else str(body)
    except ValueError:
        text = response.text or response.reason_phrase
    return str(text)


def _shorten(text: str) -> str:
    """One short line. Only after redacting: a cut through the key would keep part of it."""
    return " ".join(text.split())[:300]


def _without_secrets(url: str) -> str:
    """Webhook URLs sometimes carry a token in the query string or user:password@: never print them."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
