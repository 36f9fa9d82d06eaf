"""Amazon SES (API v2), driven through the real CLI: against a fake of SES on 127.0.0.1 that
verifies each request's Signature V4 with botocore's signer, and against moto's independent
implementation of SES.

Each reader of a local list gets one request carrying their own full MIME copy; the tests
read the copies back with the stdlib email parser, as a mail client would.
"""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from publisher import subscribers
from publisher.digest import UNSUBSCRIBE_PLACEHOLDER
from tests.conftest import SAMPLE_TITLE, Project
from tests.delivery_helpers import (
    UNSUBSCRIBE_SECRET,
    assert_no_secret,
    last_digest,
    read_journal,
    subscribe,
    tokens,
)
from tests.endpoint import Endpoint
from tests.fakes.ses import MISMATCH, FakeSes

ACCESS_KEY = "AKIAQ7EXAMPLE3TZ9WLD"
SECRET_KEY = "sk/Wq8Rt3Yz6Bn1Mv4Lp7Hc0Xd5Ge2Fa9Ju8Ki3"  # distinctive: any 4 characters in output are a leak
SESSION_TOKEN = "st_Zx4Cv7Bn0Mq3Wr6Ty9Up2Io5Pa8Sd1Fg4Hj7Kl0"
REGION = "eu-west-1"
ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "PUBLISHER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET,
}
READERS = ["ada@example.net", "Grace.Hopper@example.com", "linus@example.org"]
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test decides which credentials are set; a developer's own must not leak in."""
    for name in (*AWS_VARIABLES, "PUBLISHER_UNSUBSCRIBE_SECRET"):
        monkeypatch.delenv(name, raising=False)


def use_ses(project: Project, url: str, *, readers: list[str] | None = READERS, region: str = REGION) -> None:
    """SES at ``url``; a local list of ``readers`` (None: the [digest] to address)."""
    project.configure(mailer={"provider": "ses", "url": url, "region": region, "retries": 0, "timeout": 5})
    if readers is not None:
        subscribe(project, readers)


@pytest.fixture
def ses(project: Project, endpoint: Endpoint) -> FakeSes:
    fake = FakeSes(ACCESS_KEY, SECRET_KEY, REGION, verified={"news@example.org"})
    endpoint.handler = fake.handle
    use_ses(project, endpoint.url)
    return fake


def assert_personal_copy(message: EmailMessage, reader: str, holders: dict[str, str]) -> None:
    """To the reader alone, with an unsubscribe link that is theirs and that publisher accepts
    (``holders``: token -> address, from tokens())."""
    assert message.get_all("To") == [reader]
    assert message["From"] == "Example News <news@example.org>"
    link = str(message["List-Unsubscribe"]).strip("<>")
    query = parse_qs(urlsplit(link).query)
    assert link.startswith("https://news.example.org/unsubscribe?")
    [token] = query["s"]
    assert holders.get(token) == reader
    assert subscribers.check(UNSUBSCRIBE_SECRET.encode(), token, query["t"][0])
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    for part in (html.get_content(), text.get_content()):
        assert SAMPLE_TITLE in part
        assert UNSUBSCRIBE_PLACEHOLDER not in part
    assert link in hrefs(html.get_content()) and link in text.get_content()


def hrefs(html: str) -> list[str]:
    """The links of an HTML part, as a browser reads them (entities decoded)."""
    found: list[str] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.extend(value for name, value in attrs if tag == "a" and name == "href" and value)

    Links().feed(html)
    return found


# -- against the fake --------------------------------------------------------------------------


def test_each_reader_gets_one_signed_request_carrying_their_own_copy(
    project: Project, endpoint: Endpoint, ses: FakeSes
) -> None:
    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    assert len(endpoint.requests) == len(READERS) == len(ses.sent)  # the fake accepts only valid signatures
    digest, planned = read_journal(project)
    assert digest.state == "sent"
    assert [b.state for b in planned] == ["accepted"] * len(READERS)
    assert [b.provider_id for b in planned] == [s.message_id for s in ses.sent]
    holders = tokens(project)
    for request, sent, batch in zip(endpoint.requests, ses.sent, planned, strict=True):
        assert (request.method, request.route) == ("POST", "/v2/email/outbound-emails")
        assert request.headers["content-type"] == "application/json"
        assert request.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
        assert f"/{REGION}/ses/aws4_request" in request.headers["authorization"]
        assert_no_secret(str(request.headers), SECRET_KEY, SESSION_TOKEN)
        body = request.json()
        assert body["FromEmailAddress"] == "news@example.org"  # the name is in the message's From
        assert body["EmailTags"] == [{"Name": "batch", "Value": batch.key}]
        [reader] = sent.to
        assert body["Destination"] == {"ToAddresses": [reader]}
        assert sent.tags == {"batch": batch.key}
        assert_personal_copy(sent.message, reader, holders)
    assert Counter(s.to[0] for s in ses.sent) == Counter(READERS)  # each reader once
    assert len({s.message["Message-ID"] for s in ses.sent}) == len(READERS)


def test_the_digest_to_address_gets_one_copy(project: Project, endpoint: Endpoint, ses: FakeSes) -> None:
    project.configure(digest={"recipients": "to"})

    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    [sent] = ses.sent
    assert sent.to == ["subscribers@lists.example.org"]
    assert sent.message["List-Unsubscribe"] == "<https://news.example.org/unsubscribe>"


def test_a_session_token_is_sent_and_signed(project: Project, endpoint: Endpoint, ses: FakeSes) -> None:
    ses.session_token = SESSION_TOKEN

    result = project.cli("run", env=ENV | {"AWS_SESSION_TOKEN": SESSION_TOKEN})

    assert result.exit_code == 0, result.output
    assert len(ses.sent) == len(READERS)
    for request in endpoint.requests:
        assert request.headers["x-amz-security-token"] == SESSION_TOKEN
        assert "x-amz-security-token" in request.headers["authorization"]
    assert_no_secret(result.output, SECRET_KEY, SESSION_TOKEN)


@pytest.mark.parametrize("missing", ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
def test_missing_credentials_are_a_config_error_naming_the_variable(
    project: Project, endpoint: Endpoint, ses: FakeSes, missing: str
) -> None:
    env = {name: value for name, value in ENV.items() if name != missing}

    result = project.cli("run", env=env)

    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("publisher: error: publisher.toml: [mailer] provider: ")
    assert f"environment variable {missing} is not set" in line
    assert endpoint.requests == []


@pytest.mark.parametrize(
    ("status", "error_type", "message"),
    [
        (429, "TooManyRequestsException", "Maximum sending rate exceeded."),
        (400, "LimitExceededException", "Daily message quota exceeded."),
        (500, "InternalFailure", "The request processing has failed because of an unknown error."),
        (503, "ServiceUnavailable", "Service is unable to handle request."),
    ],
    ids=["429", "limit", "500", "503"],
)
def test_a_passing_failure_stops_the_run_and_the_next_run_reaches_each_reader_once(
    project: Project, endpoint: Endpoint, ses: FakeSes, status: int, error_type: str, message: str
) -> None:
    ses.fail(status, error_type, message)

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    line = failed.stderr.splitlines()[-1]
    digest, _ = read_journal(project)
    assert line.startswith(f"digest {digest.id}: not sent, will retry on the next run: ses: ")
    assert line.endswith(f"HTTP {status}: {error_type}: {message}")
    assert len(endpoint.requests) == 1 and ses.sent == []  # the endpoint is struggling: stop there
    assert digest.state == "pending"

    again = project.cli("run", env=ENV)

    assert again.exit_code == 0, again.output
    assert Counter(s.to[0] for s in ses.sent) == Counter(READERS)
    assert last_digest(project).state == "sent"


@pytest.mark.parametrize(
    ("error_type", "message"),
    [
        ("MessageRejected", "Email address is not verified."),
        ("MailFromDomainNotVerifiedException", "The MAIL FROM domain is not verified."),
        ("AccountSuspendedException", "Your account has been suspended."),
        ("BadRequestException", "Invalid Destination."),
    ],
)
def test_a_refusal_fails_that_batch_with_ses_words_and_is_not_retried(
    project: Project, endpoint: Endpoint, ses: FakeSes, error_type: str, message: str
) -> None:
    ses.fail(400, error_type, message)

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    digest, planned = read_journal(project)
    assert digest.state == "incomplete"
    assert [b.state for b in planned] == ["failed", "accepted", "accepted"]
    assert planned[0].last_error is not None
    assert planned[0].last_error.endswith(f"HTTP 400: {error_type}: {message}")
    assert "1 batch failed" in failed.stderr and f"{error_type}: {message}" in failed.stderr
    assert len(ses.sent) == 2

    again = project.cli("run", env=ENV)

    assert again.exit_code == 1, again.output  # the digest waits for the operator, and says so
    assert "--retry-failed" in again.stderr
    assert "nothing new" in again.stdout
    assert len(endpoint.requests) == 3


def test_an_unverified_sender_is_refused_by_ses(project: Project, endpoint: Endpoint, ses: FakeSes) -> None:
    ses.verified = {"other.example"}

    failed = project.cli("run", env=ENV)

    assert failed.exit_code == 1
    _, planned = read_journal(project)
    assert [b.state for b in planned] == ["failed"] * len(READERS)
    assert "3 batches failed" in failed.stderr
    assert planned[0].last_error is not None
    assert "HTTP 400: MessageRejected: Email address is not verified." in planned[0].last_error
    assert "news@example.org" in planned[0].last_error


def test_a_wrong_secret_key_fails_with_the_signature_error_and_shows_no_secret(
    project: Project, endpoint: Endpoint, ses: FakeSes
) -> None:
    ses.secret_key = "the-secret-ses-really-has-for-this-key"

    failed = project.cli("run", env=ENV)
    status = project.cli("status", env=ENV)

    assert failed.exit_code == 1
    assert ses.sent == []
    digest, planned = read_journal(project)
    assert [b.state for b in planned] == ["failed"] * len(READERS)
    assert planned[0].last_error is not None
    assert f"HTTP 403: InvalidSignatureException: {MISMATCH[:100]}" in planned[0].last_error
    for text in (failed.stdout, failed.stderr, status.stdout, status.stderr, digest.last_error):
        assert_no_secret(text, SECRET_KEY, SESSION_TOKEN)
    for batch in planned:
        assert_no_secret(batch.last_error, SECRET_KEY, SESSION_TOKEN)


def test_an_error_echoing_the_secrets_is_redacted(project: Project, endpoint: Endpoint, ses: FakeSes) -> None:
    ses.session_token = SESSION_TOKEN
    ses.fail(400, "BadRequestException", f"Unexpected key {SECRET_KEY} with token {SESSION_TOKEN}")

    failed = project.cli("run", env=ENV | {"AWS_SESSION_TOKEN": SESSION_TOKEN})

    assert failed.exit_code == 1
    digest, planned = read_journal(project)
    assert planned[0].last_error is not None
    assert "BadRequestException: Unexpected key [redacted] with token [redacted]" in planned[0].last_error
    for text in (failed.stdout, failed.stderr, digest.last_error, planned[0].last_error):
        assert_no_secret(text, SECRET_KEY, SESSION_TOKEN)


def test_a_test_send_gives_each_address_its_own_copy_tagged_as_a_test(
    project: Project, endpoint: Endpoint, ses: FakeSes
) -> None:
    assert project.cli("ingest", str(project.articles)).exit_code == 0

    result = project.cli("digest", "test", "--to", "editor@example.org", "--to", "proof@example.net", env=ENV)

    assert result.exit_code == 0, result.output
    assert [s.to for s in ses.sent] == [["editor@example.org"], ["proof@example.net"]]
    for sent in ses.sent:
        assert sent.tags["test"] == "true"
        assert str(sent.message["Subject"]).startswith("[TEST] ")
        assert sent.message.get_all("To") == sent.to
    assert journal_of_nothing(project)


def journal_of_nothing(project: Project) -> bool:
    store = project.open_store()
    try:
        return store.last_digest() is None
    finally:
        store.close()


# -- against moto ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)  # its request log would land in the CLI's captured stderr
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        werkzeug.setLevel(level)


@pytest.fixture
def moto(moto_server: str) -> str:
    httpx.post(f"{moto_server}/moto-api/reset").raise_for_status()
    return moto_server


def moto_sent(url: str) -> list[dict[str, Any]]:
    """What moto recorded as sent raw messages."""
    data = httpx.get(f"{url}/moto-api/data.json").json()
    return list(data["ses"]["RawMessage"])


def test_moto_accepts_each_readers_copy_from_a_verified_sender(project: Project, moto: str) -> None:
    client = boto3.client(
        "sesv2", region_name=REGION, endpoint_url=moto, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY
    )
    client.create_email_identity(EmailIdentity="news@example.org")
    use_ses(project, moto)

    result = project.cli("run", env=ENV)

    assert result.exit_code == 0, result.output
    recorded = moto_sent(moto)
    assert len(recorded) == len(READERS)
    digest, planned = read_journal(project)
    assert digest.state == "sent"
    assert sorted(b.provider_id or "" for b in planned) == sorted(r["id"] for r in recorded)
    holders = tokens(project)
    for entry in recorded:
        assert entry["source"] == "news@example.org"
        message = email.message_from_string(entry["raw_data"], policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        [reader] = message.get_all("To")
        assert set(entry["destinations"]) == {reader}
        assert_personal_copy(message, reader, holders)
    assert Counter(str(email.message_from_string(r["raw_data"])["To"]) for r in recorded) == Counter(READERS)


def test_moto_refuses_an_unverified_sender_and_the_batches_fail(project: Project, moto: str) -> None:
    use_ses(project, moto, readers=READERS[:1])

    result = project.cli("run", env=ENV)

    assert result.exit_code == 1
    assert moto_sent(moto) == []
    digest, [batch] = read_journal(project)
    assert (digest.state, batch.state) == ("incomplete", "failed")
    assert batch.last_error is not None and "HTTP 400: MessageRejected: " in batch.last_error
    assert_no_secret(result.output, SECRET_KEY, SESSION_TOKEN)
