"""listmonk (self-hosted): the digest becomes a campaign to the lists listmonk keeps.

    GET  {url}/api/campaigns?query=<digest id>   is it there already?
    POST {url}/api/campaigns                     no: create it (a draft named after the digest)
    PUT  {url}/api/campaigns/{id}/status         a draft: start it ({"status": "running"})

Auth is ``Authorization: token USER:KEY`` (an API user, listmonk ≥ 4). Looking the campaign
up by name first makes a send repeatable: a crash between creating and starting leaves a
draft that the next attempt starts, and a campaign already running or finished means the
send was accepted before, so nothing is created twice (``idempotent = True``).

A test send creates the draft (named after the test digest) and asks listmonk to mail it to
the given addresses with ``POST /api/campaigns/{id}/test``; it is never started. listmonk
mails test copies only to addresses that are its subscribers.

listmonk puts its own per-subscriber unsubscribe link where the body says
``{{ UnsubscribeURL }}``, and adds List-Unsubscribe and List-Unsubscribe-Post headers itself
(its "unsubscribe header" privacy setting, on by default), so no headers are sent here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import httpx

from publisher import http
from publisher.config import ListmonkConfig
from publisher.delivery import Envelope, Receipt, personal
from publisher.delivery.base import HttpMailer, require_key
from publisher.errors import ConfigError, DeliveryError

UNSUBSCRIBE_TAG = "{{ UnsubscribeURL }}"


class Campaign(StrEnum):
    """The listmonk campaign states a send acts on (listmonk's own names)."""

    DRAFT = "draft"
    RUNNING = "running"
    FINISHED = "finished"
    PAUSED = "paused"
    SCHEDULED = "scheduled"


# Started before: the send was accepted.
ALREADY_SENT = (Campaign.RUNNING, Campaign.FINISHED, Campaign.PAUSED, Campaign.SCHEDULED)


def build(settings: ListmonkConfig) -> ListmonkMailer:
    if not settings.username:
        raise ConfigError(
            settings.where("username"),
            f"missing (the listmonk API user; its API key goes in the environment variable {settings.api_key_env})",
        )
    return ListmonkMailer(settings, require_key(settings, "listmonk needs an API user's key"))


class ListmonkMailer(HttpMailer[ListmonkConfig]):
    name = "listmonk"
    idempotent = True  # the campaign is found by name before anything is created
    batch_size = 0  # no recipients of ours in a request
    owns_list = True  # listmonk sends to its own lists

    def __init__(self, config: ListmonkConfig, key: str) -> None:
        super().__init__(config, key)
        self.headers = {"Authorization": f"token {config.username}:{key}"}

    def secrets(self) -> list[str]:
        user, key = self.config.username, self.key or ""
        return [*super().secrets(), f"{user}:{key}", http.basic_auth(user, key)]

    def send(self, envelope: Envelope) -> Receipt:
        # The whole look-up-create-start is one attempt: a retry looks the campaign up again
        # rather than creating it blind.
        attempt: Receipt = http.retrying(self.config.retries, idempotent=True)(lambda: self._attempt(envelope))
        return attempt

    def _attempt(self, envelope: Envelope) -> Receipt:
        campaign = self._find(envelope.digest.id) or self._create(envelope)
        number = campaign["id"]
        if envelope.test:
            test = self._campaign(envelope) | {"subscribers": [r.email for r in envelope.recipients]}
            self._call("POST", f"/api/campaigns/{number}/test", json=test)
            return Receipt(provider_id=str(number), detail=f"test sent by listmonk from draft campaign {number}")
        status = campaign.get("status")
        if status == Campaign.DRAFT:
            self._call("PUT", f"/api/campaigns/{number}/status", json={"status": Campaign.RUNNING.value})
            return Receipt(provider_id=str(number), detail=f"campaign {number} started by listmonk")
        if status in ALREADY_SENT:
            return Receipt(provider_id=str(number), detail=f"campaign {number} already {status} in listmonk")
        raise DeliveryError(
            f"listmonk: campaign {number} ({envelope.digest.id}) is {status} in listmonk; "
            "start it there, or delete it to send the digest anew",
            retryable=False,
        )

    def _find(self, name: str) -> dict[str, Any] | None:
        """The campaign named ``name``: listmonk's query is a text search, so match exactly here."""
        response = self._call("GET", "/api/campaigns", params={"query": name, "per_page": "all", "no_body": "true"})
        results = _data(response.json()).get("results") or []
        found = [c for c in results if isinstance(c, dict) and c.get("name") == name]
        return found[0] if found else None

    def _create(self, envelope: Envelope) -> dict[str, Any]:
        response = self._call("POST", "/api/campaigns", json=self._campaign(envelope))
        campaign = _data(response.json())
        if "id" not in campaign:
            where = f"{self.name}: {http.printable_url(self.config.url)}/api/campaigns"
            raise DeliveryError(f"{where}: answer without a campaign id", retryable=False)
        return campaign

    def _campaign(self, envelope: Envelope) -> dict[str, Any]:
        digest = envelope.digest
        return {
            "name": digest.id,
            "subject": digest.subject,
            "lists": list(self.config.lists),
            "from_email": digest.sender,
            "type": "regular",
            "content_type": "html",
            "messenger": "email",
            "body": digest.personal(personal.guard_braces_html(digest.html), UNSUBSCRIBE_TAG),
            "altbody": digest.personal(personal.guard_braces_text(digest.text), UNSUBSCRIBE_TAG),
        }

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.request(method, f"{self.config.url}{path}", headers=self.headers, **kwargs)
        try:
            response.json()
        except ValueError:
            # A 2xx page that is not listmonk's JSON: most likely [mailer] url points elsewhere.
            where = f"{self.name}: {http.printable_url(self.config.url + path)}"
            raise DeliveryError(f"{where}: answer is not JSON: {self.clean(response.text)}", retryable=False) from None
        return response


def _data(body: Any) -> dict[str, Any]:
    """listmonk wraps every answer in ``{"data": ...}``."""
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}
