"""structlog set-up: one JSON object per line, request ids as context, never tokens or bodies."""
from __future__ import annotations

import logging
import sys

import orjson
import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _orjson_dumps(event: dict, **_: object) -> bytes:
    # default=str: an unexpected value type must still produce a log line, not an exception on the request path
    return orjson.dumps(event, default=str)


def configure_logging(level: str = "info", *, stream=None) -> None:
    stream = stream or sys.stdout
    binary = getattr(stream, "buffer", None)
    # One access line per request sits on the hot path: orjson renders it ~8x faster than json.dumps.
    renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps if binary else None)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.BytesLoggerFactory(binary) if binary else structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    # aiohttp's own access/server loggers would print request lines (paths, peers); ours replace them.
    logging.getLogger("aiohttp.access").disabled = True
