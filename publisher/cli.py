"""The ``publisher`` command: a thin layer over the library.

Exit status: 0 ok, 1 failure (a bad article, a digest not sent), 2 usage or config error.
Every PublisherError is caught once, in :class:`_Cli`, and printed as one line.

stdout carries the results (summaries, paths, listings) and is the same in both log formats.
stderr carries progress and errors: ``publisher: ...`` lines, or with ``--log-format json``
only log records, one JSON object a line (see publisher.logs), plus a record of every
digest send's outcome with its digest id.
"""

from __future__ import annotations

import logging
import shlex
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from publisher import __version__, logs
from publisher.errors import PublisherError
from publisher.states import SubscriberState

# Each command imports the modules it uses when it runs, so that `publisher --help` or a
# command with little to do does not pay for them all (the feed, the digest, the mailers).
if TYPE_CHECKING:
    from publisher import health, membership, progress, report, resume
    from publisher.config import Config
    from publisher.delivery import Mailer
    from publisher.dispatch import BatchReport, SendResult
    from publisher.errors import IngestError
    from publisher.ingest import IngestResult
    from publisher.jobs import PublishResult
    from publisher.store import Store

log = logging.getLogger("publisher.cli")


CONFIG_ENV = "PUBLISHER_CONFIG"
_CONFIG_KEY = "publisher.config"  # in ctx.meta: a --config given after the command


def _remember_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.meta[_CONFIG_KEY] = value


class _Command(click.Command):
    """A command that also takes --config after its name (`publisher run --config X`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(
            click.Option(
                ["--config", "config_path"],
                type=click.Path(path_type=Path),
                default=None,
                expose_value=False,
                is_eager=True,
                callback=_remember_config,
                help=f"The publisher.toml to use (also before the command, or ${CONFIG_ENV}).",
            )
        )


class _Group(click.Group):
    command_class = _Command
    group_class: type[click.Group] | type[type] | None = type  # a subgroup is a _Group too


def _examples(*lines: str) -> str:
    """An epilog of example command lines, kept as they are written (click's \\b)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


class _Cli(_Group):
    group_class = _Group

    def invoke(self, ctx: click.Context) -> Any:
        # Here rather than in main(): a usage error in a subcommand is raised before main() runs.
        logs.setup(ctx.params["log_format"], logging.DEBUG if ctx.params["verbose"] else logging.INFO)
        try:
            return super().invoke(ctx)
        except PublisherError as exc:
            _stderr(str(exc))
            ctx.exit(exc.exit_code)
        except click.ClickException as exc:
            if not logs.is_json():
                raise  # click prints it with the usage line
            _stderr(exc.format_message())
            ctx.exit(exc.exit_code)


@click.group(
    cls=_Cli,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=_examples(
        "publisher init news && cd news     # a new project folder",
        "publisher run                      # ingest, feeds, digest: once, for cron",
        "publisher status --config /srv/news/publisher.toml",
    ),
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=Path("publisher.toml"),
    show_default=True,
    envvar=CONFIG_ENV,
    help=f"The publisher.toml to use (also after the command, or ${CONFIG_ENV}); relative paths in it "
    "are relative to its folder.",
)
@click.option(
    "--log-format",
    type=click.Choice(logs.FORMATS, case_sensitive=False),
    default="text",
    show_default=True,
    envvar="PUBLISHER_LOG_FORMAT",
    help="stderr as `publisher: ...` lines, or one JSON object a line, with digest and batch ids "
    "(also PUBLISHER_LOG_FORMAT). stdout is the same either way.",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Also log publisher's debug records, APScheduler's, and whole tracebacks."
)
@click.version_option(__version__, prog_name="publisher")
@click.pass_context
def main(ctx: click.Context, config_path: Path, log_format: str, verbose: bool) -> None:
    """Turn a folder of articles into an Atom feed and an email digest, on a schedule.

    Quick start: `publisher init DIR` writes a project; in it, `publisher run`.
    """
    ctx.obj = config_path


def _config_path(ctx: click.Context) -> Path:
    """--config after the command, else before it (or $PUBLISHER_CONFIG), else ./publisher.toml."""
    given: Path | None = ctx.meta.get(_CONFIG_KEY)
    return given if given is not None else ctx.find_root().params["config_path"]


def _config(ctx: click.Context) -> Config:
    from publisher import config as config_module

    config = config_module.load(_config_path(ctx))
    logs.protect(config)
    return config


def _stderr(message: str, *, prefix: str = "publisher: error: ", level: int = logging.ERROR, **fields: Any) -> None:
    """A line for the operator: ``prefix + message`` on stderr, or a log record at ``level`` in JSON mode."""
    if logs.is_json():
        log.log(level, "%s", message, extra=fields)
    else:
        click.echo(logs.redact(prefix + message), err=True)


def _outcome(result: SendResult, **fields: Any) -> None:
    """A send's outcome: on stdout if it went well, else on stderr; in JSON mode also logged either way."""
    if result.ok:
        click.echo(logs.redact(result.message))
    if logs.is_json():
        log.log(logging.INFO if result.ok else logging.ERROR, "%s", result.message, extra=fields)
    elif not result.ok:
        click.echo(logs.redact(result.message), err=True)


@contextmanager
def _store(config: Config) -> Iterator[Store]:
    from publisher.store import Store

    store = Store.open(config.store_url)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _existing_store(ctx: click.Context, config: Config) -> Iterator[Store]:
    """The store, for a command that only reads it: where there is none, one line and exit 0
    (nothing to show), and no store is created."""
    from publisher import health

    store = health.open_existing(config.store_url)
    if store is None:
        _stderr(health.no_store(config.store_url), prefix="publisher: ", level=logging.WARNING)
        ctx.exit(0)
    try:
        yield store
    finally:
        store.close()


def _report_ingest_errors(errors: list[IngestError]) -> None:
    for error in errors:
        _stderr(str(error), path=error.path)


def _report_published(published: PublishResult) -> None:
    if published.error is not None:
        _stderr(published.error)
    click.echo(published.summary())
    for ping in published.pings:
        if ping.ok:
            click.echo(ping.message)
        else:
            _stderr(ping.message, prefix="", level=logging.WARNING)  # a hub's trouble never fails the run


@main.command(
    short_help="Start a project: a commented publisher.toml, an article.",
    epilog=_examples(
        "publisher init news          # creates news/",
        "publisher init               # in this folder",
        "publisher init news --source https://blog.example.org/index.xml",
    ),
)
@click.argument("folder", metavar="[DIR]", default=".", type=click.Path(path_type=Path))
@click.option("--source", metavar="FEED_URL", help="A newsletter from this feed: a [[sources]] block, no example.")
@click.pass_context
def init(ctx: click.Context, folder: Path, source: str | None) -> None:
    """Write DIR/publisher.toml (every setting, with its default and what it is for) and an example
    article in DIR/articles/, then print the next commands. Never overwrites a file: where
    publisher.toml exists, nothing is written and the exit status is 1.
    """
    from publisher import clock, scaffold

    made = scaffold.init(folder, clock.now(), source)
    for path in made.written:
        click.echo(f"wrote {path}")
    for path in made.kept:
        _stderr(f"{path} exists already, left as it is", prefix="publisher: ", level=logging.WARNING, path=path)
    if not made.written:
        _stderr("nothing written: the project is there already (`publisher config check` checks it)")
        ctx.exit(1)
    click.echo("next:")
    if folder.resolve() != Path.cwd().resolve():
        click.echo(f"  cd {shlex.quote(str(folder))}")
    click.echo("  publisher config check    # settings, folders, templates, store: nothing is sent")
    click.echo("  publisher run             # articles/ -> feeds/, and the digest into outbox/")


@main.group(name="config", epilog=_examples("publisher config check"))
def config_group() -> None:
    """Check publisher.toml and what it points at."""


@config_group.command(
    name="check",
    short_help="Check the settings and all they name; send nothing.",
    epilog=_examples("publisher config check", "publisher config check --config /srv/news/publisher.toml"),
)
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Load publisher.toml and check everything that can be checked without sending: the
    settings, the folders, the digest's templates, the secrets, the store (read, never created),
    the provider's host name. One line per finding; exit 2 on any error.
    """
    from publisher import clock, preflight

    findings = preflight.check(_config_path(ctx), clock.now())
    for finding in findings:
        click.echo(logs.redact(finding.line()))
    ctx.exit(2 if preflight.failed(findings) else 0)


@main.command(
    short_help="Ingest new files, rebuild the feeds, send the digest (cron).",
    epilog=_examples("publisher run", "*/15 * * * *  publisher --config /srv/news/publisher.toml run   # crontab"),
)
@click.pass_context
def run(ctx: click.Context) -> None:
    """One cycle, for cron: ingest new files, rebuild the feed, send the digest if anything is new.

    Exits 1 while a digest needs you (batches failed or in doubt), with one line saying what to do.
    """
    from publisher import clock, jobs
    from publisher.config import check_ready
    from publisher.delivery import build_mailer

    config = _config(ctx)
    check_ready(config, articles=True)  # before any work: folders, templates, secrets
    mailer = build_mailer(config)
    with _store(config) as store, _CycleShown(mailer.name) as shown:
        result = jobs.run_cycle(config, store, mailer, clock.now(), observer=shown)
    # On every run until settled (cron mails it, a log keeps it).
    for problem in result.unsaid():
        _stderr(problem.message, digest_id=problem.digest_id)
    ctx.exit(0 if result.settled else 1)


class _CycleShown:
    """`publisher run`'s view of the cycle (a jobs.CycleObserver): each stage's lines as it
    ends, the send's progress while it goes, then its outcome."""

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._display: progress.Display | None = None
        self._cleanup = ExitStack()

    def __enter__(self) -> _CycleShown:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._cleanup.close()

    def started(self, stage: str) -> None:
        from publisher import progress

        if stage == "send":
            self._display = self._cleanup.enter_context(progress.Display())

    def ingested(self, result: IngestResult) -> None:
        _report_ingest_errors(result.errors)
        click.echo(result.summary())

    def published(self, result: PublishResult) -> None:
        _report_published(result)

    def batch(self, report: BatchReport) -> None:
        if self._display is not None:
            self._display.batch(report)

    def sent(self, result: SendResult) -> None:
        self._cleanup.close()  # the progress display ends before the outcome line
        _outcome(result, digest_id=result.digest_id, provider=self._provider)


@main.command(
    short_help="Store the articles in these files or folders.",
    epilog=_examples("publisher ingest articles/2026-11-24-hello.md", "publisher ingest ~/drafts/ready/"),
)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """Store the articles in PATHS (.txt, .md, .html files, or folders of them)."""
    from publisher import clock, intake

    config = _config(ctx)
    with _store(config) as store:
        result = intake.ingest_files(config, store, paths, clock.now())
    _report_ingest_errors(result.errors)
    click.echo(result.summary())
    ctx.exit(1 if result.errors else 0)


@main.command(short_help="Write the feeds from the store.", epilog=_examples("publisher feed"))
@click.pass_context
def feed(ctx: click.Context) -> None:
    """Write the feeds (atom.xml, rss.xml, feed.json, tags/, archive/) from the store."""
    from publisher import jobs

    config = _config(ctx)
    with _store(config) as store:
        published = jobs.publish_feeds(config, store)
    _report_published(published)
    ctx.exit(0 if published.ok else 1)


@main.group(
    name="sources", short_help="List the remote feeds read into articles.", epilog=_examples("publisher sources list")
)
def sources_group() -> None:
    """The remote feeds ([[sources]] in publisher.toml) whose items become articles."""


@sources_group.command(
    name="list",
    short_help="One line per source: items, last success, next fetch, health.",
    epilog=_examples("publisher sources list", "publisher sources list | grep -v 'ok$'   # the failing ones"),
)
@click.pass_context
def list_sources(ctx: click.Context) -> None:
    """One line per [[sources]] entry, tab-separated: name, items taken, last success, next
    fetch, and "ok" or since when it fails and why. Creates no store where there is none."""
    from publisher import clock, sources

    config = _config(ctx)
    with _existing_store(ctx, config) as store:
        for line in sources.overview(config, store, clock.now()):
            click.echo(line)


@main.group(
    name="articles",
    short_help="List the stored articles, or remove some.",
    epilog=_examples("publisher articles list", "publisher articles remove hello-world"),
)
def articles_group() -> None:
    """List the stored articles, or remove some from the feeds and digests."""


@articles_group.command(
    name="list",
    short_help="One line per live article: id, date, title.",
    epilog=_examples("publisher articles list | head", "publisher articles list | cut -f1"),
)
@click.pass_context
def list_articles(ctx: click.Context) -> None:
    """One line per live article: id, published date, title (newest first), tab-separated.

    Control characters in an id or title are shown as `ls -b` shows them (a newline as \\n):
    bash's $'...' turns an id shown so back into the id.
    """
    config = _config(ctx)
    with _existing_store(ctx, config) as store:
        for article in store.newest_articles():
            click.echo(f"{_escaped(article.key)}\t{article.published:%Y-%m-%d}\t{_escaped(article.title)}")


_C_ESCAPES = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r", "\\": "\\\\"}


def _escaped(text: str) -> str:
    """``text`` on one line, as `ls -b` shows a name (spaces aside): C escapes for control
    characters and the backslash, octal bytes for any other unprintable character."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_C_ESCAPES.get(char) or (char if char.isprintable() else _octal(char)) for char in text)


def _octal(char: str) -> str:
    """``char``'s bytes in octal, as `ls -b` does (a byte of a name that is not UTF-8 too)."""
    return "".join(f"\\{byte:03o}" for byte in char.encode("utf-8", "surrogateescape"))


@articles_group.command(
    name="remove",
    short_help="Take articles out of the feeds and future digests.",
    epilog=_examples("publisher articles remove hello-world", "publisher articles remove $'two\\nlines'"),
)
@click.argument("ids", nargs=-1, required=True)
@click.pass_context
def remove_articles(ctx: click.Context, ids: tuple[str, ...]) -> None:
    """Take articles (by the id `articles list` shows) out of the feeds and future digests.

    The raw source stays in the store. An unchanged source file does not bring the article
    back; delete the file too, or it returns the next time the file changes.
    """
    from publisher import clock, removal

    config = _config(ctx)
    with _store(config) as store:
        done = removal.remove_articles(config, store, ids, clock.now())
    for key in done.removed:
        click.echo(f"removed {key}")
    for key in done.missing:
        _stderr(f"{key}: no such article (see `publisher articles list`)", article=key)
    _report_published(done.published)
    ctx.exit(0 if done.ok else 1)


@main.group(
    name="digest",
    short_help="Preview, test, send, hold or resume the email digest.",
    epilog=_examples(
        "publisher digest preview --open",
        "publisher digest preview --last",
        "publisher digest test --to me@example.org",
        "publisher digest hold",
    ),
)
def digest_group() -> None:
    """Preview or send the email digest of articles not yet mailed; send a test, or resume an unfinished send."""


@digest_group.command(
    short_help="Write the next (or a stored) digest as files.",
    epilog=_examples(
        "publisher digest preview --open",
        "publisher digest preview --last --out /tmp/last",
        "publisher digest preview --id 20261124-070000-3fa2c1d0",
    ),
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for the preview files [default: preview/ beside publisher.toml].",
)
@click.option("--open", "open_it", is_flag=True, help="Open the .html file in the web browser ($BROWSER) afterwards.")
@click.option("--id", "digest_id", metavar="DIGEST_ID", default=None, help="A stored digest (see `digest list`).")
@click.option("--last", is_flag=True, help="The newest stored digest: the one sent last, or being sent.")
@click.option("--digest", "name", metavar="NAME", default=None, help="Which [[digest]] [default: the first].")
@click.pass_context
def preview(
    ctx: click.Context, out: Path | None, open_it: bool, digest_id: str | None, last: bool, name: str | None
) -> None:
    """Write the next digest as .html, .txt and .eml files; sends and marks nothing.

    With --id or --last, a stored digest instead, as it was sent. Creates no store where there is none.
    """
    import webbrowser

    from publisher import clock, previews

    if digest_id is not None and last:
        raise click.UsageError("--id and --last: give one of them")
    config = _config(ctx)
    with _existing_store(ctx, config) as store:
        chosen = previews.choose(config, store, clock.now(), digest_id=digest_id, last=last, name=name)
    if chosen.shown is None:
        offer = f"; `publisher digest preview --last` shows the last one, {chosen.newest.id}" if chosen.newest else ""
        click.echo(f"digest: nothing new since the last digest, nothing to preview{offer}")
        return
    paths = previews.write(chosen.shown, out or config.path.parent / "preview")
    for path in paths:
        click.echo(str(path))
    # webbrowser, not click.launch: it honours $BROWSER, where click.launch runs xdg-open on Linux.
    if open_it and not webbrowser.open(paths[0].resolve().as_uri()):
        _stderr(f"no web browser to open {paths[0]} (set BROWSER)", path=paths[0])
        ctx.exit(1)


@digest_group.command(
    name="list",
    short_help="The stored digests, newest first.",
    epilog=_examples(
        "publisher digest list", 'publisher digest preview --id "$(publisher digest list | head -1 | cut -f1)"'
    ),
)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many to show.")
@click.option("--digest", "name", metavar="NAME", default=None, help="Only this [[digest]]'s [default: all].")
@click.pass_context
def list_digests(ctx: click.Context, limit: int, name: str | None) -> None:
    """One line per stored digest, newest first: id, state, created, articles, subject; tab-separated.

    Creates no store where there is none.
    """
    from publisher import previews

    config = _config(ctx)
    with _existing_store(ctx, config) as store:
        for d in previews.listed(config, store, limit, name):
            click.echo(f"{d.id}\t{d.state}\t{d.created_at.isoformat()}\t{d.article_count}\t{_escaped(d.subject)}")


@digest_group.command(
    short_help="Keep the next digest from going out until released.",
    epilog=_examples("publisher digest hold", "publisher digest release"),
)
@click.pass_context
def hold(ctx: click.Context) -> None:
    """Hold the next digest: `run`, `digest send` and the daemon send none until `publisher digest release`.

    The articles stay in the feeds, and go out in the first digest after the release. A digest
    whose sending had begun is not held: `publisher digest resume` finishes it.
    """
    from publisher import clock
    from publisher import hold as holds

    with _store(_config(ctx)) as store:
        since = holds.hold(store, clock.now())
    click.echo(f"digest: held since {since.isoformat()}; `publisher digest release` lets the next one go out")


@digest_group.command(
    short_help="Let the next digest go out again (after `hold`).",
    epilog=_examples("publisher digest release"),
)
@click.pass_context
def release(ctx: click.Context) -> None:
    """Undo `publisher digest hold`: the next run, or the daemon's next slot, sends the digest."""
    from publisher import hold as holds

    config = _config(ctx)
    with _existing_store(ctx, config) as store:
        since = holds.release(store)
    click.echo(f"digest: released (held since {since.isoformat()})" if since else "digest: was not held")


@digest_group.command(
    name="test",
    short_help="Send the next digest to these addresses only.",
    epilog=_examples(
        "publisher digest test --to me@example.org", "publisher digest test --to me@example.org --to editor@example.org"
    ),
)
@click.option(
    "--to",
    "addresses",
    multiple=True,
    required=True,
    metavar="ADDRESS",
    help="Send the test to this address (repeat --to for more).",
)
@click.option("--digest", "name", metavar="NAME", default=None, help="Which [[digest]] [default: the first].")
@click.pass_context
def send_test(ctx: click.Context, addresses: tuple[str, ...], name: str | None) -> None:
    """Send the next digest to the --to addresses only, with "[TEST]" before its subject.

    Marks nothing: the next `publisher run` still sends the digest to everyone.
    """
    from publisher import clock, dispatch, membership
    from publisher.delivery import build_mailer

    valid, bad = membership.normalized(addresses)
    for line in bad:
        _stderr(f"--to {line}")
    if bad:
        ctx.exit(2)
    config = _config(ctx)
    config = config if name is None else config.for_digest(name)
    mailer = build_mailer(config)
    with _store(config) as store:
        result = dispatch.send_test(config, store, mailer, valid, clock.now())
    _outcome(result, provider=mailer.name)
    ctx.exit(0 if result.ok else 1)


@digest_group.command(short_help="Send the digest now if anything is new.", epilog=_examples("publisher digest send"))
@click.option(
    "--resend-in-doubt",
    is_flag=True,
    help="Resend a digest whose earlier send was interrupted (it may have been delivered).",
)
@click.option("--digest", "name", metavar="NAME", default=None, help="Only this [[digest]] [default: each].")
@click.pass_context
def send(ctx: click.Context, resend_in_doubt: bool, name: str | None) -> None:
    """Send the digest now if anything is new (without ingesting first); with several, each one."""
    from publisher import clock
    from publisher.config import check_ready
    from publisher.delivery import build_mailer

    config = _config(ctx)
    check_ready(config, articles=False)
    mailer = build_mailer(config)
    with _store(config) as store:
        results = [
            _send(each, store, mailer, clock.now(), resend_in_doubt=resend_in_doubt)
            for each in config.chosen_digests(name)
        ]
    ctx.exit(0 if all(result.ok for result in results) else 1)


@digest_group.command(
    name="resume",
    short_help="Finish an unsent digest: the batches not yet accepted.",
    epilog=_examples("publisher digest resume", "publisher digest resume --retry-failed"),
)
@click.option(
    "--resend-in-doubt",
    is_flag=True,
    help="Also resend batches in doubt (check the mail provider's log first: they may have been delivered).",
)
@click.option("--retry-failed", is_flag=True, help="Also retry batches the provider refused (fix the cause first).")
@click.pass_context
def resume_digest(ctx: click.Context, resend_in_doubt: bool, retry_failed: bool) -> None:
    """Continue an unfinished digest: send only the batches not yet accepted; never starts a new one.

    `publisher status` shows which batches failed or are in doubt, and why.
    """
    from publisher import clock, resume
    from publisher.delivery import build_mailer

    config = _config(ctx)
    mailer = build_mailer(config)
    with _store(config) as store:
        if resume.resumable(store, resend_in_doubt, retry_failed):
            flags = {"resend_in_doubt": resend_in_doubt, "retry_failed": retry_failed}
            if len(config.digests) == 1:
                ctx.exit(0 if _send(config, store, mailer, clock.now(), **flags).ok else 1)
            # Several digests: each continues its own unsent one (none is started)
            results = [
                _send(each, store, mailer, clock.now(), create=False, **flags) for each in resume.waiting(config, store)
            ]
            ctx.exit(0 if all(result.ok for result in results) else 1)
        held = resume.held_back(store)
    if not held:
        click.echo("digest: nothing to resume (no digest is waiting to be sent)")
        return
    for digest in held:
        _stderr(_held_line(digest), digest_id=digest.digest_id)
    ctx.exit(1)


@digest_group.command(
    name="close",
    short_help="Leave an incomplete digest as it is.",
    epilog=_examples("publisher digest close 20261124-070000-3fa2c1d0"),
)
@click.argument("digest_ids", metavar="DIGEST_ID...", nargs=-1, required=True)
@click.pass_context
def close_digest(ctx: click.Context, digest_ids: tuple[str, ...]) -> None:
    """Leave an incomplete digest as it is: its batches in doubt were delivered (the provider's
    log has them), or its failed ones are given up. It is no longer reported by `publisher run`
    and `publisher status --check`; `publisher status` still shows who was not reached."""
    from publisher import journal

    config = _config(ctx)
    missing = False
    with _store(config) as store:
        for digest_id in digest_ids:
            if journal.close(store, digest_id):
                click.echo(f"digest {digest_id}: closed")
            else:
                _stderr(f"digest {digest_id}: not an incomplete digest, nothing closed (see `publisher status`)")
                missing = True
    ctx.exit(1 if missing else 0)


def _send(config: Config, store: Store, mailer: Mailer, when: datetime, **options: bool) -> SendResult:
    """Send (or continue) the digest with its progress shown, then its outcome as one line."""
    from publisher import dispatch, progress

    with progress.Display() as shown:
        result = dispatch.send_digest(config, store, mailer, when, on_batch=shown.batch, **options)
    _outcome(result, digest_id=result.digest_id, provider=mailer.name)
    return result


def _held_line(held: resume.HeldBack) -> str:
    """What keeps an incomplete digest from being resumed without a flag."""
    flags = []
    if held.in_doubt:
        flags.append(f"{_count(held.in_doubt, 'batch', 'batches')} in doubt: --resend-in-doubt")
    if held.failed:
        flags.append(f"{_count(held.failed, 'batch', 'batches')} failed: --retry-failed")
    return f"digest {held.digest_id}: nothing resumed without a flag ({'; '.join(flags)}; see `publisher status`)"


def _count(n: int, noun: str, plural: str = "") -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


# -- subscribers --------------------------------------------------------------------------------


@main.group(
    name="subscribers",
    short_help="Manage the local subscriber list.",
    epilog=_examples("publisher subscribers import readers.csv", "publisher subscribers list --all"),
)
def subscribers_group() -> None:
    """Manage the local subscriber list (used when [digest] recipients = "subscribers")."""


@subscribers_group.command(
    name="import",
    short_help="Add the addresses in a CSV file.",
    epilog=_examples("publisher subscribers import readers.csv"),
)
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(path_type=Path))
@click.pass_context
def import_subscribers(ctx: click.Context, csv_file: Path) -> None:
    """Add the addresses in a CSV file: an `email` column (else the first column), optional `name`.

    Duplicates merge, ignoring case. Addresses that unsubscribed stay unsubscribed, and erased
    ones (`subscribers forget`) are never added. Each bad row is reported as FILE:LINE and the
    others are still imported; then the exit status is 1.
    """
    from publisher import clock, gdpr, progress, subscribers

    config = _config(ctx)
    with _store(config) as store:
        with progress.Display() as shown:
            rows = shown.rows(str(csv_file))
            result = subscribers.import_csv(store, csv_file, clock.now(), rows, gdpr.key_if_set(config))
        active = subscribers.active_count(store)
    for line in result.errors:
        _stderr(line, prefix="", path=csv_file)
    click.echo(
        f"subscribers: {result.added} added, {result.already} already on the list, "
        f"{result.kept_unsubscribed} kept unsubscribed, "
        + (f"{result.forgotten} erased on request not added, " if result.forgotten else "")
        + f"{_count(len(result.errors), 'bad row')}; {active} active"
    )
    _note_unused_list(config)
    ctx.exit(1 if result.errors else 0)


@subscribers_group.command(
    name="add",
    short_help="Subscribe addresses.",
    epilog=_examples("publisher subscribers add ada@example.org 'Grace <grace@example.org>'"),
)
@click.argument("addresses", metavar="ADDRESS...", nargs=-1, required=True)
@click.pass_context
def add_subscribers(ctx: click.Context, addresses: tuple[str, ...]) -> None:
    """Subscribe the ADDRESSes; one that had unsubscribed is subscribed again, one erased on request never."""
    from publisher import clock, gdpr, membership

    config = _config(ctx)
    valid, bad = membership.normalized(addresses)
    for line in bad:
        _stderr(line)
    with _store(config) as store:
        changes = membership.subscribe(store, valid, clock.now(), forget_key=gdpr.key_if_set(config))
    for change in changes:
        if change.outcome == membership.Outcome.FORGOTTEN:
            bad.append(_change_line(change))
            _stderr(bad[-1])
        else:
            click.echo(_change_line(change))
    _note_unused_list(config)
    ctx.exit(1 if bad else 0)


@subscribers_group.command(
    name="remove", short_help="Unsubscribe addresses.", epilog=_examples("publisher subscribers remove ada@example.org")
)
@click.argument("addresses", metavar="ADDRESS...", nargs=-1, required=True)
@click.pass_context
def remove_subscribers(ctx: click.Context, addresses: tuple[str, ...]) -> None:
    """Unsubscribe the ADDRESSes. They stay on the list as unsubscribed, so an import cannot add them back."""
    from publisher import clock, membership

    config = _config(ctx)
    with _store(config) as store:
        changes = membership.unsubscribe(store, addresses, clock.now())
    unknown = [change.address for change in changes if change.outcome == membership.Outcome.UNKNOWN]
    for change in changes:
        if change.outcome != membership.Outcome.UNKNOWN:
            click.echo(_change_line(change))
    for address in unknown:
        _stderr(f"{address.strip()!r}: not on the list (see `publisher subscribers list`)")
    ctx.exit(1 if unknown else 0)


_CHANGES = {
    "added": "added {}",
    "resubscribed": "resubscribed {}",
    "already_subscribed": "{}: already subscribed",
    "unsubscribed": "unsubscribed {}",
    "already_unsubscribed": "{}: already unsubscribed",
    "forgotten": "{}: erased at the reader's request (`subscribers forget`); not added",
}


def _change_line(change: membership.Change) -> str:
    return _CHANGES[change.outcome].format(change.address)


@subscribers_group.command(
    name="list",
    short_help="Print the subscribed addresses.",
    epilog=_examples("publisher subscribers list", "publisher subscribers list --all"),
)
@click.option("--all", "everyone", is_flag=True, help="Include unsubscribed addresses, each followed by its state.")
@click.pass_context
def list_subscribers(ctx: click.Context, everyone: bool) -> None:
    """Print the subscribed addresses, one per line and nothing else (the count goes to stderr)."""
    from publisher import subscribers

    config = _config(ctx)
    with _existing_store(ctx, config) as store:
        people = subscribers.listing(store, include_unsubscribed=everyone)
    for person in people:
        click.echo(f"{person.email}\t{person.state}" if everyone else person.email)
    active = sum(person.state == SubscriberState.ACTIVE for person in people)
    pending = sum(person.state == SubscriberState.PENDING for person in people)
    counted = f"{active} active" + (f", {len(people) - active - pending} unsubscribed" if everyone else "")
    counted += f", {pending} pending" if pending else ""
    _stderr(f"subscribers: {counted}", prefix="", level=logging.INFO)


@subscribers_group.command(
    name="sync-suppressions",
    short_help="Suppress the addresses on the mail provider's suppression list.",
    epilog=_examples("publisher subscribers sync-suppressions"),
)
@click.pass_context
def sync_suppressions(ctx: click.Context) -> None:
    """Read the [mailer] provider's own list of bounced and complained addresses (Postmark,
    SendGrid, Mailgun, SES) and suppress each one still active on the local list."""
    from publisher import clock
    from publisher.bounces import sync

    config = _config(ctx)
    with _store(config) as store:
        result = sync.sync(config, store, clock.now())
    click.echo(f"suppressions: {result.listed} on {result.provider}'s list, {result.suppressed} suppressed here now")
    _note_unused_list(config)


@subscribers_group.command(
    name="export",
    short_help="Print all that is stored about a reader, as JSON.",
    epilog=_examples("publisher subscribers export ada@example.org > ada.json"),
)
@click.argument("address", metavar="ADDRESS")
@click.pass_context
def export_subscriber(ctx: click.Context, address: str) -> None:
    """Print all that is stored about ADDRESS as JSON: the subscriber, their topics, the batches
    they were in (a GDPR access request)."""
    from publisher import gdpr

    config = _config(ctx)
    with _existing_store(ctx, config) as store:
        try:
            click.echo(gdpr.export(config, store, address))
        except gdpr.NotOnList as exc:
            _stderr(str(exc))
            ctx.exit(1)


@subscribers_group.command(
    name="forget",
    short_help="Erase a reader for good (GDPR).",
    epilog=_examples("publisher subscribers forget ada@example.org"),
)
@click.argument("address", metavar="ADDRESS")
@click.pass_context
def forget_subscriber(ctx: click.Context, address: str) -> None:
    """Erase all that is stored about ADDRESS, keeping only a one-way keyed hash of it so that no
    import or add brings it back (a GDPR erasure request)."""
    from publisher import clock, gdpr

    config = _config(ctx)
    with _store(config) as store:
        try:
            gdpr.forget(config, store, address, clock.now())
        except gdpr.NotOnList as exc:
            _stderr(str(exc))
            ctx.exit(1)
    click.echo(f"erased {address.strip()}: only a one-way hash of the address is kept")


def _note_unused_list(config: Config) -> None:
    if config.digest.recipients != "subscribers":
        _stderr(
            f'{config.path.name} sends the digest to [digest] to; set [digest] recipients = "subscribers" '
            "to send it to this list",
            prefix="note: ",
            level=logging.WARNING,
        )


@main.group(
    name="db",
    short_help="Upgrade the store's schema, or copy the store.",
    epilog=_examples("publisher db upgrade", "publisher db copy --to postgresql+psycopg://db.example.org/news"),
)
def db_group() -> None:
    """The store's database: bring its schema up to date, or copy the store to another database."""


@db_group.command(
    name="upgrade",
    short_help="Apply the store's migrations and the cluster's job tables.",
    epilog=_examples("publisher db upgrade"),
)
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply the store's migrations and, on PostgreSQL, Procrastinate's schema for `publisher daemon`."""
    from publisher.cluster.schema import upgrade

    for line in upgrade(_config(ctx).store_url):
        click.echo(line)


@db_group.command(
    name="copy",
    short_help="Copy the store, every id kept, into an empty database.",
    epilog=_examples("publisher db copy --to postgresql+psycopg://db.example.org/news"),
)
@click.option("--to", "target", required=True, metavar="URL", help="SQLAlchemy URL of the empty database.")
@click.pass_context
def db_copy(ctx: click.Context, target: str) -> None:
    """Copy the store into the empty database at URL (SQLite to PostgreSQL, say) with every id,
    digest, journal row and feed entry id kept; then point [store] url at it."""
    from publisher.store import safe_url
    from publisher.store.copy import copy_store

    config = _config(ctx)
    total = copy_store(config.store_url, target, on_table=lambda name, n: click.echo(f"{name}: {n}"))
    click.echo(f"db copy: {total} rows copied to {safe_url(target)}; set [store] url to it to use the copy")


@main.command(
    short_help="Run the digest on its schedule, refresh the feeds often.",
    epilog=_examples(
        "publisher daemon",
        "publisher -v daemon                 # with APScheduler's own log",
        "PUBLISHER_CONFIG=/srv/news/publisher.toml publisher daemon",
    ),
)
@click.pass_context
def daemon(ctx: click.Context) -> None:
    """Run the digest on [digest] schedule and refresh feeds every few minutes; stop with SIGTERM or Ctrl-C."""
    from publisher.config import check_ready
    from publisher.scheduler import run_daemon
    from publisher.signals import stop_on_signals

    config = _config(ctx)
    check_ready(config, articles=True)
    stop = threading.Event()
    with stop_on_signals(stop.set):
        run_daemon(config, stop, ready=lambda line: click.echo(line))
    click.echo("daemon: stopped")


@main.command(
    short_help="Articles, recent digests, the next digest, problems.",
    epilog=_examples(
        "publisher status",
        "publisher status --check || echo 'publisher needs you'",
        "publisher status --json | jq .next_digest",
    ),
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object (documented in the README), for monitoring.")
@click.option(
    "--check", is_flag=True, help="Exit 1 with one line per problem when something needs you; `ok` and 0 otherwise."
)
@click.pass_context
def status(ctx: click.Context, as_json: bool, check: bool) -> None:
    """Show the articles stored, the last digest and its state, and the next scheduled digest.

    Also the batches of the recent digests (accepted, failed and why, in doubt, pending), the
    recipients they reached, what to do about the ones that did not go out, the WebSub hubs
    that are down, and the size of the subscriber list. Creates no store where there is none.
    """
    import json

    from publisher import clock, report

    config = _config(ctx)
    shown = report.status(config, clock.now())
    if as_json:
        click.echo(json.dumps(_redacted(report.as_json(config, shown)), indent=2, ensure_ascii=False))
    elif check:
        for problem in shown.problems:
            click.echo(logs.redact(problem.message))
        if not shown.problems:
            click.echo("ok")
    else:
        for line in _status_lines(shown):
            click.echo(logs.redact(line))  # stored errors are a provider's words
    ctx.exit(1 if check and shown.problems else 0)


def _redacted(value: Any) -> Any:
    """``value`` (JSON-able) with the secrets replaced in every string."""
    if isinstance(value, str):
        return logs.redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def _status_lines(shown: report.StatusReport) -> Iterator[str]:
    facts = shown.facts
    if not facts.exists:
        yield f"store: {facts.store}, no store yet (`publisher run` creates it)"
    else:
        yield f"store: {facts.store} (schema v{facts.schema_version})"
    newest = facts.newest
    yield f"articles: {facts.articles}" + (
        f", newest {newest.published.isoformat()} {newest.title!r}" if newest else ""
    )
    listed = facts.subscribers
    if shown.active is not None and listed is not None:
        line = f"subscribers: {shown.active} active, {shown.unsubscribed} unsubscribed"
        for state in (SubscriberState.BOUNCED, SubscriberState.COMPLAINED):  # suppressed: publisher.bounces
            if listed.get(state):
                line += f", {listed[state]} {state}"
        yield line + (f", {shown.pending} pending" if shown.pending else "")  # signed up, not confirmed yet
    if facts.signups is not None:
        week, month = facts.signups["7d"], facts.signups["30d"]
        yield (
            f"sign-ups: {week['signups']} in 7 days, {month['signups']} in 30; "
            f"confirmed: {week['confirmations']} in 7 days, {month['confirmations']} in 30"
        )
    if facts.bounces is not None:
        from publisher.bounces import watch

        yield watch.line(facts.bounces)
        if (over := watch.warning(facts.bounces)) is not None:
            yield f"warning: {over}"
    yield from _last_digest_lines(shown.last)
    for digest in shown.digests:
        yield from _journal_lines(digest)
    for hub in facts.hubs:
        when = f", next try after {hub.retry_at.isoformat()}" if hub.retry_at else ""
        down = f"down ({hub.error}), " if hub.failures else ""
        yield f"websub: {hub.hub}: {down}{_count(len(hub.topics), 'feed')} to announce{when}"
    for each in shown.upcoming:  # several digests
        at = each.at.isoformat() if each.at else "never"
        yield f"next digest {each.name}: {at} ('{each.schedule}', {each.timezone})"
    if not shown.upcoming:
        upcoming = facts.next_digest.isoformat() if facts.next_digest else "never"
        yield f"next digest: {upcoming} ('{shown.schedule}', {shown.timezone})"
    if facts.held_since is not None:
        yield (
            f"digest hold: held since {facts.held_since.isoformat()}: no digest goes out until "
            "`publisher digest release`"
        )
    if facts.cluster is not None:
        yield from _cluster_lines(facts.cluster)


def _cluster_lines(cluster: health.ClusterStatus) -> Iterator[str]:
    """The daemons of a PostgreSQL store and their jobs (publisher.cluster)."""
    jobs = cluster.jobs
    yield (
        f"cluster: {_count(cluster.alive, 'daemon')} alive; jobs: {jobs.queued} queued, {jobs.running} running, "
        f"{jobs.stalled} stalled, {jobs.failed} failed"
    )
    for worker in cluster.workers:
        state = "alive" if worker.alive else "silent: its jobs go to another daemon after [daemon] stall_seconds"
        yield f"  daemon {worker.id}: last heartbeat {worker.last_heartbeat.isoformat()}, {state}"


def _last_digest_lines(last: report.LastDigest | None) -> Iterator[str]:
    if last is None:
        yield "last digest: none yet"
        return
    d = last.digest
    line = f"last digest: {d.id} {d.state}, {_count(d.article_count, 'article')}, created {d.created_at.isoformat()}"
    line += f", sent {last.sent_at.isoformat()}" if last.sent_at else ""
    line += f", last tried {last.tried_at.isoformat()}" if last.tried_at else ""
    line += f", {last.attempts} attempts" if last.attempts is not None else ""
    yield line
    if d.last_error:
        yield f"last error: {d.last_error}"


def _journal_lines(shown: report.DigestReport) -> list[str]:
    """A digest's batches by state and the recipients reached; each failed or in-doubt batch
    with its reason, and the advice the report gives."""
    sent = shown.digest
    if not shown.counts:
        return [f"digest {sent.id}: {sent.state}, no batches recorded"]
    counted = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in shown.counts)
    if shown.provider_list:
        reached = "recipients: the provider's own list"
    else:
        reached = f"{shown.reached} of {_count(shown.recipients, 'recipient')} reached"
        reached += f" ({shown.refused} refused by {shown.provider})" if shown.refused else ""
    lines = [f"digest {sent.id}: {sent.state}; batches: {counted}; {reached}"]
    for batch in shown.unfinished:
        lines.append(
            f"  batch {batch.number} {batch.state.replace('_', ' ')}: {batch.last_error or 'no reason recorded'}"
        )
    return lines + [f"  {_advice_line(advice, shown)}" for advice in shown.advice]


def _advice_line(advice: str, shown: report.DigestReport) -> str:
    if advice == "check_in_doubt":
        return (
            f"to do: the batches in doubt may have been delivered: look for {', '.join(shown.in_doubt_keys)} in "
            f"{shown.provider}'s log; if they were not delivered, run `publisher digest resume --resend-in-doubt`"
        )
    if advice == "retry_failed":
        return "to do: fix what made the batches fail, then run `publisher digest resume --retry-failed`"
    return f"or, to leave it as it is, `publisher digest close {shown.digest.id}`"


@main.command(
    short_help="Serve the feeds and the unsubscribe links over HTTP.",
    epilog=_examples("publisher serve", "publisher serve --host 0.0.0.0 --port 8000"),
)
@click.option("--host", default=None, help="Address to listen on [default: [server] host, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: [server] port, 8080].")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the feeds folder over HTTP (ETag, 304, gzip) and the unsubscribe links; stop with Ctrl-C or SIGTERM."""
    from publisher.server import serve as run_server

    config = _config(ctx)
    run_server(config, host=host or config.server.host, port=config.server.port if port is None else port)
