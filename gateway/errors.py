"""Errors the gateway answers with, rendered in the client's API dialect.

A client that speaks Anthropic Messages gets ``{"type":"error","error":{"type","message"}}``; everyone else
gets OpenAI's ``{"error":{"message","type","code"}}``. The ``code`` is part of the external contract.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

Dialect = Literal["openai", "anthropic"]

# The OpenAI-style `type` that goes with each contract code (OpenAI SDKs map on status, this is for humans).
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    431: "invalid_request_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
}


@dataclass
class GatewayError(Exception):
    """A local reply: the exchange ends here with this status and contract code."""

    status: int
    """HTTP status sent to the client."""
    code: str
    """Contract error code (`invalid_token`, `upstream_timeout`, ...)."""
    message: str
    """One sentence a person can act on. Never contains tokens or payload text."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers (`WWW-Authenticate`, `Retry-After`)."""
    extra: dict[str, object] = field(default_factory=dict)
    """Extra fields placed in the error object (e.g. `approval_id`)."""

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


def dialect_for(path: str, headers) -> Dialect:
    """Anthropic clients call /v1/messages and send `anthropic-version`; everything else is OpenAI-shaped."""
    if "anthropic-version" in headers or path.startswith("/v1/messages") or path.startswith("/v1/complete"):
        return "anthropic"
    return "openai"


def error_body(err: GatewayError, dialect: Dialect) -> dict:
    if dialect == "anthropic":
        return {"type": "error", "error": {"type": err.code, "message": err.message, **err.extra}}
    return {
        "error": {
            "message": err.message,
            "type": _OPENAI_TYPES.get(err.status, "api_error"),
            "code": err.code,
            **err.extra,
        }
    }


def error_bytes(err: GatewayError, dialect: Dialect) -> bytes:
    return json.dumps(error_body(err, dialect), separators=(",", ":")).encode()


def sse_error_bytes(err: GatewayError, dialect: Dialect) -> bytes:
    """The SSE event that ends a stream mid-flight (`stream_terminated`), in the stream's own dialect."""
    body = json.dumps(error_body(err, dialect), separators=(",", ":"))
    if dialect == "anthropic":
        return f"event: error\ndata: {body}\n\n".encode()
    return f"data: {body}\n\n".encode()
