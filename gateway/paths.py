"""Which request targets the gateway proxies, which it answers itself, and which it refuses as ambiguous.

The gateway decides on the raw request-target. A path that only *decodes or normalises* to a reserved gateway
path (`//admin`, `/%61dmin`, `/v1/../admin`) is refused: neither served by the gateway's own endpoints nor
forwarded, since the backend or a later hop might normalise it differently.
"""
from __future__ import annotations

import re
from urllib.parse import unquote

from gateway.errors import GatewayError

RESERVED = ("/admin", "/healthz", "/readyz", "/metrics", "/dev")
_SESSION_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
_SLASHES = re.compile(r"/{2,}")


def bad_request(message: str, code: str = "invalid_request") -> GatewayError:
    return GatewayError(400, code, message)


def is_reserved(path: str) -> bool:
    """The exact (case-sensitive) gateway paths: served by the gateway itself, never forwarded."""
    return any(path == r or path.startswith(r + "/") for r in RESERVED)


def _resembles_reserved(path: str) -> bool:
    low = path.lower()
    return any(low == r or low.startswith(r + "/") for r in RESERVED)


def check_proxy_path(raw_path: str) -> None:
    """Raise 400 for a request-target that must not be proxied."""
    if "%" not in raw_path and "//" not in raw_path and "/." not in raw_path and "\\" not in raw_path:
        # The common case: nothing encoded, nothing to normalise; only a case-variant of a reserved path remains.
        if _resembles_reserved(raw_path):
            raise bad_request("This path resolves to a reserved gateway path; call it by its exact name.")
        if raw_path.startswith("/"):
            return
    if not raw_path.startswith("/"):
        raise bad_request("Only origin-form request targets (starting with '/') are accepted.")
    low = raw_path.lower()
    if "%2f" in low or "%5c" in low or "\\" in raw_path:
        raise bad_request("Encoded slashes and backslashes are not allowed in the path.")
    decoded = unquote(raw_path)
    if any(seg in (".", "..") for seg in decoded.split("/")):
        raise bad_request("Dot segments ('.' or '..') are not allowed in the path.")
    if "%" in decoded and decoded != unquote(decoded):
        raise bad_request("Doubly percent-encoded paths are not allowed.")
    if _resembles_reserved(_SLASHES.sub("/", decoded)):  # `/ADMIN`, `//admin`, `/%61dmin`: ambiguous, refused
        raise bad_request("This path resolves to a reserved gateway path; call it by its exact name.")


def check_session_id(value: str) -> None:
    if not _SESSION_ID.fullmatch(value):  # fullmatch: `$` alone would accept a trailing newline
        raise bad_request(
            "X-Session-Id must be 1-128 characters of letters, digits and . _ : @ -", code="invalid_session_id"
        )
