"""Outbound webhooks: signed (Standard Webhooks), retried, bounded, and never carrying unmasked text.

Usage (the app owns wiring): build a `Dispatcher(settings.webhooks, dead_letter=...)`, `await start()` at start-up,
call `emit(WebhookEvent("approval.requested", {...masked fields...}))` from anywhere on the loop, and
`await stop(drain_timeout)` at shutdown.
"""
from gateway.webhooks.dispatcher import DeadLetter, Dispatcher, DispatchStats
from gateway.webhooks.events import EVENT_TYPES, EventType, UnsafePayloadError, WebhookEvent, check_payload
from gateway.webhooks.formats import render
from gateway.webhooks.settings import JiraSettings, WebhookEndpoint, WebhooksSettings
from gateway.webhooks.signing import webhook_headers

__all__ = [
    "EVENT_TYPES",
    "DeadLetter",
    "DispatchStats",
    "Dispatcher",
    "EventType",
    "JiraSettings",
    "UnsafePayloadError",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhooksSettings",
    "check_payload",
    "render",
    "webhook_headers",
]
