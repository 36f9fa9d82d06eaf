"""How a source is doing, in words: the failing line of a run, and ``publisher sources list``."""

from __future__ import annotations

from datetime import datetime, timedelta

from publisher.config import Config, SourceConfig
from publisher.store import Store
from publisher.store import remote as state
from publisher.store.remote import RemoteSource


def failing(source: SourceConfig, known: RemoteSource, now: datetime) -> tuple[bool, str] | None:
    """None for a source that works; else whether it has failed for ``alert_after`` (an error
    for the run) and the line that says so."""
    if known.failing_since is None or known.last_error is None:
        return None
    since = now - known.failing_since
    retry = f"next try {known.next_fetch:%Y-%m-%d %H:%M} UTC" if known.next_fetch else "next run"
    if since >= source.alert_after:
        return True, f"failing for {age(since)}: {known.last_error}; {retry}"
    return False, f"{known.last_error} (failing for {age(since)}; {retry})"


def overview(config: Config, store: Store, now: datetime) -> list[str]:
    """One line per configured source, tab-separated: name, items, last success, next fetch,
    and ``ok`` or since when it fails and why (``publisher sources list``)."""
    known = {s.name: s for s in state.sources(store)}
    lines = []
    for source in config.sources:
        s = known.get(source.name)
        if s is None or s.configured_url != source.url:
            lines.append(f"{source.name}\t0 items\tlast success never\tnext fetch now\tnot fetched yet")
            continue
        success = f"{s.last_success:%Y-%m-%d %H:%M} UTC" if s.last_success else "never"
        due = f"{s.next_fetch:%Y-%m-%d %H:%M} UTC" if s.next_fetch and s.next_fetch > now else "now"
        if s.failing_since is not None:
            health = f"failing since {s.failing_since:%Y-%m-%d %H:%M} UTC ({s.failures}x): {s.last_error}"
        elif s.last_error is not None and s.last_error_at is not None:
            health = f"ok (last error {s.last_error_at:%Y-%m-%d %H:%M} UTC: {s.last_error})"
        else:
            health = "ok"
        lines.append(f"{source.name}\t{s.items} items\tlast success {success}\tnext fetch {due}\t{health}")
    return lines


def age(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"
    return f"{minutes // 1440} days"
