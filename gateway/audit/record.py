"""The audit record: one per request/response pair (and per approval decision, revocation, admin call, or gap).

A record holds **masked text only**. There is no field that takes raw bytes: the request body arrives as
`masked_request` (after the masking filter), the response as `masked_response` — the chunks exactly as they were
written to the client, each with its time since the response started, so replay reproduces chunking and timing.
Tokens never appear: the principal carries a hash of the token id.

Bytes and hash: the stored object is `canonical_bytes(record)` (see `canonical.py`), `hash` included;
``hash = sha256(canonical_bytes(record without "hash")).hexdigest()``. The chain fields (`stream_*`, `session_*`,
`prev`) are inside the hashed bytes, so each hash commits to the whole history before it.
"""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from typing_extensions import TypedDict

from gateway.audit.canonical import canonical_bytes, decode, encode

FORMAT_VERSION = 1
RecordKind = Literal["exchange", "approval", "revocation", "admin", "gap"]
KINDS: frozenset[str] = frozenset(("exchange", "approval", "revocation", "admin", "gap"))
HASH_HEX = r"^[0-9a-f]{64}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PrincipalInfo(_Model):
    """Who made the call: identity claims only, no token material."""

    sub: str
    """Subject."""
    groups: list[str] = []
    """Groups/roles the policy saw."""
    client_id: str | None = None
    """OAuth client (`azp`/`client_id`)."""
    token_id_hash: str | None = None
    """SHA-256 of the token's `jti` (hex prefix), as in `gateway.principal.Principal`."""

    @classmethod
    def from_principal(cls, p: Any) -> PrincipalInfo:
        """From a `gateway.principal.Principal`."""
        return cls(sub=p.sub, groups=list(p.groups), client_id=p.client_id, token_id_hash=p.token_id_hash)


class Decision(_Model):
    """What the policy decided."""

    action: str
    """`allow`, `deny`, `approval`, ... as evaluated."""
    rule: str | None = None
    """Name of the rule that decided, None for the default."""


class Approval(_Model):
    """The human approval the exchange (or an `approval` record) refers to."""

    approval_id: str
    """Approval id as in the admin API."""
    state: str | None = None
    """`approved`, `denied`, `expired`, `pending`."""
    deciders: list[str] = []
    """Subjects of the approvers who decided."""


class MaskedEvent(TypedDict):
    """One chunk written to the client, already masked. A TypedDict (validation of long streams is 2.5× faster
    than with a model): build it as ``MaskedEvent(t_ms=0, data="...")`` or a plain dict."""

    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]
    t_ms: Annotated[int, Field(ge=0)]
    """Milliseconds since the first response byte (0 for the first chunk)."""
    data: str
    """The masked chunk exactly as written (an SSE event's full text incl. `data:` lines and blank line)."""


class RecordBody(_Model):
    """What the gateway fills in; the chain adds links and the hash (`Record.seal`)."""

    v: int = FORMAT_VERSION
    """Record format version."""
    kind: RecordKind = "exchange"
    """`exchange` (request/response pair), `approval`, `revocation`, `admin`, or `gap` (a writer lost records)."""
    record_id: str
    """Unique id of this record."""
    request_id: str | None = None
    """`X-Gateway-Request-Id` of the exchange, when there is one."""
    session_id: str
    """Session the record belongs to (`X-Gateway-Session-Id`)."""
    time: str
    """When the exchange started (or the event happened), RFC 3339 UTC with milliseconds."""
    principal: PrincipalInfo | None = None
    """Caller; None for system records."""
    route: str | None = None
    """Request path (no query string)."""
    method: str | None = None
    """HTTP method."""
    dialect: str | None = None
    """`openai`, `anthropic`, ...: how replay reads `masked_response`."""
    decision: Decision | None = None
    """Policy decision."""
    approval: Approval | None = None
    """Approval id, state and deciders."""
    masked_request: str | None = None
    """Request body after masking (text). Never the raw body."""
    response_status: int | None = None
    """HTTP status sent to the client."""
    response_content_type: str | None = None
    """Content type of the response (`text/event-stream` for streams)."""
    masked_response: list[MaskedEvent] = []
    """Response body chunks after masking, with relative timestamps."""
    masking_counts: dict[str, int] = {}
    """Matches masked per detector, request and response together."""
    timings_us: dict[str, int] = {}
    """Microseconds per phase (`upstream_headers`, `first_byte`, `total`, ...)."""
    error: str | None = None
    """Contract error code when the gateway answered itself (or cut the stream)."""
    detail: dict[str, Any] = {}
    """Kind-specific facts (already masked): approval decision, revoked token hash, admin action, gap range."""


class Record(RecordBody):
    """A sealed record: body + links + hash."""

    stream_id: str
    """Writer stream (one per gateway process)."""
    stream_seq: int = Field(ge=1)
    """Position in the stream: 1, 2, 3 ... without gaps."""
    prev: str | None = Field(pattern=HASH_HEX)
    """Hash of stream record `stream_seq - 1`; None for the first."""
    session_seq: int = Field(ge=1)
    """Position in the session, across all streams: 1, 2, 3 ..."""
    session_prev: str | None = Field(pattern=HASH_HEX)
    """Hash of the session's record `session_seq - 1`; None for the first."""
    hash: str = Field(pattern=HASH_HEX)
    """sha256 of the canonical bytes of every other field."""
    _bytes: bytes | None = PrivateAttr(default=None)

    @classmethod
    def seal(cls, body: RecordBody, *, stream_id: str, stream_seq: int, prev: str | None,
             session_seq: int, session_prev: str | None) -> Record:
        d = body.model_dump(mode="python")
        d.update(stream_id=stream_id, stream_seq=stream_seq, prev=prev, session_seq=session_seq,
                 session_prev=session_prev)
        d["hash"] = hash_of(d)
        record = cls.model_validate(d)
        record._bytes = encode(d)  # d passed canonical_bytes' checks in hash_of
        return record

    def __eq__(self, other: object) -> bool:  # the cached bytes are not part of a record's identity
        return isinstance(other, Record) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(self.hash)

    def to_bytes(self) -> bytes:
        """The stored object: canonical bytes, `hash` included."""
        if self._bytes is None:
            self._bytes = canonical_bytes(self.model_dump(mode="python"))
        return self._bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> Record:
        """Parse a stored record (structure only; the verifier checks hashes and canonical form)."""
        return cls.model_validate(decode(data))


def hash_of(fields: dict[str, Any]) -> str:
    """sha256 hex of the canonical bytes of `fields` minus any `hash` key."""
    if "hash" in fields:
        fields = {k: v for k, v in fields.items() if k != "hash"}
    return hashlib.sha256(canonical_bytes(fields)).hexdigest()


def utc_now(epoch: float | None = None) -> str:
    """RFC 3339 UTC timestamp with milliseconds (now, or at `epoch`), the format of `time` and digest
    `created_at`."""
    moment = datetime.now(UTC) if epoch is None else datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
