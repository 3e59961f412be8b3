"""Admin API errors: `GatewayError`s with the admin codes, rendered as OpenAI-style JSON.

Codes (the `code` of ``{"error": {"message", "type", "code"}}``):

- 401 `invalid_token`      no/invalid bearer token (from `gateway.auth`; carries `WWW-Authenticate`)
- 403 `forbidden`          authenticated, but the caller's groups grant none of the roles the endpoint needs
- 400 `invalid_request`    a query parameter is unknown or out of range (the error names it in `param`)
- 400 `invalid_session_id` the session id in the path is not a possible session id
- 404 `session_not_found`  the audit log holds no record of that session
- 503 `audit_unavailable`  the call could not be audited (so it was not performed), or audit is disabled
- 503 `auth_unavailable`   the IdP's keys are not loaded yet (from `gateway.auth`)
- 500 `internal_error`     a bug; the message says nothing more
"""
from __future__ import annotations

from aiohttp import web

from gateway.errors import GatewayError, error_bytes


def error_response(err: GatewayError) -> web.Response:
    """The JSON reply for `err` (admin clients always get the OpenAI error shape)."""
    return web.Response(status=err.status, body=error_bytes(err, "openai"), content_type="application/json",
                        headers={"Cache-Control": "no-store", **err.headers})


def invalid_param(param: str, message: str) -> GatewayError:
    return GatewayError(400, "invalid_request", message, extra={"param": param})


def invalid_request(message: str) -> GatewayError:
    """400 for a request body that cannot be acted on (no single parameter to name)."""
    return GatewayError(400, "invalid_request", message)


def forbidden(needed: str) -> GatewayError:
    return GatewayError(403, "forbidden", f"This admin endpoint needs the {needed} role: ask a gateway "
                        "administrator to add you to one of its groups.")


def audit_not_recorded() -> GatewayError:
    return GatewayError(503, "audit_unavailable", "The admin call could not be written to the audit log, so it was "
                        "not performed; retry shortly.", headers={"Retry-After": "5"})


def audit_disabled() -> GatewayError:
    return GatewayError(503, "audit_unavailable", "The audit log is disabled on this gateway (no audit store is "
                        "configured): there are no sessions or digests to read.")


def session_not_found(session_id: str) -> GatewayError:
    return GatewayError(404, "session_not_found", "The audit log holds no record of this session: check the id "
                        "(GET /admin/sessions lists sessions by subject and time).")


def internal_error() -> GatewayError:
    return GatewayError(500, "internal_error", "The admin endpoint failed unexpectedly; the gateway log has details.")
