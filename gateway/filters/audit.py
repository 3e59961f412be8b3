"""The audit filter: one record per authenticated exchange, holding only what was masked.

Placement: after the policy (and approval) filters, so the request part it journals is what will be forwarded, and
its record names the decision; it records the *output* — the bytes the client receives, after every response
filter — through the chain's `on_output` / `on_finish` hooks, so replay reproduces what the client saw, chunk by
chunk, with each chunk's time since the first one.

- `on_request` (admission + strict journaling): a full spool refuses the exchange (503 audit_unavailable) before
  anything is forwarded, and so does a session whose chain head cannot be looked up (the store is down and the
  session was not chained since this process started); under `durability: strict` the request part is fsynced
  first.
- `on_output`: appends the chunk; while a response streams, strict mode journals new chunks every
  `journal_interval_s` so a crash keeps them.
- `on_finish`: seals and spools the record (strict: waits for its fsync) before the response may end; failure →
  503 / a cut stream, never a complete unrecorded response.
- `on_complete`: an exchange cut short (client gone, stream aborted) is recorded in the background with what it
  sent.

Unauthenticated attempts (401s) are not recorded: no principal, and an open door to fill the log. They stay in the
access log and metrics.

Text the client saw unmasked on purpose (reasoning `pass` for trusted groups) is masked again for the log: the
record then says so (`detail.log_masked`), since its chunks differ from what was sent.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.audit.record import (
    Approval,
    Decision,
    MaskedEvent,
    PrincipalInfo,
    RecordBody,
    utc_now,
)
from gateway.audit.service import AuditLog
from gateway.errors import GatewayError
from gateway.exchange import Exchange
from gateway.filters.base import CONTINUE, Filter, Respond, Verdict
from gateway.filters.masking import StreamMasker, masking_counts
from gateway.filters.policy import DECISION, REQUEST_JSON

STATE = "_audit"

TextMasker = Callable[[Exchange, str], tuple[str, Mapping[str, int]]]
"""Masks a text for the log with the detectors the exchange's policy masks in what is logged."""
LogStreamMasker = Callable[[Exchange], StreamMasker]


@dataclass
class _Recording:
    wall_start: float
    masked_request: str | None = None
    request_counts: dict[str, int] = field(default_factory=dict)
    events: list[MaskedEvent] = field(default_factory=list)
    t0: float | None = None
    journaled: int = 0
    last_journal: float = 0.0
    relog: StreamMasker | None = None
    log_counts: dict[str, int] = field(default_factory=dict)
    admitted: bool = False
    finished: bool = False


class AuditFilter(Filter):
    name = "audit"
    records_output = True

    def __init__(self, log: AuditLog, mask_text: TextMasker, log_stream: LogStreamMasker) -> None:
        self.log = log
        self.mask_text = mask_text
        self.log_stream = log_stream
        self.journal_interval_s = log.settings.journal_interval_s

    # -- request ------------------------------------------------------------------------------------------------
    async def on_request(self, ex: Exchange) -> Verdict:
        try:
            self.log.admit()
        except GatewayError as err:
            return Respond(err)
        rec = self._state(ex)
        try:
            await self.log.prepare(ex.session_id, new_session=ex.session_assigned)
        except GatewayError as err:
            rec.finished = True  # its record could not be chained either: refused unrecorded, like a full spool
            return Respond(err)
        rec.admitted = True
        self._mask_request(ex, rec)
        if self.log.strict:
            ex.mark("audit_journal_start")
            try:
                await self.log.begin(ex.request_id, self._body(ex, rec).model_dump(mode="python"))
            except GatewayError as err:
                return Respond(err)
            ex.mark("audit_journaled")
        return CONTINUE

    # -- response -----------------------------------------------------------------------------------------------
    def on_output(self, ex: Exchange, data: bytes) -> None:
        if ex.principal is None:
            return
        rec = self._state(ex)
        now = time.monotonic()
        if rec.t0 is None:
            rec.t0 = now
            decision = ex.annotations.get(DECISION)
            if decision is not None and decision.reasoning == "pass":
                rec.relog = self.log_stream(ex)
        text = data.decode("utf-8", "replace")
        if rec.relog is not None:
            text = rec.relog.feed(text)
        rec.events.append(MaskedEvent(t_ms=int((now - rec.t0) * 1000), data=text))
        if self.log.strict and rec.admitted and now - rec.last_journal >= self.journal_interval_s:
            rec.last_journal = now
            self.log.progress(ex.request_id, rec.events[rec.journaled:], self._response_facts(ex))
            rec.journaled = len(rec.events)

    async def on_finish(self, ex: Exchange) -> None:
        rec = ex.annotations.get(STATE)
        if ex.principal is None or (rec is not None and rec.finished):
            return
        rec = self._state(ex)
        rec.finished = True
        ex.mark("audit_commit_start")
        await self.log.commit(self._final_body(ex, rec), admitted=rec.admitted, new_session=ex.session_assigned)
        ex.mark("audit_recorded")

    def on_complete(self, ex: Exchange) -> None:
        rec = ex.annotations.get(STATE)
        if ex.principal is None or (rec is not None and rec.finished):
            return
        rec = self._state(ex)
        rec.finished = True
        body = self._final_body(ex, rec, cut=True)
        self.log.commit_later(body, new_session=ex.session_assigned)

    # -- building the record ------------------------------------------------------------------------------------
    def _state(self, ex: Exchange) -> _Recording:
        rec = ex.annotations.get(STATE)
        if rec is None:
            rec = _Recording(wall_start=ex.started_wall)
            ex.annotations[STATE] = rec
        return rec

    def _mask_request(self, ex: Exchange, rec: _Recording) -> None:
        if rec.masked_request is not None or ex.body is None:
            return
        rec.masked_request, rec.request_counts = mask_body(ex.body, lambda text: self.mask_text(ex, text),
                                                           ex.annotations.get(REQUEST_JSON))

    def _final_body(self, ex: Exchange, rec: _Recording, *, cut: bool = False) -> RecordBody:
        self._mask_request(ex, rec)
        if rec.relog is not None:
            tail = rec.relog.flush()
            if tail and rec.events:
                last = rec.events[-1]
                rec.events[-1] = MaskedEvent(t_ms=last["t_ms"], data=last["data"] + tail)
            rec.log_counts = dict(getattr(rec.relog, "counts", {}) or {})
            rec.relog = None
        return self._body(ex, rec, final=True, cut=cut)

    def _response_facts(self, ex: Exchange) -> dict[str, Any]:
        return {"response_status": ex.response_status, "response_content_type": ex.response_content_type or None}

    def _body(self, ex: Exchange, rec: _Recording, *, final: bool = False, cut: bool = False) -> RecordBody:
        p = ex.principal
        decision = ex.annotations.get(DECISION)
        approval = ex.annotations.get("approval")
        detail: dict[str, Any] = {}
        counts = dict(rec.request_counts)
        if final:
            for name, n in masking_counts(ex).items():
                counts[name] = counts.get(name, 0) + n
            if rec.log_counts:
                detail["log_masked"] = {"reason": "reasoning was shown unmasked (policy: pass)",
                                        "counts": rec.log_counts}
            if cut:
                detail["cut"] = "client_disconnected" if ex.annotations.get("client_disconnected") else "aborted"
            flagged = ex.annotations.get("flagged_rules")
            if flagged:
                detail["flagged_rules"] = list(flagged)
        return RecordBody(
            record_id=ex.request_id,
            request_id=ex.request_id,
            session_id=ex.session_id,
            time=utc_now(rec.wall_start),
            principal=PrincipalInfo.from_principal(p) if p is not None else None,
            route=ex.path,
            method=ex.method,
            dialect=str(ex.annotations.get("dialect") or ex.dialect),
            decision=Decision(action=decision.action if decision is not None else ex.decision,
                              rule=ex.rule) if (decision is not None or ex.decision) else None,
            approval=Approval(**approval) if isinstance(approval, dict) else None,
            masked_request=rec.masked_request,
            response_status=ex.response_status if final else None,
            response_content_type=(ex.response_content_type or None) if final else None,
            masked_response=list(rec.events) if final else [],
            masking_counts=counts,
            timings_us={k: int(v * 1000) for k, v in ex.timings.items()} if final else {},
            error=ex.error.code if (final and ex.error is not None) else None,
            detail=detail,
        )


def mask_body(body: bytes, mask: Callable[[str], tuple[str, Mapping[str, int]]],
              parsed: Any = None) -> tuple[str, dict[str, int]]:
    """The request body as text with every string masked: JSON bodies string by string (escapes decoded first,
    so `\\u0040` cannot hide an e-mail address), anything else as one text. `parsed`: the body already parsed
    (the policy filter's `REQUEST_JSON`), so it is not parsed twice."""
    counts: dict[str, int] = {}

    def m(text: str) -> str:
        masked, found = mask(text)
        for name, n in found.items():
            counts[name] = counts.get(name, 0) + n
        return masked

    if parsed is None:
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return m(body.decode("utf-8", "replace")), counts

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return m(node)
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, dict):
            return {m(k): walk(v) for k, v in node.items()}
        return node

    return json.dumps(walk(parsed), ensure_ascii=False, separators=(",", ":")), counts
