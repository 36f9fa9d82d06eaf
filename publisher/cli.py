"""The ``publisher`` command: a thin layer over the library.

Exit status: 0 ok, 1 failure (a bad article, a digest not sent), 2 usage or config error.
Every PublisherError is caught once, in :class:`_Cli`, and printed as one line.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from publisher import __version__, digest, jobs
from publisher import config as config_module
from publisher.config import Config
from publisher.delivery import build_mailer
from publisher.errors import PublisherError
from publisher.files import write_atomic
from publisher.ingest import ingest as ingest_paths
from publisher.store import Store, safe_url


class _Cli(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PublisherError as exc:
            click.echo(f"publisher: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=Path("publisher.toml"),
    show_default=True,
    help="The publisher.toml to use; relative paths in it are relative to its folder.",
)
@click.version_option(__version__, prog_name="publisher")
@click.pass_context
def main(ctx: click.Context, config_path: Path) -> None:
    """Turn a folder of articles into an Atom feed and an email digest, on a schedule.

    Quick start, in a folder with publisher.toml: `publisher run`.
    """
    ctx.obj = config_path
    logging.basicConfig(level=logging.INFO, format="publisher: %(message)s", stream=sys.stderr)


def _config(ctx: click.Context) -> Config:
    return config_module.load(ctx.obj)


@contextmanager
def _store(config: Config) -> Iterator[Store]:
    store = Store.open(config.store_url)
    try:
        yield store
    finally:
        store.close()


def _report_ingest_errors(errors: list[Any]) -> None:
    for error in errors:
        click.echo(f"publisher: error: {error}", err=True)


def _report_published(published: jobs.PublishResult) -> None:
    click.echo(published.feed.summary())
    for ping in published.pings:
        click.echo(ping.message, err=not ping.ok)


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """One cycle, for cron: ingest new files, rebuild the feed, send the digest if anything is new."""
    config = _config(ctx)
    mailer = build_mailer(config)
    with _store(config) as store:
        result = jobs.run_cycle(config, store, mailer, jobs.now())
    _report_ingest_errors(result.ingest.errors)
    click.echo(result.ingest.summary())
    _report_published(result.published)
    assert result.digest is not None
    click.echo(result.digest.message, err=not result.digest.ok)
    ctx.exit(0 if result.ok else 1)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """Store the articles in PATHS (.txt, .md, .html files, or folders of them)."""
    config = _config(ctx)
    with _store(config) as store:
        result = ingest_paths(store, paths, articles_dir=config.articles_dir, tz=config.site.timezone, now=jobs.now())
    _report_ingest_errors(result.errors)
    click.echo(result.summary())
    ctx.exit(1 if result.errors else 0)


@main.command()
@click.pass_context
def feed(ctx: click.Context) -> None:
    """Write the feeds (atom.xml, rss.xml, feed.json, tags/, archive/) from the store."""
    config = _config(ctx)
    with _store(config) as store:
        published = jobs.publish_feeds(config, store)
    _report_published(published)
    ctx.exit(0 if published.ok else 1)


@main.group(name="articles")
def articles_group() -> None:
    """List the stored articles, or remove some from the feeds and digests."""


@articles_group.command(name="list")
@click.pass_context
def list_articles(ctx: click.Context) -> None:
    """One line per live article: id, published date, title (newest first)."""
    config = _config(ctx)
    with _store(config) as store:
        for article in store.newest_articles():
            click.echo(f"{article.key}\t{article.published:%Y-%m-%d}\t{article.title}")


@articles_group.command(name="remove")
@click.argument("ids", nargs=-1, required=True)
@click.pass_context
def remove_articles(ctx: click.Context, ids: tuple[str, ...]) -> None:
    """Take articles (by the id `articles list` shows) out of the feeds and future digests.

    The raw source stays in the store. An unchanged source file does not bring the article
    back; delete the file too, or it returns the next time the file changes.
    """
    config = _config(ctx)
    when = jobs.now()
    missing = []
    with _store(config) as store:
        for key in ids:
            if store.remove_article(key, when):
                click.echo(f"removed {key}")
            else:
                missing.append(key)
        published = jobs.publish_feeds(config, store)
    for key in missing:
        click.echo(f"publisher: error: {key}: no such article (see `publisher articles list`)", err=True)
    _report_published(published)
    ctx.exit(1 if missing or not published.ok else 0)


@main.group(name="digest")
def digest_group() -> None:
    """Preview or send the email digest of articles not yet mailed."""


@digest_group.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for the preview files [default: preview/ beside publisher.toml].",
)
@click.pass_context
def preview(ctx: click.Context, out: Path | None) -> None:
    """Write the next digest as .html, .txt and .eml files; sends and marks nothing."""
    config = _config(ctx)
    out = out or config.path.parent / "preview"
    when = jobs.now()
    with _store(config) as store:
        pending = store.unsent_digest()
        if pending is not None:
            shown = digest.outgoing(config, store, pending)
            name, html, text, message = pending.id, shown.html, shown.text, pending.message
        else:
            articles = digest.next_articles(config, store, when)
            if not articles:
                click.echo("digest: nothing new since the last digest, nothing to preview")
                return
            name = digest.new_digest_id(when)
            rendered = digest.render(config, articles, digest_id=name, now=when)
            html, text, message = rendered.html, rendered.text, rendered.message
    for suffix, data in ((".html", html.encode()), (".txt", text.encode()), (".eml", message)):
        path = out / f"digest-{name}{suffix}"
        write_atomic(path, data)
        click.echo(str(path))


@digest_group.command()
@click.option(
    "--resend-in-doubt",
    is_flag=True,
    help="Resend a digest whose earlier send was interrupted (it may have been delivered).",
)
@click.pass_context
def send(ctx: click.Context, resend_in_doubt: bool) -> None:
    """Send the digest now if anything is new (without ingesting first)."""
    config = _config(ctx)
    mailer = build_mailer(config)
    with _store(config) as store:
        result = jobs.send_digest(config, store, mailer, jobs.now(), resend_in_doubt=resend_in_doubt)
    click.echo(result.message, err=not result.ok)
    ctx.exit(0 if result.ok else 1)


@main.command()
@click.pass_context
def daemon(ctx: click.Context) -> None:
    """Run the digest on [digest] schedule and refresh feeds every few minutes; stop with SIGTERM or Ctrl-C."""
    from publisher.scheduler import run_daemon

    config = _config(ctx)
    stop = threading.Event()
    with _stop_on_signals(stop, (signal.SIGTERM, signal.SIGINT)):
        run_daemon(config, stop, ready=lambda line: click.echo(line))
    click.echo("daemon: stopped")


@contextmanager
def _stop_on_signals(stop: threading.Event, signums: tuple[signal.Signals, ...]) -> Iterator[None]:
    """Set ``stop`` when one of ``signums`` arrives; the previous handlers are restored on the way out.

    Not by ``stop.set()`` in a Python handler: that runs only when the main thread next runs
    Python code, and the main thread sleeps in ``stop.wait()``, a lock that a signal the
    kernel hands to another thread (a scheduler thread) does not interrupt, so the daemon
    would not stop; and ``set()`` inside the handler could deadlock on the Event's own lock.
    Instead the C-level handler writes the signal number to a pipe (``signal.set_wakeup_fd``),
    from whichever thread got it, and a thread reading the pipe sets ``stop``.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)

    def watch() -> None:
        os.read(read_fd, 1)  # a signal number, or the byte written below when the daemon returned
        stop.set()

    watcher = threading.Thread(target=watch, name="publisher-signals", daemon=True)
    watcher.start()
    previous = {signum: signal.signal(signum, _no_op_handler) for signum in signums}
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.write(write_fd, b"\0")
        watcher.join()
        os.close(read_fd)
        os.close(write_fd)


def _no_op_handler(signum: int, frame: Any) -> None:
    """Replaces the default action (exit, or KeyboardInterrupt); the wakeup fd does the work."""


@main.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show the articles stored, the last digest and its state, and the next scheduled digest."""
    from publisher.scheduler import next_digest_time

    config = _config(ctx)
    when = jobs.now()
    with _store(config) as store:
        count = store.article_count()
        newest = store.newest_articles(1)
        last = store.last_digest()
        version = store.schema_version()
    click.echo(f"store: {safe_url(config.store_url)} (schema v{version})")
    line = f"articles: {count}"
    if newest:
        line += f", newest {newest[0].published.isoformat()} {newest[0].title!r}"
    click.echo(line)
    if last is None:
        click.echo("last digest: none yet")
    else:
        noun = "article" if last.article_count == 1 else "articles"
        line = (
            f"last digest: {last.id} {last.state}, {last.article_count} {noun}, created {last.created_at.isoformat()}"
        )
        if last.sent_at:
            line += f", sent {last.sent_at.isoformat()}"
        if last.state != "sent":
            line += f", {last.attempts} attempts"
        click.echo(line)
        if last.last_error:
            click.echo(f"last error: {last.last_error}")
    upcoming = next_digest_time(config, when)
    schedule = f"'{config.digest.schedule}', {config.digest.timezone.key}"
    click.echo(f"next digest: {upcoming.isoformat() if upcoming else 'never'} ({schedule})")


@main.command()
@click.option("--host", default=None, help="Address to listen on [default: [server] host, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: [server] port, 8080].")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the feeds folder over HTTP (ETag, 304, gzip); stop with Ctrl-C or SIGTERM."""
    from publisher.server import serve as run_server

    config = _config(ctx)
    run_server(config, host=host or config.server.host, port=port or config.server.port)
