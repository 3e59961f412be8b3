"""Request bodies per endpoint format.

Every format is built only from the event's own fields (type, id, timestamp, data): nothing is looked up or added,
so a body can never hold more than the caller chose to put in `data` (see `events`).
"""
from __future__ import annotations

import orjson

from gateway.webhooks.events import WebhookEvent
from gateway.webhooks.jira import jira_issue
from gateway.webhooks.settings import WebhookEndpoint, WebhooksSettings
from gateway.webhooks.slack import slack_message

__all__ = ["render", "render_generic"]


def render_generic(event: WebhookEvent) -> bytes:
    """`{"type", "timestamp", "data"}`: the Standard Webhooks recommended payload shape."""
    return orjson.dumps({"type": event.type, "timestamp": event.iso_timestamp, "data": event.data})


def render(event: WebhookEvent, endpoint: WebhookEndpoint, settings: WebhooksSettings) -> bytes:
    """The exact bytes POSTed (and signed) for this event at this endpoint; computed once, reused on retries."""
    if endpoint.format == "slack":
        return orjson.dumps(slack_message(event, settings.console_url))
    if endpoint.format == "jira":
        assert settings.jira is not None  # enforced by WebhooksSettings
        return orjson.dumps(jira_issue(event, settings.jira, settings.console_url))
    return render_generic(event)
