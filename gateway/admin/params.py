"""Query and path parameters of the admin API: parsed strictly, refused with a message that says what to send.

Strict on purpose: an investigator who types `subjet=alice` must get a 400 naming the accepted parameters, not
an unfiltered list that looks like an answer.
"""
from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiDictProxy

from gateway.admin.errors import invalid_param
from gateway.errors import GatewayError
from gateway.paths import check_session_id

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_UNIX = re.compile(r"\d{1,11}(\.\d{1,9})?")


def check_query(query: MultiDictProxy[str], allowed: Collection[str]) -> None:
    """Refuse unknown and repeated parameters."""
    for name in query:
        if name not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise invalid_param(name[:64], f"Unknown query parameter {name[:64]!r}: this endpoint accepts {names}.")
        if len(query.getall(name)) > 1:
            raise invalid_param(name, f"Send the {name!r} parameter once.")


def session_id(value: str) -> str:
    """A session id from the path, under the rules of `X-Session-Id` (`gateway.paths.check_session_id`)."""
    try:
        check_session_id(value)
    except GatewayError:
        raise GatewayError(400, "invalid_session_id", "A session id is 1-128 characters of letters, digits and "
                           ". _ : @ - (the X-Session-Id the client sent, or X-Gateway-Session-Id).") from None
    return value


def _epoch_ms(value: str, param: str, *, round_up: bool) -> int:
    if _UNIX.fullmatch(value):
        ms = Decimal(value) * 1000
        return int(ms.to_integral_value(rounding=ROUND_CEILING if round_up else ROUND_FLOOR))
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise invalid_param(param, f"{param} must be an RFC 3339 time with a zone (2025-01-31T09:00:00Z) or unix "
                            "seconds (1738314000).")
    delta = when - _EPOCH
    return -((-delta) // _MS) if round_up else delta // _MS


def catalog_time(value: str, param: str, *, round_up: bool = False) -> str:
    """The sortable catalog form (`layout.catalog_time`) of an RFC 3339 or unix-seconds time, at millisecond
    precision: rounded down for a window's start, up for its (exclusive) end, so no session inside is lost."""
    try:
        when = _EPOCH + timedelta(milliseconds=_epoch_ms(value, param, round_up=round_up))
    except (OverflowError, InvalidOperation):
        when = None
    if when is None or not 1 <= when.year <= 9999:
        raise invalid_param(param, f"{param} is out of range.")
    return f"{when:%Y%m%dT%H%M%S}{when.microsecond // 1000:03d}Z"


def int_in(value: str | None, param: str, *, default: int, lo: int, hi: int) -> int:
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        n = None
    if n is None or not lo <= n <= hi:
        raise invalid_param(param, f"{param} must be a whole number from {lo} to {hi} (default {default}).")
    return n


def float_in(value: str | None, param: str, *, default: float, lo: float, hi: float) -> float:
    if value is None:
        return default
    try:
        x = float(value)
    except ValueError:
        x = math.nan
    if not math.isfinite(x) or not lo <= x <= hi:
        raise invalid_param(param, f"{param} must be a number from {lo:g} to {hi:g} (default {default:g}).")
    return x


def choice(value: str | None, param: str, *, default: str, choices: Collection[str]) -> str:
    if value is None:
        return default
    if value not in choices:
        raise invalid_param(param, f"{param} must be one of {', '.join(choices)} (default {default}).")
    return value


# -- list cursors: opaque to clients; underneath, the position of the last item examined -----------------------------
_COMPACT = re.compile(r"\d{8}T\d{9}Z")


def encode_cursor(position: tuple[str, str]) -> str:
    """A cursor for the list position (compact time, session id or catalog key) of `gateway.admin.catalog`."""
    return base64.urlsafe_b64encode(orjson.dumps(list(position))).rstrip(b"=").decode("ascii")


def _position(obj: Any) -> tuple[str, str] | None:
    if not (isinstance(obj, list) and len(obj) == 2 and all(isinstance(x, str) for x in obj)):
        return None
    when, name = obj
    if not _COMPACT.fullmatch(when):
        return None
    try:
        datetime.strptime(when, "%Y%m%dT%H%M%S%fZ")  # a real date: the catalog walk computes with it
    except ValueError:
        return None
    # any session id a catalog entry holds (even one the gateway would refuse today), or a catalog key
    return (when, name) if 0 < len(name) <= 1024 else None


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The list position inside a cursor this API returned, else 400."""
    try:
        obj = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        obj = None
    position = _position(obj)
    if position is None:
        raise invalid_param("cursor", "cursor must be the `next` value of a previous GET /admin/sessions answer.")
    return position


async def json_object(request: web.Request, *, max_bytes: int, usage: str) -> dict[str, Any]:
    """The request body as a JSON object (at most `max_bytes`), else 413 / 400 saying what to send (`usage`).
    Read with `request.read()`, which aiohttp caches, so an audit `describe` hook may have read it first."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise GatewayError(413, "payload_too_large", f"The request body is limited to {max_bytes} bytes.")
    raw = await request.read()
    if len(raw) > max_bytes:
        raise GatewayError(413, "payload_too_large", f"The request body is limited to {max_bytes} bytes.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise GatewayError(400, "invalid_request", f"Send a JSON object: {usage}.")
    return body
