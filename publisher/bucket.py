"""The feeds in an S3-compatible bucket (``[bucket]``), for a CDN to serve.

After a rebuild, the documents whose bytes changed are PUT and the ones removed are DELETEd
(path-style ``{url}/{name}/{prefix}{path}``), each request signed with AWS Signature V4 as
the SES provider signs (httpx-auth), with the credentials of the standard AWS variables. The
first upload to a bucket sends every file of the feeds folder, and so does the next one after
an upload that failed part-way (what it missed would not change again); the store remembers. An
object is replaced whole by each PUT, so a reader never gets half a document.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import httpx
from httpx_auth import AWS4Auth

from publisher import clock
from publisher.config import BucketConfig, Config
from publisher.errors import ConfigError, PublisherError
from publisher.feed import FeedResult
from publisher.store import Store

TIMEOUT = 30.0
TYPES = {
    ".xml": "application/xml",
    ".json": "application/feed+json",
    ".xsl": "text/xsl",
    ".html": "text/html; charset=utf-8",
}
FEEDS = {"atom.xml": "application/atom+xml", "rss.xml": "application/rss+xml"}


def publish(config: Config, store: Store, result: FeedResult) -> int:
    """Put what the rebuild changed into the bucket; the number of objects written or deleted."""
    bucket = config.bucket
    if bucket is None:
        return 0
    auth = _auth(bucket)
    synced = f"bucket_synced:{bucket.url}/{bucket.name}/{bucket.prefix}"
    first = not store.setting(synced)  # never, or the last upload failed part-way: send everything
    changed = _every_file(result.dir) if first else sorted(set(result.written) | set(result.pages_written))
    removed = [] if first else _removed(result)
    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            for path in changed:
                data = (result.dir / path).read_bytes()
                headers = {"Content-Type": _type(path)}
                client.put(_url(bucket, path), content=data, headers=headers, auth=auth).raise_for_status()
            for path in removed:
                response = client.delete(_url(bucket, path), auth=auth)
                if response.status_code != 404:
                    response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        store.put_setting(synced, "")
        raise PublisherError(
            f"bucket {bucket.name}: {exc.response.status_code} for {exc.request.url.path} ([bucket] name, url, "
            "region and the AWS credentials)"
        ) from None
    except httpx.HTTPError as exc:
        store.put_setting(synced, "")
        raise PublisherError(f"bucket {bucket.name}: {bucket.url} unreachable: {exc} ([bucket] url)") from None
    if first:
        store.put_setting(synced, clock.now().isoformat())
    return len(changed) + len(removed)


def check(config: Config) -> None:
    """Raise the ConfigError of missing credentials now (a daemon's start), not at the first upload."""
    if config.bucket is not None:
        _auth(config.bucket)


def _auth(bucket: BucketConfig) -> AWS4Auth:
    def required(name: str) -> str:
        value = os.environ.get(name)
        if not value:
            raise ConfigError(name, "environment variable not set ([bucket] uploads are signed with AWS credentials)")
        return value

    access, secret = required("AWS_ACCESS_KEY_ID"), required("AWS_SECRET_ACCESS_KEY")
    return AWS4Auth(access, secret, bucket.region, "s3", security_token=os.environ.get("AWS_SESSION_TOKEN") or None)


def _removed(result: FeedResult) -> list[str]:
    """The documents the rebuild removed, and the page beside each (a tag's), gone with it."""
    gone = set(result.removed) | {str(Path(path).with_suffix(".html")) for path in result.removed}
    return sorted(path for path in gone if not (result.dir / path).exists())


def _every_file(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _url(bucket: BucketConfig, path: str) -> str:
    return f"{bucket.url}/{quote(bucket.name)}/{quote(bucket.prefix + path)}"


def _type(path: str) -> str:
    name = Path(path).name
    return FEEDS.get(name) or TYPES.get(Path(path).suffix, "application/octet-stream")
