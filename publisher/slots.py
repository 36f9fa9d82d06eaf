"""Which digests are due, when ``publisher run`` (cron) serves several of them.

With one digest, cron is its schedule: every run sends it if anything is new, as ever. With
several ``[[digest]]`` blocks, each keeps its own ``schedule``: a digest is due once a slot of
its schedule has passed since the last run that handled it. Runs missed in between (the
machine was off three days) make one catch-up digest, not one per slot: the slots coalesce,
as the daemon's do. The first run to see a digest only notes the time; its first slot after
that is its first digest.

The time a digest was last handled is a store setting (``digest_slot:<name>``), written after
its send, so a run that dies before it sends the next run again (and that continues the same
unsent digest: the journal keeps it exactly-once).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from publisher import crontab
from publisher.config import Config, DigestConfig
from publisher.store import Store


def _setting(name: str) -> str:
    return f"digest_slot:{name}"


def due(config: Config, store: Store, now: datetime) -> list[str]:
    """The names of the digests a run at ``now`` creates (if anything is new for them)."""
    if len(config.digests) == 1:
        return [config.digest.name]
    return [d.name for d in config.digests if _slot_passed(d, store, now)]


def _slot_passed(digest: DigestConfig, store: Store, now: datetime) -> bool:
    handled = store.setting(_setting(digest.name))
    if handled is None:
        store.set_setting_once(_setting(digest.name), now.isoformat())
        return False
    # A slot at the very second of the last handling was that run's own: look after it.
    after = datetime.fromisoformat(handled) + timedelta(seconds=1)
    fire = crontab.trigger(digest.schedule, digest.timezone).get_next_fire_time(None, after)
    return fire is not None and fire <= now


def handled(config: Config, store: Store, name: str, now: datetime) -> None:
    """Digest ``name`` was dealt with at ``now``: its next slot is the next one after it."""
    if len(config.digests) > 1:
        store.put_setting(_setting(name), now.isoformat())
