"""[mailer] by provider: the provider key chooses one settings class, and the mailer built from
it says by its own name whether the service keeps the list."""

from __future__ import annotations

from typing import Any

import pytest

from publisher.config import LIST_OWNERS, PROVIDERS, ListmonkConfig, MailerConfig, SesConfig
from publisher.delivery import build_mailer
from tests.conftest import Project

# What each provider needs to be built (its keys, and the secrets it reads).
NEEDS: dict[str, dict[str, Any]] = {
    "webhook": {"url": "https://hooks.example.org/mail"},
    "mailgun": {"domain": "mg.example.org"},
    "listmonk": {"url": "https://lists.example.org", "lists": [3], "username": "publisher"},
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_provider_gets_its_own_settings_and_a_mailer_that_says_whether_it_owns_the_list(
    project: Project, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PUBLISHER_MAILER_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test-secret-value")
    config = project.configure(mailer={"provider": provider, **NEEDS.get(provider, {})})

    settings = config.mailer
    assert settings.provider == provider
    assert isinstance(settings, MailerConfig) and type(settings) is not MailerConfig
    mailer = build_mailer(config)
    assert mailer.owns_list == (provider in LIST_OWNERS)
    assert (mailer.batch_size == 0) == mailer.owns_list  # 0 still means "no recipients of ours"


def test_a_providers_own_keys_are_only_on_its_settings(project: Project) -> None:
    ses = project.configure(mailer={"provider": "ses", "region": "eu-west-1"}).mailer
    assert isinstance(ses, SesConfig)
    assert (ses.region, ses.url) == ("eu-west-1", "https://email.eu-west-1.amazonaws.com")
    assert not hasattr(ses, "lists") and not hasattr(ses, "domain")

    listmonk = project.configure(mailer={"provider": "listmonk", **NEEDS["listmonk"]}).mailer
    assert isinstance(listmonk, ListmonkConfig)
    assert (listmonk.lists, listmonk.username, listmonk.url) == ((3,), "publisher", "https://lists.example.org")
    assert not hasattr(listmonk, "region")
