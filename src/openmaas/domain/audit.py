"""The audit log: every mutation leaves an event, written in its own transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openmaas.domain.context import Ctx
from openmaas.domain.pages import Page, page_of
from openmaas.domain.principal import Principal
from openmaas.store.metadata.tables import AuditEvent


def record(
    session: Session,
    principal: Principal,
    action: str,
    resource_type: str,
    resource_id: object = "",
    *,
    project_id: int | None = None,
    org_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add an audit event to ``session``: it commits or rolls back with the change."""
    session.add(
        AuditEvent(
            actor_id=principal.user_id,
            actor=principal.username,
            action=action,
            resource_type=resource_type,
            resource_id=str(resource_id),
            project_id=project_id,
            org_id=org_id,
            client_addr=principal.client_addr,
            details=details or {},
        )
    )


def list_events(
    ctx: Ctx,
    *,
    project_id: int | None = None,
    org_id: int | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[AuditEvent]:
    """Events newest first; callers check access before calling."""
    q = select(AuditEvent)
    if project_id is not None:
        q = q.where(AuditEvent.project_id == project_id)
    if org_id is not None:
        q = q.where(AuditEvent.org_id == org_id)
    if action:
        q = q.where(AuditEvent.action == action)
    if actor:
        q = q.where(AuditEvent.actor == actor)
    if since:
        q = q.where(AuditEvent.at >= since)
    with ctx.store.read() as s:
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = s.scalars(q.order_by(AuditEvent.id.desc()).limit(limit).offset(offset)).all()
    return page_of(list(rows), total, limit, offset)
