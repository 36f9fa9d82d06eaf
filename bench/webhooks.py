"""What the bounce webhooks cost: 300 one-event SendGrid posts, one 1,000-event SendGrid batch
(the most SendGrid puts in one request), 300 SNS posts, against ``create_app`` on uvicorn on
127.0.0.1 with a local list of 2,000 readers (SQLite). Standalone, not part of ``python -m bench``:

    python bench/webhooks.py
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import httpx
import tomli_w
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PUBLISHER_NOW"] = "2026-11-24T06:30:00Z"
os.environ["PUBLISHER_UNSUBSCRIBE_SECRET"] = "unsubscribe-secret-0123456789"

from publisher import config as config_module  # noqa: E402
from publisher import subscribers  # noqa: E402
from publisher.bounces import ses, webhooks  # noqa: E402
from publisher.store import Store  # noqa: E402
from tests import bounce_payloads as payloads  # noqa: E402
from tests.test_server import Running  # noqa: E402

NOW = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)


def main() -> None:
    keys = payloads.Keys.make()
    ses.fetch = lambda url: keys.certificate
    webhooks.BURST = 10_000  # measure the work, not the limit
    root = Path(tempfile.mkdtemp())
    settings = tomllib.loads((ROOT / "publisher.toml").read_text(encoding="utf-8"))
    settings["store"]["url"] = f"sqlite:///{root}/publisher.db"
    settings["digest"]["recipients"] = "subscribers"
    settings["bounces"] = {"ses_topics": [payloads.TOPIC], "sendgrid_public_key": keys.sendgrid_public}
    (root / "publisher.toml").write_text(tomli_w.dumps(settings), encoding="utf-8")
    config = config_module.load(root / "publisher.toml")
    store = Store.open(config.store_url)
    readers = [f"reader{n:05d}@example.net" for n in range(2000)]
    subscribers.add(store, [(a, None) for a in readers], NOW, resubscribe=False)
    store.close()
    with Running(config) as running, httpx.Client(base_url=running.url) as http:
        singles = [payloads.sendgrid(keys, "soft", readers[n], f"sg-{n}", NOW) for n in range(300)]
        single = _each(http, singles)
        events = [
            json.loads(payloads.sendgrid(keys, "hard", readers[300 + n], f"b-{n}", NOW)[1])[0] for n in range(1000)
        ]
        body = json.dumps(events).encode()
        stamp = str(int(NOW.timestamp()))
        signature = base64.b64encode(keys.sendgrid.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
        headers = {payloads_header("signature"): signature, payloads_header("timestamp"): stamp}
        start = time.perf_counter()
        assert http.post("/webhooks/sendgrid", content=body, headers=headers).status_code == 200
        batch = time.perf_counter() - start
        sns = _each(http, [payloads.ses(keys, "complaint", readers[1500 + n], f"sns-{n}", NOW) for n in range(300)])
    print(f"sendgrid, one event a request: {single * 1000:.1f} ms a request")
    print(f"sendgrid, a 1,000-event batch ({len(body):,} bytes): {batch * 1000:.0f} ms")
    print(f"ses through sns, one event a request: {sns * 1000:.1f} ms a request")


def payloads_header(name: str) -> str:
    return f"x-twilio-email-event-webhook-{name}"


def _each(http: httpx.Client, requests: list[tuple[str, bytes, dict[str, str]]]) -> float:
    start = time.perf_counter()
    for path, body, headers in requests:
        assert http.post(path, content=body, headers=headers).status_code == 200
    return (time.perf_counter() - start) / len(requests)


if __name__ == "__main__":
    main()
