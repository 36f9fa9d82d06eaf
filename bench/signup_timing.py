"""``python -m bench.signup_timing``: does a sign-up's answer tell what is behind the address?

Times the sign-up POST of ``publisher serve`` (real uvicorn on 127.0.0.1, SQLite store, outbox
mailer) for four kinds of address: new (a confirmation is queued), one already sent a
confirmation within the window, one subscribed already, and a bot's (honeypot filled); and
counts what a mail scanner that GETs and HEADs every link of every confirmation confirms.
Prints medians and quartiles in milliseconds.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

N = 150


def main() -> None:
    os.environ.setdefault("PUBLISHER_UNSUBSCRIBE_SECRET", "bench-secret-0123456789abcdef")
    from publisher import config as config_module
    from publisher import subscribers
    from publisher.server import Server, create_app, listen
    from publisher.store import Store

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "publisher.toml").write_text(
            '[site]\ntitle = "Bench"\nurl = "https://news.example.org/"\nauthor = "B"\n'
            '[digest]\nfrom = "Bench <news@example.org>"\nto = ["x@example.org"]\n'
            'unsubscribe_url = "https://news.example.org/unsubscribe"\nrecipients = "subscribers"\n'
            '[signup]\nclient_header = "X-Real-IP"\n',
            encoding="utf-8",
        )
        config = config_module.load(root / "publisher.toml")
        store = Store.open(config.store_url)
        active = [f"active{n}@example.org" for n in range(N)]
        subscribers.add(
            store, [(a, None) for a in active], __import__("publisher.clock").clock.now(), resubscribe=False
        )
        store.close()
        sock = listen("127.0.0.1", 0)
        app = create_app(config)
        started = threading.Event()
        server = Server(uvicorn.Config(app, log_config=None, access_log=False), on_started=started.set)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        started.wait(30)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        headers = {"Origin": "https://news.example.org"}
        timings: dict[str, list[float]] = {"new": [], "recent": [], "active": [], "bot": []}
        kinds = {
            "new": lambda n: {"email": f"new{n}@example.org", "website": ""},
            "recent": lambda n: {"email": f"new{n}@example.org", "website": ""},  # the same, again
            "active": lambda n: {"email": active[n], "website": ""},
            "bot": lambda n: {"email": f"bot{n}@example.org", "website": "spam"},
        }
        with httpx.Client(base_url=url, timeout=30) as http:
            for n in range(N):
                for kind, data in kinds.items():  # interleaved, so that drift hits every kind alike
                    ip = {"X-Real-IP": f"10.{list(kinds).index(kind)}.{n // 250}.{n % 250}"}
                    start = time.perf_counter()
                    response = http.post("/subscribe", data=data(n), headers=headers | ip)
                    timings[kind].append((time.perf_counter() - start) * 1000)
                    assert response.status_code == 200, response.status_code
            app.pages.state.notices.wait_idle(60)
            scanned = 0
            for path in (root / "outbox").glob("confirm-*/*.eml"):
                message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
                for link in re.findall(r"https://news\.example\.org(\S+)", text):
                    for method in ("GET", "HEAD"):
                        http.request(
                            method, link, headers={"X-Real-IP": f"10.9.{scanned // 250 % 250}.{scanned % 250}"}
                        )
                        scanned += 1
        server.should_exit = True
        thread.join(30)
        store = Store.open(config.store_url)
        states = subscribers.counts(store)
        store.close()
        print(f"sign-up POST, ms over {N} each (median, quartiles):")
        for kind, values in timings.items():
            q = statistics.quantiles(values, n=4)
            print(f"  {kind:7} {statistics.median(values):6.2f}  [{q[0]:.2f} .. {q[2]:.2f}]")
        print(f"mail scanner: {scanned} requests to the links of {N} confirmations; states now: {dict(states)}")


if __name__ == "__main__":
    main()
