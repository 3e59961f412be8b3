"""What admin handlers are given, and who may call them.

Everything an admin endpoint needs arrives in one `AdminContext` built by the application factory, so the handlers
hold no globals and the tests can build one from fakes (a dict of test tokens, a `MemoryStore`, a list that
records the audit calls).
"""
from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.store import ObjectStore
from gateway.config import AdminSettings
from gateway.principal import Principal

RecordAdmin = Callable[[Principal, str, dict[str, Any]], Awaitable[None]]
"""Writes one `admin` audit record: (who, action name, what it targeted). Raises when it cannot."""


class TokenVerifier(Protocol):
    """`gateway.auth.oidc.OidcVerifier` or a test fake: a bearer token → a `Principal`, or a `GatewayError`."""

    async def verify(self, token: str) -> Principal: ...


class Role(enum.StrEnum):
    """What a caller may do on the admin API; granted by group membership (`AdminSettings`)."""

    APPROVER = "approver"
    """Decides approvals."""
    INVESTIGATOR = "investigator"
    """Reads, replays, verifies and exports sessions; verifies the log."""
    ADMIN = "admin"
    """Manages revocations, and holds every other role as well."""


def roles_for(principal: Principal, settings: AdminSettings) -> frozenset[Role]:
    """The roles `principal`'s groups grant. An admin group grants all of them."""
    groups = set(principal.groups)
    if groups & set(settings.admin_groups):
        return frozenset(Role)
    roles: set[Role] = set()
    if groups & set(settings.approver_groups):
        roles.add(Role.APPROVER)
    if groups & set(settings.investigator_groups):
        roles.add(Role.INVESTIGATOR)
    return frozenset(roles)


def _no_digests() -> list[dict[str, Any]]:
    return []


@dataclass
class AdminContext:
    """The services behind the admin API (one per application)."""

    verifier: TokenVerifier
    """Turns the bearer token into a `Principal` (the same verifier as the proxy path)."""
    settings: AdminSettings
    """Which groups hold which role."""
    record_admin: RecordAdmin
    """Audits every admin call before it is performed; if it raises, the call is refused (503 audit_unavailable)."""
    store: ObjectStore | None = None
    """The audit log; None when audit is disabled (session and audit endpoints then answer 503)."""
    public_keys: list[Ed25519PublicKey] = field(default_factory=list)
    """Keys digests may be signed with (the running gateway's own included): verification and exports use them."""
    latest_digests: Callable[[], list[dict[str, Any]]] = _no_digests
    """The latest signed digest of each of this process's streams: anchors against a truncated tail."""
