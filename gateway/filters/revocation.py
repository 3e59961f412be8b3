"""The revocation filter: runs right after auth and refuses principals on the kill switch.

It consults only the store's local mirror, so it costs a few dict lookups per request. A revoked principal gets
401 `token_revoked`; when the mirror may be missing revocations (Redis out of reach for longer than
`max_staleness_s`) every request gets 503 `auth_unavailable` instead: failing closed is the point of a kill switch.
"""
from __future__ import annotations

from typing import Protocol

from gateway.exchange import Exchange
from gateway.filters.base import CONTINUE, Filter, Respond, Verdict
from gateway.principal import Principal
from gateway.revocation.errors import revocations_stale, token_revoked
from gateway.revocation.model import Revocation


class RevocationCheck(Protocol):
    @property
    def fresh(self) -> bool: ...

    def is_revoked(self, principal: Principal) -> Revocation | None: ...


class RevocationFilter(Filter):
    name = "revocation"

    def __init__(self, store: RevocationCheck) -> None:
        self._store = store

    async def on_request(self, ex: Exchange) -> Verdict:
        principal = ex.principal
        if principal is None:
            return CONTINUE  # the auth filter has already answered; nothing here to check
        # a match is answered as such even when stale: at worst it was deleted elsewhere meanwhile, and refusing
        # is then what staleness would do anyway
        rev = self._store.is_revoked(principal)
        if rev is not None:
            ex.annotations["auth_failure"] = "revoked"
            ex.annotations["revocation_id"] = rev.id
            return Respond(token_revoked())
        if not self._store.fresh:
            ex.annotations["auth_failure"] = "revocations_stale"
            return Respond(revocations_stale())
        return CONTINUE
