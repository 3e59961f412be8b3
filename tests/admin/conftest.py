"""Fixtures for the admin API tests: a fake verifier, a recording `record_admin`, audit logs, an app client.

Audit logs are stored as the uploader stores them: several records per segment (`chain.write_records`), cut where
`segment.SegmentBuilder` says, each writer stream in its own segments."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from gateway.admin import AdminContext, setup_admin
from gateway.audit import layout
from gateway.audit.chain import MemorySessionHeads, StreamChain, write_records
from gateway.audit.digest import DigestWriter, generate_key
from gateway.audit.record import MaskedEvent, PrincipalInfo, Record, RecordBody
from gateway.audit.segment import SegmentBuilder, meta_of, pack, unpack
from gateway.audit.store import MemoryStore, ObjectStore, StoreError
from gateway.auth.errors import AuthError
from gateway.config import AdminSettings
from gateway.principal import Principal
from tests.audit.logbuilder import SESSIONS, STREAM_A, STREAM_B, Log
from tests.audit.logbuilder import body as log_body

SETTINGS = AdminSettings(approver_groups=["approvers"], investigator_groups=["investigators"],
                         admin_groups=["gateway-admins"])
PRINCIPALS = {
    "tok-investigator": Principal(sub="ivy", groups=("eng", "investigators")),
    "tok-admin": Principal(sub="ada", groups=("gateway-admins",)),
    "tok-approver": Principal(sub="apu", groups=("approvers",)),
    "tok-nobody": Principal(sub="nob", groups=("eng",)),
}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


INVESTIGATOR, ADMIN, APPROVER, NOBODY = (auth(t) for t in PRINCIPALS)


class FakeVerifier:
    """Maps the test tokens to principals; anything else is a 401, as the OIDC verifier would answer."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.error: Exception | None = None

    async def verify(self, token: str) -> Principal:
        self.tokens.append(token)
        if self.error is not None:
            raise self.error
        if token not in PRINCIPALS:
            raise AuthError("invalid", "The token could not be validated: obtain a new access token")
        return PRINCIPALS[token]


@dataclass
class Recorder:
    """`record_admin` that keeps (sub, action, detail), or fails like an unreachable audit log."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    fail: bool = False

    async def __call__(self, principal: Principal, action: str, detail: dict[str, Any]) -> None:
        if self.fail:
            raise StoreError("spool full")
        self.calls.append((principal.sub, action, detail))


class CountingStore(MemoryStore):
    """A MemoryStore that counts reads (to prove a refused call never touched the log)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, key: str) -> bytes | None:
        self.reads += 1
        return await super().get(key)

    async def list(self, prefix: str, **kw: Any) -> list[str]:
        self.reads += 1
        return await super().list(prefix, **kw)


class Segmenter:
    """Stores each stream's records in segments of up to `batch` records, as the uploader does."""

    def __init__(self, store: ObjectStore, batch: int) -> None:
        self.store = store
        self.batch = batch
        self.pending: dict[str, tuple[SegmentBuilder, list[Record]]] = {}

    async def add(self, rec: Record) -> None:
        builder, recs = self.pending.setdefault(rec.stream_id, (SegmentBuilder(self.batch), []))
        meta = meta_of(rec.to_bytes())
        if not builder.fits(meta):
            await self.flush(rec.stream_id)
            builder, recs = self.pending.setdefault(rec.stream_id, (SegmentBuilder(self.batch), []))
        builder.add(meta)
        recs.append(rec)

    async def flush(self, stream_id: str | None = None) -> None:
        for sid in [stream_id] if stream_id else list(self.pending):
            _, recs = self.pending.pop(sid, (None, []))
            if recs:
                await write_records(self.store, recs)


def segment_of(store: MemoryStore, rec: Record) -> str:
    """The key of the stored segment holding `rec`."""
    [key] = [k for k in store._objects if (p := layout.parse_segment_key(k)) and p[0] == rec.stream_id
             and p[1] <= rec.stream_seq <= p[2]]
    return key


def flip(store: MemoryStore, rec: Record, needle: bytes = b"MASKED") -> str:
    """Change one bit of `rec`'s bytes inside its segment (bypassing the append-only store); its segment key."""
    key = segment_of(store, rec)
    lines = unpack(store._objects[key])
    n = rec.stream_seq - layout.parse_segment_key(key)[1]  # type: ignore[index]
    i = lines[n].index(needle)
    lines[n] = lines[n][:i] + bytes([lines[n][i] ^ 1]) + lines[n][i + 1:]
    store.tamper_set(key, pack(lines))
    return key


async def build_segmented_log(store: ObjectStore, *, n: int = 40, digest_every: int = 8, batch: int = 8) -> Log:
    """`tests.audit.logbuilder.build_log`'s log (`n` records, two streams, four sessions that span both, digests
    every `digest_every` records of a stream and at the end), stored in segments of up to `batch` records."""
    key = generate_key()
    heads = MemorySessionHeads()
    chains = [StreamChain(heads, STREAM_A), StreamChain(heads, STREAM_B)]
    log = Log(store, key, chains, [DigestWriter(c, key) for c in chains])
    segments = Segmenter(store, batch)
    for i in range(n):
        stream = (i * 7 // 3) % 2 if i < n - 1 else 0
        session = SESSIONS[(i * 5 // 2) % len(SESSIONS)] if i < n - 1 else "s-gamma"
        rec = await chains[stream].append(log_body(i, session))
        log.records.append(rec)
        await segments.add(rec)
        if chains[stream].last_seq % digest_every == 0:
            await segments.flush(chains[stream].stream_id)  # a digest covers stored records
            await log.writers[stream].publish(store)
    await segments.flush()
    for w in log.writers:
        await w.publish(store)
    return log


@pytest.fixture
async def log() -> Log:
    """40 records over two streams and four sessions, in segments of up to 8 records (each session's pointers
    interleave: one holds a record later than the next one's first), digests published."""
    return await build_segmented_log(CountingStore(), n=40)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def verifier() -> FakeVerifier:
    return FakeVerifier()


@pytest.fixture
def make_ctx(verifier, recorder) -> Callable[..., AdminContext]:
    def make(log: Log | None = None, **kw: Any) -> AdminContext:
        fields: dict[str, Any] = {"verifier": verifier, "settings": SETTINGS, "record_admin": recorder}
        if log is not None:
            fields.update(store=log.store, public_keys=log.public_keys, latest_digests=lambda: log.anchors)
        return AdminContext(**{**fields, **kw})
    return make


@pytest.fixture
def make_client(aiohttp_client):
    async def make(ctx: AdminContext, endpoints=None):
        app = web.Application()
        if endpoints is None:
            setup_admin(app, ctx)
        else:
            setup_admin(app, ctx, endpoints)
        return await aiohttp_client(app)
    return make


@pytest.fixture
async def client(make_client, make_ctx, log):
    return await make_client(make_ctx(log))


# -- hand-made sessions (subjects, start times, event timing) -----------------------------------------------------
def body(n: int, session: str, *, sub: str, time: str, events: list[MaskedEvent] | None = None) -> RecordBody:
    return RecordBody(
        record_id=f"r-{n}", session_id=session, time=time, principal=PrincipalInfo(sub=sub, groups=["eng"]),
        route="/v1/chat/completions", method="POST", dialect="openai", response_status=200,
        response_content_type="text/event-stream",
        masked_request='{"messages":[{"role":"user","content":"mail [EMAIL]"}]}',
        masked_response=events if events is not None else [MaskedEvent(t_ms=0, data=f"data: {{\"n\":{n}}}\n\n")],
    )


SESSION_STREAMS = ("20250101T000000Z-dddddddddddd", "20250101T000000Z-ffffffffffff")


async def write_sessions(store: ObjectStore, specs: list[tuple[str, str, str, int]], *,
                         batch: int = 5) -> list[StreamChain]:
    """Write sessions given as (session id, subject, first record time, number of records), the sessions taking
    turns on two writer streams (so catalog objects of both streams interleave in time), in segments of up to
    `batch` records; then a digest per stream."""
    heads = MemorySessionHeads()
    chains = [StreamChain(heads, sid) for sid in SESSION_STREAMS]
    segments = Segmenter(store, batch)
    n = 0
    for j, (session, sub, time, count) in enumerate(specs):
        for _ in range(count):
            await segments.add(await chains[j % 2].append(body(n, session, sub=sub, time=time)))
            n += 1
    await segments.flush()
    key = generate_key()
    for chain in chains:
        await DigestWriter(chain, key).publish(store)
    return chains
