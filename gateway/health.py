"""Readiness: components register named checks; /readyz is ready only when every check passes."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Readiness:
    checks: dict[str, Callable[[], tuple[bool, dict]]] = field(default_factory=dict)

    def add(self, name: str, check: Callable[[], tuple[bool, dict]]) -> None:
        self.checks[name] = check

    def report(self) -> tuple[bool, dict]:
        detail: dict[str, dict] = {}
        ready = True
        for name, check in self.checks.items():
            try:
                ok, info = check()
            except Exception as exc:  # a broken check means "not ready", never a 500
                ok, info = False, {"error": type(exc).__name__}
            detail[name] = {"ready": ok, **info}
            ready = ready and ok
        return ready, detail
