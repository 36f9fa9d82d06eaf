"""The complaint-rate watch: bounces and complaints over the last 7 and 30 days, and the share
of the mail sent that drew a complaint, against the 0.3% line past which Gmail and Yahoo
reject a bulk sender's mail. `publisher status` shows it; over the line it is a problem
(``status --check`` exits 1), since only the operator can act on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from publisher.states import MailEventKind
from publisher.store import Store, suppressions

LINE = 0.003  # complaints per message sent: Gmail's and Yahoo's bulk-sender limit (0.3%)
WINDOWS = (7, 30)  # days


@dataclass(frozen=True)
class Window:
    days: int
    sent: int  # recipients of the batches accepted in the window
    counts: dict[str, int]  # by MailEventKind

    @property
    def complaint_rate(self) -> float | None:
        """Complaints per message sent; None when nothing was sent."""
        return self.counts[MailEventKind.COMPLAINT] / self.sent if self.sent else None

    @property
    def over(self) -> bool:
        rate = self.complaint_rate
        return rate is not None and rate > LINE

    def as_json(self) -> dict[str, Any]:
        return {"days": self.days, "sent": self.sent, **self.counts, "complaint_rate": self.complaint_rate}


def watch(store: Store, now: datetime) -> list[Window]:
    with store.transaction() as conn:
        return [
            Window(days, suppressions.sent_since(conn, since), suppressions.counts_since(conn, since))
            for days in WINDOWS
            for since in [now - timedelta(days=days)]
        ]


def line(windows: list[Window]) -> str:
    """``bounces: 7 d: 1 hard, 2 soft, 0 complaints of 1200 sent (0.000%); 30 d: ...; line 0.3%``"""
    parts = []
    for w in windows:
        rate = "no mail sent" if w.complaint_rate is None else f"{w.complaint_rate:.3%} complaint rate"
        parts.append(
            f"{w.days} d: {w.counts[MailEventKind.HARD_BOUNCE]} hard, {w.counts[MailEventKind.SOFT_BOUNCE]} soft, "
            f"{w.counts[MailEventKind.COMPLAINT]} complaints of {w.sent} sent ({rate})"
        )
    return f"bounces: {'; '.join(parts)}; the line is {LINE:.1%}"


def warning(windows: list[Window]) -> str | None:
    """One line when a window's complaint rate is over the line, else None."""
    over = [w for w in windows if w.over]
    if not over:
        return None
    worst = max(over, key=lambda w: w.complaint_rate or 0.0)
    return (
        f"complaint rate {worst.complaint_rate:.2%} over the last {worst.days} days is over the {LINE:.1%} "
        "line Gmail and Yahoo reject bulk mail at: check what readers signed up for and how often they get it"
    )
