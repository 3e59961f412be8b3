"""Slack incoming-webhook messages: `text` (notification fallback) plus Block Kit `blocks`.

Layout: a header, the event's fields, the masked excerpt in a code block, a button to the console page, and a
context line with the event type and id. Slack's limits (header 150 chars, 10 fields, 3000 chars per text) are
respected by truncation; `&`, `<` and `>` are escaped so data cannot form mentions or links.
"""
from __future__ import annotations

from typing import Any

from gateway.webhooks.events import WebhookEvent
from gateway.webhooks.common import console_link, display_fields, excerpt, title

__all__ = ["slack_message"]

_MAX_FIELDS = 10
_MAX_TEXT = 3000


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fallback(event: WebhookEvent) -> str:
    parts = [title(event)]
    for key in ("rule", "reason"):
        value = event.data.get(key)
        if isinstance(value, str) and value:
            parts.append(f"{key}: {value}")
    return _esc(" · ".join(parts))


def slack_message(event: WebhookEvent, console_url: str | None) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title(event), 150)}},
    ]
    fields = display_fields(event)[:_MAX_FIELDS]
    if fields:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": _cut(f"*{_esc(k)}*\n{_esc(v)}", 2000)} for k, v in fields
        ]})
    text = excerpt(event)
    if text is not None:
        # ``` inside the excerpt would end the code block early; a zero-width space keeps it literal.
        body = _esc(text).replace("```", "`\u200b``")
        code = "```" + _cut(body, _MAX_TEXT - 6) + "```"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": code}})
    link = console_link(event, console_url)
    if link is not None:
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "text": {"type": "plain_text", "text": "Open in console"}, "url": link,
        }]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": _esc(f"{event.type} · {event.id} · {event.iso_timestamp}")},
    ]})
    fallback = _fallback(event) + (f" <{link}|open in console>" if link else "")
    return {"text": _cut(fallback, _MAX_TEXT), "blocks": blocks}
