"""The alert history the monitor writes (`tradehall.api.monitor`) and `GET /alerts` reads.

Functions take a sync `Session` first and do not commit (`Store.call` wraps each call in one
transaction), like `repositories` and `queries`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tradehall.store.models import AlertRecord
from tradehall.store.queries import Page, _page


def save_alert(
    session: Session,
    alert_id: str,
    *,
    rule: str,
    severity: str,
    status: str,
    value: float,
    started_at: datetime,
    resolved_at: datetime | None,
) -> None:
    """Insert a firing alert, or update it when it resolves (same id)."""
    row = session.get(AlertRecord, alert_id)
    if row is None:
        session.add(
            AlertRecord(
                id=alert_id,
                rule=rule,
                severity=severity,
                status=status,
                value=value,
                started_at=started_at,
                resolved_at=resolved_at,
            )
        )
        return
    row.status = status
    row.resolved_at = resolved_at


def list_alerts(
    session: Session,
    *,
    status: str | None = None,
    rule: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[AlertRecord]:
    """Alerts newest first (by when they fired), optionally of one status or rule."""
    query = select(AlertRecord)
    if status is not None:
        query = query.where(AlertRecord.status == status)
    if rule is not None:
        query = query.where(AlertRecord.rule == rule)
    return _page(session, query, AlertRecord.started_at, AlertRecord.id, str, limit, cursor)


def resolve_firing_alerts(session: Session, at: datetime) -> int:
    """Resolve, at `at`, the alerts a previous process left firing (a new monitor starts with none
    firing; a condition that still holds fires anew). The number resolved."""
    rows = list(session.scalars(select(AlertRecord).where(AlertRecord.status == "firing")))
    for row in rows:
        row.status = "resolved"
        row.resolved_at = at
    return len(rows)
