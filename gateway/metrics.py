"""Prometheus metrics, one registry per application (so several apps in one test process don't collide)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gateway_requests",
            "Proxied requests by route, status and decision.",
            ("route", "status", "decision"),
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "gateway_upstream_latency_seconds",
            "Time from forwarding a request to the upstream's response headers.",
            ("route",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.active_streams = Gauge(
            "gateway_active_streams", "Responses currently being streamed to clients.", registry=self.registry
        )
        self.client_disconnects = Counter(
            "gateway_client_disconnects", "Exchanges the client abandoned before the end.", registry=self.registry
        )

        self.policy_reload_failures = Counter(
            "gateway_policy_reload_failures", "Policy edits refused (the last good policy stays).",
            registry=self.registry,
        )
        # labels() takes a lock and builds a key each call; the label sets are few, so keep the children.
        self._request_children: dict[tuple[str, int, str], object] = {}
        self._latency_children: dict[str, object] = {}

    def count_request(self, route: str, status: int, decision: str) -> None:
        key = (route, status, decision)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(route, str(status), decision)
        child.inc()

    def observe_upstream(self, route: str, seconds: float) -> None:
        child = self._latency_children.get(route)
        if child is None:
            child = self._latency_children[route] = self.upstream_latency.labels(route)
        child.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
