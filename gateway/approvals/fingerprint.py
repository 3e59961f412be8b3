"""The request fingerprint an approval is bound to: an approval never lets a different request through.

fingerprint = sha256(canonical JSON of {sub, method, path (with query), body_sha256}), where body_sha256 hashes the
canonical JSON of the parsed body when it is JSON — so key order and whitespace do not matter — and the raw bytes
otherwise.

The body is canonicalised with sorted keys and no whitespace. :mod:`gateway.audit.canonical` is not reused: it
refuses floats, and LLM requests carry `temperature: 0.7`. Anything without one exact JSON reading falls back to the
raw bytes: NaN/Infinity and overflowing numbers (an encoder would write them as null), repeated keys (we would see
the last, an upstream might use the first), integers beyond 64 bits, lone surrogates. A byte-different request
then merely needs its own approval, which errs on the safe side.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import orjson

from gateway.audit.canonical import canonical_bytes
from gateway.exchange import Exchange

BODY_SHA256 = "approval_body_sha256"
"""``ex.annotations`` key: hash of the body as received, left by the policy filter before it masks the prompt
(the approval must bind what the client sent, not the masked copy, or two requests differing only in masked
parts would share one approval)."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("repeated key")
    return obj


def body_sha256(body: bytes) -> str:
    """Hash of the canonical JSON of ``body`` when it parses as JSON, else of the raw bytes (hex)."""
    try:
        parsed = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite, object_pairs_hook=_unique)
        data = orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)
    except (ValueError, TypeError, orjson.JSONEncodeError):
        data = body
    return hashlib.sha256(data).hexdigest()


def fingerprint(sub: str, method: str, target: str, body_hash: str) -> str:
    """sha256 (hex) over the canonical JSON of the four parts; ``target`` is the path with its query."""
    doc = {"sub": sub, "method": method.upper(), "path": target, "body_sha256": body_hash}
    return hashlib.sha256(canonical_bytes(doc)).hexdigest()


def request_target(ex: Exchange) -> str:
    """Path with the query string, however the exchange carries it."""
    if ex.query_string and "?" not in ex.path:
        return f"{ex.path}?{ex.query_string}"
    return ex.path


async def exchange_fingerprint(ex: Exchange) -> str:
    """Fingerprint of the exchange as the client sent it (needs ``ex.principal``)."""
    if ex.principal is None:
        raise ValueError("an approval fingerprint needs a verified principal")
    body_hash = ex.annotations.get(BODY_SHA256)
    if not isinstance(body_hash, str):
        body_hash = body_sha256(await ex.read_body())
    return fingerprint(ex.principal.sub, ex.method, request_target(ex), body_hash)
