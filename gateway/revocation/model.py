"""A revocation: what is shut off (a subject, an OAuth client, or one token), why, by whom, and until when.

Token ids are never kept raw. A `jti` revocation stores the same truncated SHA-256 the verified
:class:`~gateway.principal.Principal` carries in ``token_id_hash``, so matching is a dict lookup and nothing that is
logged, listed or published over Redis can be replayed as a token id.
"""
from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from gateway.principal import Principal

Kind = Literal["subject", "client_id", "jti"]
"""What a revocation matches: ``Principal.sub``, ``Principal.client_id`` or ``Principal.token_id_hash``."""
KINDS: tuple[str, ...] = get_args(Kind)
Key = tuple[str, str]
"""(kind, value): the index key a revocation is filed under and a principal is looked up by."""

MAX_VALUE_CHARS = 1024
MAX_REASON_CHARS = 1000
_ID = re.compile(r"[0-9a-f]{32}")


class InvalidRevocation(ValueError):
    """The request cannot become a revocation (unknown kind, empty value, TTL out of bounds...): a 400, not a 5xx."""


def jti_hash(jti: str) -> str:
    """The token id hash, computed exactly as ``gateway.auth.claims.principal_from`` does for ``token_id_hash``."""
    return hashlib.sha256(jti.encode()).hexdigest()[:32]


def is_revocation_id(value: str) -> bool:
    """Ids are 32 lower-case hex chars; anything else cannot name a revocation (and never reaches a Redis key)."""
    return bool(_ID.fullmatch(value))


def principal_keys(principal: Principal) -> list[Key]:
    """The keys a principal can be revoked under: always its subject, its client and token id when it has them."""
    keys: list[Key] = [("subject", principal.sub)]
    if principal.client_id:
        keys.append(("client_id", principal.client_id))
    if principal.token_id_hash:
        keys.append(("jti", principal.token_id_hash))
    return keys


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Revocation:
    """One active kill switch entry. Immutable: changing one means deleting it and adding another."""

    id: str
    """32 hex chars, unique; names the revocation in the admin API and in audit records."""
    kind: Kind
    """What ``value`` is compared with."""
    value: str
    """The subject or client id; for `jti` the token id hash (never the raw jti)."""
    reason: str
    """Why, as the admin wrote it (shown to admins and in the audit log, never to the revoked client)."""
    created_by: str
    """Subject of the admin who made it."""
    created_at: float
    """Epoch seconds (wall clock: replicas compare it with their own clocks)."""
    expires_at: float
    """Epoch seconds; from then on the revocation no longer matches and Redis drops it."""

    @property
    def key(self) -> Key:
        return (self.kind, self.value)

    @property
    def ttl_s(self) -> float:
        return self.expires_at - self.created_at

    def active(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.expires_at

    def to_dict(self) -> dict[str, Any]:
        """Wire form (Redis, pub/sub): times as epoch seconds, lossless with :meth:`from_dict`."""
        return asdict(self)

    def public(self) -> dict[str, Any]:
        """Admin API form: the same fields with RFC 3339 UTC times, like audit records."""
        return {**asdict(self), "created_at": _rfc3339(self.created_at), "expires_at": _rfc3339(self.expires_at)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Revocation":
        """Rebuild from :meth:`to_dict`, refusing anything malformed (the channel is shared, so check it)."""
        try:
            rev = cls(
                id=str(data["id"]), kind=data["kind"], value=str(data["value"]), reason=str(data["reason"]),
                created_by=str(data["created_by"]), created_at=float(data["created_at"]),
                expires_at=float(data["expires_at"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidRevocation(f"malformed revocation: {type(err).__name__}") from None
        if rev.kind not in KINDS or not is_revocation_id(rev.id) or not rev.value:
            raise InvalidRevocation("malformed revocation")
        return rev


def new_revocation(kind: str, value: str, *, reason: str, created_by: str, ttl_s: float,
                   now: float | None = None) -> Revocation:
    """Validate an admin's request and build the revocation. A `jti` value is the raw token id: it is hashed here,
    so the raw id goes no further than this call."""
    if kind not in KINDS:
        raise InvalidRevocation(f"kind must be one of {', '.join(KINDS)}")
    if not isinstance(value, str) or not value.strip():
        raise InvalidRevocation(f"{kind} must be a non-empty string")
    if len(value) > MAX_VALUE_CHARS:
        raise InvalidRevocation(f"{kind} is longer than {MAX_VALUE_CHARS} characters")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidRevocation("reason is required")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidRevocation(f"reason is longer than {MAX_REASON_CHARS} characters")
    if not ttl_s > 0:
        raise InvalidRevocation("ttl_s must be positive")
    created = time.time() if now is None else now
    return Revocation(
        id=uuid.uuid4().hex,
        kind=kind,  # type: ignore[arg-type]  # checked against KINDS above
        value=jti_hash(value) if kind == "jti" else value,
        reason=reason.strip(),
        created_by=created_by,
        created_at=created,
        expires_at=created + ttl_s,
    )
