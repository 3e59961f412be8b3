"""System events: each becomes an audit record and/or a webhook, never carrying unmasked text.

One place decides what a revocation, an approval transition, a refused or cut exchange, a signed digest or a
dead-lettered webhook turns into, so the audit log and the ticketing integrations see the same facts:

| event                               | audit record (kind)      | webhook                 |
|-------------------------------------|--------------------------|-------------------------|
| revocation created / deleted        | `revocation`             | `revocation.created`    |
| approval requested / decided / ...  | `approval` (F4 gate)     | `approval.*`            |
| exchange refused by policy          | (its exchange record)    | `policy.denied`         |
| stream cut by a response rule       | (its exchange record)    | `stream.terminated`     |
| digest published                    | (the digest itself)      | `audit.digest`          |
| webhook given up (dead letter)      | `admin` (`webhook.dead_letter`) | —                |

Audit records of system events that belong to no client session go to the day's admin session
(`admin-<YYYYMMDD>`), next to the admin calls that caused them. Webhook payloads hold ids, names and masked
excerpts only (the webhooks package refuses raw-looking fields).
"""
from __future__ import annotations

from typing import Any

import structlog

from gateway.audit.record import Approval, PrincipalInfo, RecordBody, utc_now
from gateway.audit.service import AuditLog, admin_session
from gateway.exchange import Exchange, new_id
from gateway.webhooks import Dispatcher, WebhookEvent

log = structlog.get_logger("gateway.events")

EXCERPT_CHARS = 280


class Events:
    def __init__(self, audit: AuditLog | None, webhooks: Dispatcher | None) -> None:
        self.audit = audit
        self.webhooks = webhooks

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        if self.webhooks is None:
            return
        try:
            self.webhooks.emit(WebhookEvent(type_, data))  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:  # a payload the guard refuses is a bug here: never send it
            log.error("webhook_event_refused", type=type_, error=str(exc)[:200])

    # -- revocations ----------------------------------------------------------------------------------------------
    async def revocation(self, kind: str, rev: Any) -> None:
        public = rev.public()
        if self.audit is not None:
            time = utc_now()
            await self.audit.record_event(RecordBody(
                kind="revocation", record_id=new_id(), session_id=admin_session(time), time=time,
                principal=PrincipalInfo(sub=rev.created_by),
                detail={"event": kind, "revocation": {k: v for k, v in public.items() if v is not None}}))
        if kind == "revocation.created":
            self.emit("revocation.created", public)

    # -- approvals ------------------------------------------------------------------------------------------------
    async def approval(self, kind: str, approval: Any) -> None:
        """Every transition is an `approval` record in the requester's session; requested / decided / expired are
        also webhooks (a cancelled approval — the client left — only the record)."""
        public = approval.to_public()
        if self.audit is not None:
            time = utc_now()
            last = approval.decisions[-1] if approval.decisions and kind == "approval.decided" else None
            await self.audit.record_event(RecordBody(
                kind="approval", record_id=new_id(), request_id=approval.request_id or None,
                session_id=approval.session_id or admin_session(time), time=time,
                principal=PrincipalInfo(sub=last.by) if last is not None else PrincipalInfo(
                    sub=approval.requester.sub, groups=list(approval.requester.groups)),
                route=approval.path, method=approval.method,
                approval=Approval(approval_id=approval.id, state=approval.state, deciders=list(approval.deciders)),
                detail={"event": kind, "approval": {k: v for k, v in public.items() if v is not None}}))
        if kind in ("approval.requested", "approval.decided", "approval.expired"):
            self.emit(kind, {"approval_id": approval.id, **{k: v for k, v in public.items() if k != "id"}})

    # -- exchanges ------------------------------------------------------------------------------------------------
    def exchange_done(self, ex: Exchange) -> None:
        """Webhooks for refused and cut exchanges (their audit record is the exchange record itself)."""
        if self.webhooks is None or ex.error is None or ex.principal is None:
            return
        code = ex.error.code
        if code not in ("policy_denied", "stream_terminated"):
            return
        rec = ex.annotations.get("_audit")
        excerpt = (getattr(rec, "masked_request", None) or "")[:EXCERPT_CHARS] if rec is not None else ""
        data = {"request_id": ex.request_id, "session_id": ex.session_id, "rule": ex.rule, "route": ex.path,
                "requester": {"sub": ex.principal.sub, "groups": list(ex.principal.groups)},
                "message": ex.error.message, "excerpt": excerpt}
        self.emit("policy.denied" if code == "policy_denied" else "stream.terminated", data)

    # -- digests and dead letters ---------------------------------------------------------------------------------
    def digest_published(self, digest: dict[str, Any]) -> None:
        self.emit("audit.digest", {k: digest[k] for k in ("stream_id", "digest_seq", "last_seq", "last_hash",
                                                            "created_at", "public_key_id", "signature")})

    async def dead_letter(self, event: WebhookEvent, endpoint: str, reason: str, attempts: int) -> None:
        log.warning("webhook_dead_letter", type=event.type, id=event.id, endpoint=endpoint, reason=reason,
                    attempts=attempts)
        if self.audit is None:
            return
        time = utc_now()
        try:
            await self.audit.record_event(RecordBody(
                kind="admin", record_id=new_id(), session_id=admin_session(time), time=time,
                detail={"action": "webhook.dead_letter", "event_type": event.type, "event_id": event.id,
                        "event_time_ms": event.timestamp_ms, "endpoint": endpoint, "reason": reason,
                        "attempts": attempts}))
        except Exception as exc:  # noqa: BLE001 - the structured log line above is the fallback trace
            log.error("webhook_dead_letter_unrecorded", id=event.id, error=type(exc).__name__)
