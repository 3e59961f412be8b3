"""Announces how an exchange ended (refused by policy, stream cut) to the events hub, after every other filter."""
from __future__ import annotations

from gateway.events import Events
from gateway.exchange import Exchange
from gateway.filters.base import Filter


class NotifyFilter(Filter):
    """First in the chain, so its completion hook runs last, when the exchange's outcome and record are final."""

    name = "notify"

    def __init__(self, events: Events) -> None:
        self.events = events

    def on_complete(self, ex: Exchange) -> None:
        self.events.exchange_done(ex)
