"""What every HTTP provider shares: one POST with errors translated, retries, secrets kept out.

httpx errors become :class:`DeliveryError` here and nowhere else. A timeout or a dropped
connection after the request went out is ``maybe_delivered``: the service may have taken it,
so it is retried within the run only by a mailer whose service dedupes on the key. Retries
within the run stop at ``[mailer] retries`` more attempts or ``max_retry_seconds``, whichever
comes first; ``sleep`` and ``clock`` are there so that tests need not wait.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import httpx

from publisher import http
from publisher.config import MailerConfig
from publisher.errors import ConfigError, DeliveryError

# Raised after the request may have reached the service (as opposed to ConnectError and
# ConnectTimeout, raised before anything was sent).
_AFTER_SENDING = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)

T = TypeVar("T")
C = TypeVar("C", bound=MailerConfig)  # the provider's own [mailer] settings


def require_key(settings: MailerConfig, what: str) -> str:
    """The API key from the environment, or a ConfigError naming the variable."""
    key = settings.api_key()
    if not key:
        raise ConfigError(
            settings.where("api_key_env"),
            f"environment variable {settings.api_key_env} is not set ({what})",
        )
    return key


class HttpMailer(Generic[C]):
    name = "http"
    idempotent = False
    batch_size = 1
    owns_list = False

    def __init__(self, config: C, key: str | None) -> None:
        self.config = config
        self.key = key
        self.sleep: Callable[[float], None] = time.sleep
        self.clock: Callable[[], float] = time.monotonic
        # One client per sending thread, kept for the whole send: its connections are reused
        # from one request to the next (a new client per request paid for its setup each time).
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._clients_lock = threading.Lock()

    def client(self) -> httpx.Client:
        """This thread's client, made on first use (httpx does not promise that one client
        may be shared between threads)."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None or client.is_closed:
            client = httpx.Client(timeout=self.config.timeout, follow_redirects=False, verify=_tls())
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def prepare(self) -> None:
        """Load what the first request needs (TLS settings, httpx's transport), which takes
        tens of milliseconds: a send does it while it plans. A failure here is left for the
        request itself to meet and report."""
        with contextlib.suppress(Exception):
            httpx.Client(timeout=self.config.timeout, verify=_tls()).close()

    def close(self) -> None:
        """Close every client the sending threads made; the next request makes a new one."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def secrets(self) -> list[str]:
        """Every form of the key or a URL token that a service's error or httpx could echo."""
        return ([self.key] if self.key else []) + http.url_secrets(self.config.url)

    def with_retries(self, call: Callable[[], T]) -> T:
        """``call()``, again after each passing failure, within [mailer] retries and max_retry_seconds."""
        retrying = http.retrying(
            self.config.retries,
            self.sleep,
            idempotent=self.idempotent,
            max_seconds=self.config.max_retry_seconds,
            clock=self.clock,
        )
        return retrying(call)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; any failure becomes a DeliveryError carrying the service's own words."""
        where = f"{self.name}: {http.printable_url(url)}"
        headers = {"User-Agent": http.USER_AGENT, **kwargs.pop("headers", {})}
        try:
            response = self.client().request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise DeliveryError(
                f"{where}: no answer within {self.config.timeout:g}s",
                retryable=True,
                maybe_delivered=isinstance(exc, _AFTER_SENDING),
            ) from exc
        except httpx.HTTPError as exc:
            reason = http.shorten(http.redact(http.describe(exc), self.secrets()))
            if isinstance(exc, _AFTER_SENDING):
                raise DeliveryError(
                    f"{where}: connection lost before an answer ({reason})", retryable=True, maybe_delivered=True
                ) from exc
            raise DeliveryError(f"{where}: cannot connect ({reason})", retryable=True) from exc
        if response.is_success:
            return response
        raise self.refused(where, response)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def refused(self, where: str, response: httpx.Response, reason: str | None = None) -> DeliveryError:
        """The DeliveryError for a non-2xx answer: retryable or not, with the service's text."""
        retryable = http.retryable_status(response.status_code)
        text = reason if reason is not None else http.error_text(response)
        text = http.shorten(http.redact(text, self.secrets())) or response.reason_phrase
        return DeliveryError(
            f"{where}: HTTP {response.status_code}: {text}",
            retryable=retryable,
            retry_after=http.retry_after(response) if retryable else None,
        )

    def clean(self, text: str) -> str:
        """A service's text made fit for a message: secrets out, one short line."""
        return http.shorten(http.redact(text, self.secrets()))


_TLS_LOCK = threading.Lock()


def _tls() -> ssl.SSLContext:
    """httpx's default TLS settings, loaded once: building them took most of a request's cost.
    Under a lock, so that the sending threads, which all make their clients as a send starts,
    wait for one load instead of each doing its own."""
    with _TLS_LOCK:
        return _tls_context()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def json_field(response: httpx.Response, name: str) -> str | None:
    try:
        value = response.json().get(name)
    except (ValueError, AttributeError):
        return None
    return str(value) if value is not None else None
