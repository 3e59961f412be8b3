"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

Each attempt carries `webhook-id` (the event id, stable across retries so receivers deduplicate),
`webhook-timestamp` (unix seconds of *this* attempt: receivers reject stale timestamps, so a retry minutes later must
be re-signed) and `webhook-signature`: one `v1,<base64 HMAC-SHA256>` per configured secret, space-separated, over
`{id}.{timestamp}.{body}`. Several secrets let an operator rotate: the receiver accepts if any signature matches
the one key it knows, so old and new keys overlap for as long as both are configured.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["SECRET_PREFIX", "MIN_SECRET_BYTES", "decode_secret", "sign", "signature_header", "webhook_headers"]

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
"""The spec's lower bound (192 bits); shorter keys are refused at configuration time."""


def decode_secret(secret: str) -> bytes:
    """`whsec_<base64>` -> the raw HMAC key. Padding may be omitted; anything else malformed raises ValueError.

    Error messages never include the secret itself (they end up in start-up errors and logs)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX!r} followed by base64")
    b64 = secret[len(SECRET_PREFIX):]
    try:
        key = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the part after {SECRET_PREFIX!r} is not valid base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"decodes to {len(key)} bytes; at least {MIN_SECRET_BYTES} are required")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def signature_header(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per key, in configuration order."""
    return " ".join(sign(k, msg_id, timestamp, body) for k in keys)


def webhook_headers(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers (no signature header when no key is configured)."""
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if keys:
        headers["webhook-signature"] = signature_header(keys, msg_id, timestamp, body)
    return headers
