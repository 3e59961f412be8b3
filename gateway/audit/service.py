"""The audit log as the running gateway uses it: one writer stream per process, spooled, shipped, digested.

Path of a record: the audit filter builds a `RecordBody` (masked only) → `commit` seals it into this process's
stream (`StreamChain`: stream and session links, hash) → the record spool (fsync, group commit) → the uploader
ships it to the store → every `digest_interval_s` a signed digest names the stream's position, published only once
every record it covers is stored (and copied to the anchor store, if one is configured).

Durability (`audit.durability`):
- strict: `begin` journals the request part (fsynced) before the request is forwarded; `commit` waits for the
  record's fsync before the response may end; streaming chunks are journaled as they go, so a crash keeps them.
- relaxed: `commit` queues the record and returns; nothing waits for the disk.

Fail closed: once the spool's backlog reaches `spool_max_bytes` (the store has been down that long) `admit`
refuses new exchanges with 503 `audit_unavailable`; records of exchanges already admitted are still taken.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from gateway.audit import layout, segment
from gateway.audit.canonical import canonical_bytes
from gateway.audit.chain import (
    Head,
    MemorySessionHeads,
    SessionHeads,
    StreamChain,
    spool_entry,
    store_head_loader,
)
from gateway.audit.closing import StreamRegistry, close_stream
from gateway.audit.digest import (
    DigestWriter,
    key_id,
    load_or_generate_private_key,
    public_key_pem,
)
from gateway.audit.journal import Journal, OpenExchange
from gateway.audit.record import MaskedEvent, PrincipalInfo, Record, RecordBody, utc_now
from gateway.audit.spool import Spool, SpoolFull
from gateway.audit.store import ObjectStore, iter_keys, store_from_uri
from gateway.audit.uploader import Uploader
from gateway.config import AuditSettings
from gateway.errors import GatewayError
from gateway.exchange import new_id

log = structlog.get_logger("gateway.audit")


def audit_unavailable(why: str) -> GatewayError:
    return GatewayError(503, "audit_unavailable",
                        f"The gateway cannot record this request right now ({why}), so it was not forwarded. "
                        "Retry later.", headers={"Retry-After": "5"})


class AuditStartupError(Exception):
    """The audit log cannot start (store unreachable or without conditional writes, spool locked, bad key)."""


def admin_session(time: str) -> str:
    """The session of system records that belong to no client session: one per UTC day, `admin-<YYYYMMDD>`."""
    return f"admin-{time[:10].replace('-', '')}"


def store_options(settings: AuditSettings, uri: str) -> dict[str, Any]:
    if not uri.startswith("s3://"):
        return {}
    s3 = settings.s3
    return {"endpoint_url": s3.endpoint_url, "region": s3.region, "access_key": s3.access_key_id,
            "secret_key": s3.secret_access_key.get_secret_value() if s3.secret_access_key else None,
            "addressing_style": s3.addressing_style}


class AuditLog:
    def __init__(self, settings: AuditSettings, *, spool_dir: str | None = None,
                 heads: SessionHeads | None = None, store: ObjectStore | None = None) -> None:
        self.settings = settings
        self.strict = settings.durability == "strict"
        self.spool_dir = os.path.abspath(spool_dir or settings.spool_dir)
        self._heads = heads
        # `is None`, not `or`: an empty MemoryStore is falsy (it has a __len__)
        self.store: ObjectStore = store if store is not None else store_from_uri(
            settings.store or "", **store_options(settings, settings.store or ""))
        """Built now (no I/O yet), so the admin API can hold it; `start` proves it works."""
        self.anchor: ObjectStore | None = None
        self.spool: Spool | None = None
        self.journal: Journal | None = None
        self.uploader: Uploader | None = None
        self.chain: StreamChain | None = None
        self.digests: DigestWriter | None = None
        self._lock_fd: int | None = None
        self._last_entry: asyncio.Future[int] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._digest_task: asyncio.Task[None] | None = None
        self._digest_lock = asyncio.Lock()
        self._closer: asyncio.Task[None] | None = None
        self._registry: StreamRegistry | None = None
        self.on_digest: Callable[[dict[str, Any]], None] | None = None
        """Called with every published digest (the `audit.digest` webhook)."""
        self.recovered = 0
        """Exchanges a previous process left open, sealed as `incomplete` records at start-up."""
        self._store_head = None
        self._spooled_heads: dict[str, Head] = {}
        """Newest record (session_seq, hash) per session among the records a previous process left in the spool
        (the store's index lags behind them until the uploader has shipped them); consumed when the session is
        first chained."""
        self._prefetched: dict[str, Head | None] = {}
        """Session heads looked up by `prepare` (before forwarding), consumed by the first commit of the session."""

    # -- lifecycle ----------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open everything, prove the store is append-only, finish what a crash left, start shipping."""
        s = self.settings
        try:
            self._take_lock()
            os.makedirs(os.path.dirname(os.path.abspath(s.signing_key)), exist_ok=True)
            key = load_or_generate_private_key(s.signing_key)
            self._write_public_key(key)
            if s.anchor_store:
                self.anchor = store_from_uri(s.anchor_store, **store_options(s, s.anchor_store))
            for store in (self.store, self.anchor):
                probe = getattr(store, "probe_conditional_writes", None)
                if probe is not None:
                    await probe()
            self.spool = Spool(os.path.join(self.spool_dir, "records"), max_bytes=s.spool_max_bytes)
            if self.strict:
                self.journal = Journal(os.path.join(self.spool_dir, "journal"), max_bytes=s.spool_max_bytes)
            open_exchanges = self.journal.recover() if self.journal is not None else []
            # before the uploader starts (it deletes segments as it ships them)
            spooled_ids = self._scan_spool({str(ox.begin.get("record_id")) for ox in open_exchanges})
        except AuditStartupError:
            raise
        except Exception as exc:
            raise AuditStartupError(f"audit log cannot start: {type(exc).__name__}: {exc}") from exc
        if self._heads is None:
            self._store_head = store_head_loader(self.store)
        heads = self._heads or MemorySessionHeads(recover=self._load_head)
        self.chain = StreamChain(heads)
        self.digests = DigestWriter(self.chain, key)
        self.uploader = Uploader(self.spool, self.store, batch=s.upload_batch, concurrency=s.upload_concurrency)
        self.uploader.start()  # ships first whatever a previous process left in the spool
        self._registry = StreamRegistry(self.spool_dir)
        unclosed = self._registry.open_streams()
        self._registry.add(self.chain.stream_id)
        if unclosed:
            self._closer = asyncio.create_task(self._close_streams(unclosed, key), name="audit-close-streams")
        if self.journal is not None:
            await self._recover(open_exchanges, spooled_ids)
        self._digest_task = asyncio.create_task(self._digest_loop(), name="audit-digests")
        log.info("audit_started", stream_id=self.chain.stream_id, durability=self.settings.durability,
                 public_key_id=key_id(key.public_key()), recovered=self.recovered)

    async def stop(self) -> None:
        """Finish pending records, ship what the drain time allows, sign a last digest, release everything."""
        if self._digest_task is not None:
            self._digest_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._digest_task
        for task in list(self._tasks):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        if self.uploader is not None:
            if self._closer is not None:
                self._closer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._closer
            drained = await self.uploader.drain(self.settings.shutdown_drain_s)
            if drained:
                with contextlib.suppress(Exception):
                    if await self.publish_digest(wait_s=1.0) is not None and self.chain is not None:
                        self._registry.remove(self.chain.stream_id)  # closed cleanly: nothing left to anchor
            else:
                log.warning("audit_spool_not_drained", backlog=self.spool.entries if self.spool else None,
                            detail="the rest ships at next start")
            await self.uploader.stop()
        close_heads = getattr(self.chain.heads, "close", None) if self.chain else None
        if close_heads is not None:
            with contextlib.suppress(Exception):
                await close_heads()
        if self.journal is not None:
            await self.journal.close()
        if self.spool is not None:
            await self.spool.close()
        for store in (self.store, self.anchor):
            if store is not None:
                await store.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _take_lock(self) -> None:
        """One process per spool directory: two writers would interleave frames."""
        os.makedirs(self.spool_dir, exist_ok=True)
        fd = os.open(os.path.join(self.spool_dir, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise AuditStartupError(f"audit spool {self.spool_dir} is in use by another gateway process; give each "
                                    "process its own audit.spool_dir") from None
        self._lock_fd = fd

    def _write_public_key(self, key: Any) -> None:
        """`<signing_key>.pub` for investigators. A read-only key directory (a mounted secret) is fine: the public
        key is also served at /admin/audit/digest, so failing to write it only warns."""
        path = self.settings.signing_key + ".pub"
        pem = public_key_pem(key.public_key())
        with contextlib.suppress(OSError), open(path, "rb") as f:
            if f.read() == pem:
                return
        try:
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(pem)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("audit_public_key_not_written", path=path, error=exc.strerror)

    @property
    def public_key(self) -> Any:
        return self.digests.key.public_key() if self.digests else None

    # -- the request path ---------------------------------------------------------------------------------------
    def admit(self) -> None:
        """Raise 503 audit_unavailable when the spool is full (the store has been unreachable too long)."""
        if self.spool is None or not self.spool.has_room():
            raise audit_unavailable("the audit spool is full while the audit store is unreachable")

    async def begin(self, request_id: str, fields: dict[str, Any]) -> None:
        """strict: the request part is fsynced before this returns (relaxed: nothing to do)."""
        if self.journal is None:
            return
        try:
            await self.journal.begin(request_id, fields)
        except SpoolFull:
            raise audit_unavailable("the audit journal is full") from None
        except OSError as exc:
            log.error("audit_journal_failed", error=type(exc).__name__)
            raise audit_unavailable("the audit journal cannot be written") from None

    async def prepare(self, session_id: str, *, new_session: bool = False) -> None:
        """Before an exchange is forwarded: make sure its session's chain can be continued. A session this process
        has not chained since it started needs its head from the store; looking it up here means a store outage
        refuses such an exchange (503 audit_unavailable) *before* it is forwarded, not after the backend answered.
        No-op for a session id the gateway just assigned, a session already known, or shared heads."""
        heads = self.chain.heads if self.chain is not None else None
        if (new_session or self._store_head is None or not isinstance(heads, MemorySessionHeads)
                or heads.head(session_id) is not None or session_id in self._prefetched):
            return
        try:
            head = await self._lookup_head(session_id)
        except Exception as exc:  # noqa: BLE001 - store unreachable (or failing): refuse, nothing forwarded
            log.warning("audit_session_lookup_failed", error=f"{type(exc).__name__}: {exc}")
            raise audit_unavailable("the audit store cannot be reached to continue this session") from None
        if heads.head(session_id) is None:  # else a concurrent exchange of the session chained it meanwhile
            if len(self._prefetched) >= 10_000:  # exchanges that never committed: forget the oldest
                self._prefetched.pop(next(iter(self._prefetched)))
            self._prefetched[session_id] = head

    async def _load_head(self, session_id: str) -> Head | None:
        """`MemorySessionHeads`' loader: where a session not chained since start continues."""
        if session_id in self._prefetched:
            head = self._prefetched.pop(session_id)
        else:
            head = await self._lookup_head(session_id)
        self._spooled_heads.pop(session_id, None)  # from now on the in-memory head is the newest
        return head

    async def _lookup_head(self, session_id: str) -> Head | None:
        """After the newest record of the session a previous process left in the spool, if any (those are not
        in the store's index yet: continuing from the store's head would fork the session), else the store's."""
        spooled = self._spooled_heads.get(session_id)
        if spooled is not None:
            return spooled
        return await self._store_head(session_id)

    async def _close_streams(self, stream_ids: list[str], key: Any) -> None:
        """Streams of earlier processes on this spool directory that never signed a final digest (killed): once
        what they spooled is stored, sign the digest each would have written at shutdown (see `closing`)."""
        while self.spool is not None and self.spool.entries > 0:
            await asyncio.sleep(0.2)
        for stream_id in stream_ids:
            try:
                digest = await close_stream(self.store, stream_id, key)
            except Exception as exc:  # noqa: BLE001 - retried at the next start; the verifier reports the tail
                log.warning("audit_stream_not_closed", stream_id=stream_id, error=f"{type(exc).__name__}: {exc}")
                continue
            log.info("audit_stream_closed", stream_id=stream_id,
                     last_seq=digest["last_seq"] if digest else None)
            self._registry.remove(stream_id)

    def _scan_spool(self, record_ids: set[str]) -> set[str]:
        """One pass over what a previous process left in the record spool: collects every session's newest record
        (`_spooled_heads`) and returns which of `record_ids` have a record there."""
        found: set[str] = set()
        for entry in self.spool.pending():
            for name, data in entry.objects:
                if layout.parse_spool_record_name(name) is None:
                    continue
                try:
                    meta = segment.meta_of(data)
                except ValueError:
                    continue  # the uploader raises the alarm for an entry it cannot ship
                known = self._spooled_heads.get(meta.session_id)
                if known is None or meta.session_seq > known[0]:
                    self._spooled_heads[meta.session_id] = (meta.session_seq, meta.hash)
                if record_ids:
                    found.update(m.decode() for m in _RECORD_ID.findall(data) if m.decode() in record_ids)
        return found

    def progress(self, request_id: str, events: list[MaskedEvent], response: dict[str, Any]) -> None:
        if self.journal is not None:
            self.journal.progress(request_id, list(events), response)

    async def commit(self, body: RecordBody, *, admitted: bool = True, new_session: bool = False,
                     wait: bool | None = None) -> Record:
        """Seal `body` into the stream and spool it; waits for the fsync when `wait` (default: strict durability).
        Raises 503 audit_unavailable. `admitted=False` checks the spool has room first; `new_session`: the gateway
        assigned the session id just now (no history to look up)."""
        if self.chain is None or self.spool is None:
            raise audit_unavailable("the audit log is not running")
        if not admitted:
            self.admit()
        if new_session:
            declare = getattr(self.chain.heads, "declare_new", None)
            if declare is not None:
                declare(body.session_id)
        try:
            record = await self.chain.append(body)
        except Exception as exc:  # noqa: BLE001 - shared session heads (Redis) unreachable, ...
            log.error("audit_chain_failed", error=type(exc).__name__)
            raise audit_unavailable("the session chain cannot be advanced") from None
        # no await between sealing and queueing: spool order == stream order, and a digest snapshot taken
        # between two steps always finds every record it names already queued
        fut = self.spool.enqueue(spool_entry(record), force=True)
        self._last_entry = fut
        if self.journal is not None and body.kind == "exchange" and body.request_id:
            fut.add_done_callback(lambda f, rid=body.request_id: self._closed(rid, f))
        if not (self.strict if wait is None else wait):
            fut.add_done_callback(_log_failure)
            return record
        try:
            await asyncio.shield(fut)
        except OSError as exc:
            log.error("audit_spool_failed", error=type(exc).__name__)
            raise audit_unavailable("the audit spool cannot be written") from None
        return record

    def _closed(self, request_id: str, fut: asyncio.Future[int]) -> None:
        if not fut.cancelled() and fut.exception() is None and self.journal is not None:
            self.journal.end(request_id)

    def commit_later(self, body: RecordBody, *, new_session: bool = False) -> None:
        """For exchanges cut short (client gone): seal and spool in the background; `stop` waits for these."""
        task = asyncio.ensure_future(self.commit(body, new_session=new_session))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("audit_record_lost", error=type(task.exception()).__name__)

    async def record_event(self, body: RecordBody) -> Record:
        """A system record (approval transition, revocation, admin call): admission-checked, always durable
        before this returns, whatever `durability` says."""
        return await self.commit(body, admitted=False, wait=True)

    async def record_admin(self, principal: Any, action: str, detail: dict[str, Any]) -> None:
        """The `admin` record of an admin API call (written before the call is performed). Admin records of one
        UTC day share the session `admin-<YYYYMMDD>`, so investigators find them with the session endpoints."""
        time_ = utc_now()
        await self.record_event(RecordBody(
            kind="admin", record_id=new_id(), session_id=admin_session(time_), time=time_,
            principal=PrincipalInfo.from_principal(principal), detail={"action": action, **detail}))

    # -- recovery -----------------------------------------------------------------------------------------------
    async def _recover(self, open_exchanges: list[OpenExchange], spooled_ids: set[str]) -> None:
        """Seal a record for every exchange a previous process left open (its stream ended mid-flight)."""
        for ox in open_exchanges:
            if await self._already_recorded(ox, spooled_ids):
                continue
            fields = dict(ox.begin)
            fields.update(ox.response)
            fields["masked_response"] = ox.events
            detail = dict(fields.get("detail") or {})
            detail["incomplete"] = ("the gateway process stopped before this exchange finished; the response "
                                    "holds what was journaled")
            fields["detail"] = detail
            try:
                body = RecordBody.model_validate(fields)
                await self.commit(body)
            except Exception as exc:  # noqa: BLE001 - one bad entry must not block start-up
                log.error("audit_recovery_failed", request_id=ox.request_id, error=type(exc).__name__)
                continue
            self.recovered += 1
        await self.journal.forget_recovered()

    async def _already_recorded(self, ox: OpenExchange, spooled_ids: set[str]) -> bool:
        """Crashing between spooling a record and closing its journal entry leaves both: look for the record
        (`spooled_ids`: the open exchanges' record ids found in the spool at start-up)."""
        record_id = ox.begin.get("record_id")
        if str(record_id) in spooled_ids:
            return True
        session = ox.begin.get("session_id")
        if not session:
            return False
        needle = f'"record_id":"{record_id}"'.encode()
        # The open exchange was one of the session's latest records, if it was stored: only the newest pointers
        # are read (what `segment.session_pointers` does for all of them: a GET per pointer of a long session).
        recent: deque[segment.Pointer] = deque(maxlen=_RECENT_POINTERS)
        async for key in iter_keys(self.store, layout.session_prefix(session)):
            parsed = layout.parse_session_index_key(key)
            if parsed is not None and parsed[0] == session:
                recent.append(segment.Pointer(key, *parsed))
        if len(recent) < _RECENT_POINTERS:  # the whole index fits: include a gateway-assigned session's start
            for first in reversed(await segment.catalog_pointers(self.store, session)):
                recent.appendleft(first)
        segments = segment.SegmentCache(self.store)
        for pointer in reversed(recent):
            entries = pointer.entries if pointer.entries is not None else (
                segment.parse_pointer_body(await self.store.get(pointer.key)) or [])
            for _, stream_seq, _ in reversed(entries):
                raw = await segments.record(pointer.stream_id, pointer.first, pointer.last, stream_seq)
                if raw is not None and needle in raw:
                    return True
        return False

    # -- digests ------------------------------------------------------------------------------------------------
    async def _digest_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.digest_interval_s)
            try:
                await self.publish_digest(wait_s=self.settings.digest_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried at the next interval; touched sessions are kept
                log.warning("audit_digest_failed", error=f"{type(exc).__name__}: {exc}")

    async def publish_digest(self, *, wait_s: float = 60.0) -> dict[str, Any] | None:
        """Sign the stream's current position once every record up to it is stored; None if that took too long
        (the sessions it would have named go into the next digest)."""
        async with self._digest_lock:
            snap = self.digests.snapshot()
            entry = self._last_entry
            deadline = time.monotonic() + wait_s
            if entry is not None:
                try:
                    seq = await asyncio.wait_for(asyncio.shield(entry), wait_s)
                except (TimeoutError, OSError):
                    seq = None
                while seq is not None and self.spool.acked < seq and time.monotonic() < deadline:
                    self.uploader.wake()
                    await asyncio.sleep(0.05)
                if seq is None or self.spool.acked < seq:
                    for sid, head in snap[2].items():
                        self.chain.touched.setdefault(sid, head)
                    log.warning("audit_digest_deferred", detail="records not stored yet (store unreachable?)")
                    return None
            digest = await self.digests.publish(self.store, snap)
        if self.on_digest is not None:
            self.on_digest(digest)
        if self.anchor is not None:
            try:
                await self.anchor.put_if_absent(layout.digest_key(digest["stream_id"], digest["digest_seq"]),
                                                canonical_bytes(digest))
            except Exception as exc:  # noqa: BLE001 - the main log is intact; the anchor catches up next time
                log.warning("audit_anchor_failed", error=type(exc).__name__)
        return digest

    def latest_digests(self) -> list[dict[str, Any]]:
        return [self.digests.latest] if self.digests and self.digests.latest else []

    def status(self) -> tuple[bool, dict[str, Any]]:
        """(ready, detail) for /readyz: ready while new exchanges can be admitted."""
        if self.spool is None or self.uploader is None:
            return False, {"running": False}
        up = self.uploader.status()
        return self.spool.has_room(), {
            "stream_id": self.chain.stream_id if self.chain else None,
            "durability": self.settings.durability,
            "backlog_entries": up["backlog_entries"], "backlog_bytes": up["backlog_bytes"],
            "shipped_entries": up["shipped_entries"], "shipped_objects": up["shipped_objects"],
            "shipped_segments": up["shipped_segments"],
            "last_error": up["last_error"], "conflict_key": up["conflict_key"],
            "blocked_entry": up["blocked_entry"],
            "last_digest_seq": self.digests.digest_seq if self.digests else 0,
        }


_RECORD_ID = re.compile(rb'"record_id":"([^"\\]*)"')
_RECENT_POINTERS = 8
"""Journal recovery looks for an open exchange's record in this many of its session's newest index pointers."""


def _log_failure(fut: asyncio.Future[int]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("audit_record_lost", error=type(fut.exception()).__name__)
