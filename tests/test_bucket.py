"""The feeds in an S3-compatible bucket (publisher.bucket), against moto's S3 server.

The bucket's objects are read back with boto3 (botocore's own signing and parsing), so the
check does not share publisher's code: every file of the feeds folder, byte for byte.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from publisher import bucket
from publisher.errors import ConfigError, PublisherError
from publisher.feed import write_feeds
from publisher.store import Store
from tests.conftest import NOW, Project, ingest_folder, markdown_article

NAME = "news-feeds"


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        werkzeug.setLevel(level)


@pytest.fixture
def s3(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> object:
    import boto3

    httpx.post(f"{moto_server}/moto-api/reset").raise_for_status()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    client = boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="eu-west-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    )
    client.create_bucket(Bucket=NAME, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return client


@contextmanager
def _store(project: Project) -> Iterator[Store]:
    store = project.open_store()
    try:
        yield store
    finally:
        store.close()


def objects(client: object) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=NAME).get("Contents", [])  # type: ignore[attr-defined]
    return {o["Key"]: client.get_object(Bucket=NAME, Key=o["Key"])["Body"].read() for o in listed}  # type: ignore[attr-defined]


def on_disk(folder: Path, prefix: str) -> dict[str, bytes]:
    return {
        prefix + str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def test_the_feeds_go_to_the_bucket_and_follow_every_rebuild(project: Project, moto_server: str, s3: object) -> None:
    config = project.configure(bucket={"name": NAME, "url": moto_server, "region": "eu-west-1", "prefix": "feeds/"})
    project.add_article("harbour.md", markdown_article("Harbour reopens", "2026-11-20", ["harbour"]))
    with _store(project) as store:
        ingest_folder(project, store, NOW)
        first = write_feeds(config, store)
        assert bucket.publish(config, store, first) == len(on_disk(first.dir, ""))
        assert objects(s3) == on_disk(first.dir, "feeds/")
        head = s3.head_object(Bucket=NAME, Key="feeds/atom.xml")  # type: ignore[attr-defined]
        assert head["ContentType"] == "application/atom+xml"

        project.add_article("storm.md", markdown_article("Storm warning", "2026-11-21", ["storm"]))
        ingest_folder(project, store, NOW)
        [harbour] = [a.key for a in store.newest_articles() if a.title == "Harbour reopens"]
        assert store.remove_article(harbour, NOW)
        second = write_feeds(config, store)
        assert second.removed  # the harbour tag's feed went
        changed = set(second.written) | set(second.pages_written)
        assert "feed.xsl" not in changed  # only what changed goes up again
        # Each removed tag feed, and its page beside it.
        assert bucket.publish(config, store, second) == len(changed) + 2 * len(second.removed)
        assert objects(s3) == on_disk(second.dir, "feeds/")


def test_a_bucket_that_refuses_is_one_line_and_the_next_upload_sends_everything(
    project: Project, moto_server: str, s3: object
) -> None:
    config = project.configure(bucket={"name": "no-such-bucket", "url": moto_server, "region": "eu-west-1"})
    with _store(project) as store:
        result = write_feeds(config, store)
        with pytest.raises(PublisherError, match=r"^bucket no-such-bucket: 404 for /no-such-bucket/"):
            bucket.publish(config, store, result)
        fixed = project.configure(bucket={"name": NAME})
        again = write_feeds(fixed, store)
        assert not again.written  # nothing changed on disk
        bucket.publish(fixed, store, again)
        assert objects(s3) == on_disk(again.dir, "")


def test_missing_credentials_are_named_before_anything_is_sent(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = project.configure(bucket={"name": NAME})
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    with pytest.raises(ConfigError, match=r"^AWS_ACCESS_KEY_ID: environment variable not set \(\[bucket\] uploads"):
        bucket.check(config)
