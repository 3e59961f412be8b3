"""API dialects: which codec parses a response body, chosen from the request path and the response content type.

``/v1/chat/completions`` → OpenAI Chat, ``/v1/responses`` → OpenAI Responses, ``/v1/messages`` → Anthropic
Messages (each also matching sub-paths such as ``/v1/responses/{id}``; the query string is ignored). A known path
with a ``text/event-stream`` body gets the dialect's SSE codec, with a JSON body its whole-body codec. Everything
else (unknown paths, other content types) is opaque text, which is still inspected and masked, just not field by
field.
"""
from __future__ import annotations

from gateway.dialects import anthropic, openai_chat, openai_responses
from gateway.dialects.base import Codec
from gateway.dialects.opaque import OpaqueCodec

_ROUTES = (
    ("/v1/chat/completions", openai_chat),
    ("/v1/responses", openai_responses),
    ("/v1/messages", anthropic),
)
OPAQUE = "opaque"


def _module_for(path: str):
    path = path.split("?", 1)[0]
    for prefix, module in _ROUTES:
        if path == prefix or path.startswith(prefix + "/"):
            return module
    return None


def dialect_name_for(path: str) -> str:
    """`openai_chat`, `openai_responses`, `anthropic_messages` or `opaque`."""
    module = _module_for(path)
    return OPAQUE if module is None else module.DIALECT


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def codec_for(path: str, content_type: str) -> Codec:
    """A fresh codec for one response body (codecs keep per-stream state: never share one between responses)."""
    module = _module_for(path)
    media = _media_type(content_type or "")
    if module is not None:
        if media == "text/event-stream":
            return module.codec(streaming=True)
        if media == "application/json" or media.endswith("+json"):
            return module.codec(streaming=False)
    return OpaqueCodec()
