"""Fixtures for the admin API tests: a fake verifier, a recording `record_admin`, audit logs, an app client."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from gateway.admin import AdminContext, setup_admin
from gateway.audit.chain import MemorySessionHeads, StreamChain, write_record
from gateway.audit.digest import DigestWriter, generate_key
from gateway.audit.record import MaskedEvent, PrincipalInfo, RecordBody
from gateway.audit.store import MemoryStore, ObjectStore, StoreError
from gateway.auth.errors import AuthError
from gateway.config import AdminSettings
from gateway.principal import Principal
from tests.audit.logbuilder import Log, build_log

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


@pytest.fixture
async def log() -> Log:
    """40 records over two streams and four sessions (`tests.audit.logbuilder`), digests published."""
    return await build_log(CountingStore(), n=40)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def verifier() -> FakeVerifier:
    return FakeVerifier()


@pytest.fixture
def make_ctx(verifier, recorder) -> Callable[..., AdminContext]:
    def make(log: Log | None = None, **kw: Any) -> AdminContext:
        fields: dict[str, Any] = dict(verifier=verifier, settings=SETTINGS, record_admin=recorder)
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


async def write_sessions(store: ObjectStore, specs: list[tuple[str, str, str, int]]) -> StreamChain:
    """Write sessions given as (session id, subject, first record time, number of records), then a digest."""
    chain = StreamChain(MemorySessionHeads(), "20250101T000000Z-dddddddddddd")
    n = 0
    for session, sub, time, count in specs:
        for _ in range(count):
            await write_record(store, await chain.append(body(n, session, sub=sub, time=time)))
            n += 1
    await DigestWriter(chain, generate_key()).publish(store)
    return chain
