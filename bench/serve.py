"""`publisher serve` against nginx, serving the same feeds folder in the same run.

A project of 60 small articles is run once (`publisher run`), then wrk (one thread, 10
connections) asks each server for /atom.xml: a plain GET (200 with the body), and a
conditional GET with the server's own ETag in If-None-Match (304), which is what feed
readers send nearly every time. Each server has one worker process and writes an access log
to a file. The ratio is publisher's requests per second over nginx's. The machine is shared,
so the full run takes the best of three rounds, each round both servers one after the other.

Without wrk nothing can be measured, and without nginx there is no floor: the figures then
say so in their note instead of failing the benchmark.
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import Figure, Report
from bench.startup import env, make_project, publisher, run_command

ARTICLES = 60  # more than [feed] max_entries (50): atom.xml as large as it gets
PATH = "/atom.xml"
NAN = float("nan")
NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    types {{ application/atom+xml xml; }}
    access_log {root}/nginx-access.log;
    client_body_temp_path {root}/nginx-tmp;
    proxy_temp_path {root}/nginx-tmp;
    fastcgi_temp_path {root}/nginx-tmp;
    uwsgi_temp_path {root}/nginx-tmp;
    scgi_temp_path {root}/nginx-tmp;
    server {{
        listen 127.0.0.1:{port};
        root {feeds};
        location / {{ }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(port: int, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, ETag) of a GET of PATH."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", PATH, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("ETag") or ""
    finally:
        connection.close()


def _wait_until_up(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bench: {what} exited {process.returncode} before it served")
        try:
            _get(port)
            return
        except OSError:
            time.sleep(0.05)  # polling a server that is starting, not synchronising a test
    raise RuntimeError(f"bench: {what} did not answer within 30 s")


@contextmanager
def _running(command: list[str], port: int, cwd: Path, log: Path, what: str) -> Iterator[None]:
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        _wait_until_up(port, process, what)
        yield
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wrk(port: int, seconds: int, headers: dict[str, str]) -> float:
    """Requests per second of ``wrk -t1 -c10`` on PATH, after checking the answer is what is meant."""
    command = ["wrk", "-t1", "-c10", f"-d{seconds}s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    done = subprocess.run([*command, f"http://127.0.0.1:{port}{PATH}"], capture_output=True, text=True, check=True)
    if "Non-2xx or 3xx responses" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError(f"bench: wrk saw errors:\n{done.stdout}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if found is None:
        raise RuntimeError(f"bench: no Requests/sec in wrk's output:\n{done.stdout}")
    return float(found.group(1))


def _measure(port: int, seconds: int) -> tuple[float, float]:
    """(req/s of a plain GET, req/s of a conditional GET that is answered 304) of the server on ``port``."""
    status, etag = _get(port)
    if status != 200 or not etag:
        raise RuntimeError(f"bench: GET {PATH} gave {status}, ETag {etag!r}")
    conditional = {"If-None-Match": etag}
    if _get(port, conditional)[0] != 304:
        raise RuntimeError(f"bench: a conditional GET of {PATH} was not answered 304")
    return _wrk(port, seconds, {}), _wrk(port, seconds, conditional)


def _best(rates: list[tuple[float, float]]) -> tuple[float, float]:
    return max(rate[0] for rate in rates), max(rate[1] for rate in rates)


def run(quick: bool) -> Report:
    seconds, rounds = (1, 1) if quick else (5, 3)
    wrk, nginx = shutil.which("wrk"), shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    publisher_rates = nginx_rates = (NAN, NAN)
    notes = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as folder:
        root = Path(folder)
        root.chmod(0o755)  # nginx's worker runs as another user when nginx is started by root
        config = make_project(root, ARTICLES)
        run_command(publisher(config, "run"), root)
        feeds = root / "feeds"
        if wrk is None:
            notes.append("not measured: wrk is not installed (apt-get install wrk)")
        else:
            (root / "nginx-tmp").mkdir()
            ours: list[tuple[float, float]] = []
            theirs: list[tuple[float, float]] = []
            for _ in range(rounds):
                port = _free_port()
                command = publisher(config, "serve", "--port", str(port))
                with _running(command, port, root, root / "serve.log", "publisher serve"):
                    ours.append(_measure(port, seconds))
                if nginx is not None:
                    port = _free_port()
                    conf = root / "nginx.conf"
                    conf.write_text(NGINX_CONF.format(root=root, port=port, feeds=feeds))
                    command = [nginx, "-p", str(root), "-e", str(root / "nginx-error.log"), "-c", str(conf)]
                    with _running(command, port, root, root / "nginx.log", "nginx"):
                        theirs.append(_measure(port, seconds))
            publisher_rates = _best(ours)
            if nginx is None:
                notes.append("no floor: nginx is not installed (apt-get install nginx)")
            else:
                nginx_rates = _best(theirs)
        size = (feeds / "atom.xml").stat().st_size
    how = f"wrk -t1 -c10 -d{seconds}s, best of {rounds}, atom.xml of {size:,} bytes, 1 worker each"
    note = "; ".join([how, *notes])
    figures = []
    for n, what in enumerate(("GET", "conditional GET")):
        figures.append(
            Figure(
                name=f"serve {what} atom.xml",
                value=publisher_rates[n],
                floor=nginx_rates[n],
                unit="req/s",
                target=0.5 if wrk and nginx else None,
                higher_is_better=True,
                floor_name="nginx, 1 worker, the same files" + (" (If-None-Match: its ETag, 304)" if n else ""),
                note=note,
            )
        )
    return Report(figures=figures)


if __name__ == "__main__":
    for figure in run(quick="--quick" in sys.argv).figures:
        print(f"{figure.name}: {figure.value:.0f} vs {figure.floor:.0f} {figure.unit}, {figure.ratio:.2f}x")
