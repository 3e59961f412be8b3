"""What the human-facing formats (Slack, Jira) share: headline, console link, excerpt, flattened fields.

Everything here reads only the event's own fields; nothing is looked up or added.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from gateway.webhooks.events import EVENT_TITLES, WebhookEvent

__all__ = ["console_link", "display_fields", "excerpt", "title"]

_MAX_VALUE_CHARS = 500


def title(event: WebhookEvent) -> str:
    """`Approval decided: approved`-style headline."""
    base = EVENT_TITLES[event.type]
    outcome = event.data.get("decision") or event.data.get("state")
    if event.type == "approval.decided" and isinstance(outcome, str):
        return f"{base}: {outcome}"
    return base


def console_link(event: WebhookEvent, console_url: str | None) -> str | None:
    """The console page for the event's approval, else its session, else the console itself."""
    if not console_url:
        return None
    for key, page in (("approval_id", "approvals"), ("session_id", "sessions")):
        value = event.data.get(key)
        if isinstance(value, str | int) and str(value):
            return f"{console_url}/{page}/{quote(str(value), safe='')}"
    return console_url + "/"


def excerpt(event: WebhookEvent) -> str | None:
    """The caller's masked excerpt, if any (shown as a code block, never interpreted as markup)."""
    value = event.data.get("excerpt")
    return value if isinstance(value, str) and value else None


def _short(value: str) -> str:
    return value if len(value) <= _MAX_VALUE_CHARS else value[: _MAX_VALUE_CHARS - 1] + "…"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value):
        return ", ".join(str(v) for v in value)
    return orjson.dumps(value).decode()


def display_fields(event: WebhookEvent) -> list[tuple[str, str]]:
    """`(label, value)` pairs from `data` (the excerpt excluded), one nesting level flattened as `parent.child`."""
    out: list[tuple[str, str]] = []
    for key, value in event.data.items():
        if key == "excerpt" or value is None:
            continue
        if isinstance(value, dict):
            out.extend((f"{key}.{k}", _short(_text(v))) for k, v in value.items() if v is not None)
        else:
            out.append((key, _short(_text(value))))
    return out
