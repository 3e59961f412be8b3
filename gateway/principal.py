"""Who is calling: the verified identity taken from an OIDC access token."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller. Holds no token material: only claims needed for policy and audit."""

    sub: str
    """Subject claim (configurable via `auth.subject_claim`)."""
    groups: tuple[str, ...] = ()
    """Groups/roles found at `auth.groups_claim` (a dotted path)."""
    client_id: str | None = None
    """OAuth client that obtained the token (`azp` or `client_id`), if present."""
    token_id_hash: str | None = None
    """SHA-256 of the token's `jti` (hex, first 32 chars): correlatable in logs, useless to replay."""
    issued_at: float | None = None
    """`iat` as epoch seconds."""
    expires_at: float | None = None
    """`exp` as epoch seconds."""
    issuer: str = ""
    """`iss` of the token."""
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    """Non-sensitive claims kept for policy conditions (e.g. `scope`)."""
