"""PolicyStore: the current compiled policy, swapped atomically, with a polling watcher for hot reload.

The watcher reads the policy files every ``interval_s`` seconds and hashes names and contents (a few KB: cheaper
than being wrong about coarse mtimes or Kubernetes ConfigMap symlink swaps, and no extra dependency). A new hash
is compiled once: a valid set replaces the policy; an invalid one keeps the last good policy, logs every problem
(file:line), calls ``on_error`` (a metric hook) and marks the store ``stale`` until a later valid version loads.
The same broken content is not retried on every poll.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from gateway.policy.compiled import Policy
from gateway.policy.loader import compile_sources, read_sources, version_of
from gateway.policy.registry import DetectorRegistry
from gateway.policy.source import PolicyError



def _log():
    # Fetched per use: reloads are rare, and a fresh proxy always follows the current structlog configuration.
    return structlog.get_logger("gateway.policy")


class PolicyStore:
    def __init__(
        self,
        path: str | Path,
        registry: DetectorRegistry,
        *,
        interval_s: float = 2.0,
        on_error: Callable[[PolicyError], None] | None = None,
        on_reload: Callable[[Policy], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.registry = registry
        self.interval_s = interval_s
        self.on_error = on_error
        """Called with the error after every failed (re)load: the metric hook."""
        self.on_reload = on_reload
        """Called with the new policy after every successful reload (not the initial load)."""
        self._policy: Policy | None = None
        self._attempted = ""
        self._error: PolicyError | None = None
        self._loaded_at: float | None = None
        self._task: asyncio.Task | None = None

    @property
    def policy(self) -> Policy:
        """The policy in force. Read it once per request and keep the reference (it never changes under you)."""
        if self._policy is None:
            raise RuntimeError("no policy loaded yet: call PolicyStore.load() at start-up")
        return self._policy

    def load(self) -> Policy:
        """Initial load; raises PolicyError so start-up can refuse an invalid policy."""
        sources = read_sources(self.path)
        self._attempted = version_of(sources)
        self._install(compile_sources(sources, self.registry))
        return self.policy

    def check(self) -> bool:
        """Reload if the files changed; True when a new policy was installed. Never raises PolicyError."""
        try:
            sources = read_sources(self.path)
        except PolicyError as exc:
            self._attempted = ""  # retry once the files are back, whatever they contain
            return False if self._error and str(self._error) == str(exc) else self._failed(exc)
        version = version_of(sources)
        if version == self._attempted:
            return False
        self._attempted = version
        if self._policy is not None and version == self._policy.version:
            self._error = None  # back to the content in force (e.g. a bad edit was reverted)
            return False
        try:
            policy = compile_sources(sources, self.registry)
        except PolicyError as exc:
            return self._failed(exc)
        self._install(policy)
        _log().info("policy_reloaded", version=policy.version, files=len(policy.files), rules=len(policy.rules))
        if self.on_reload is not None:
            self.on_reload(policy)
        return True

    def _install(self, policy: Policy) -> None:
        self._policy = policy  # one reference assignment: readers see the old or the new policy, never a mix
        self._error = None
        self._loaded_at = time.time()

    def _failed(self, exc: PolicyError) -> bool:
        self._error = exc
        _log().error("policy_reload_failed", problems=[str(p) for p in exc.problems],
                  kept_version=self._policy.version if self._policy else None)
        if self.on_error is not None:
            self.on_error(exc)
        return False

    @property
    def stale(self) -> bool:
        """True when the files on disk are invalid and an older policy is in force."""
        return self._error is not None

    def status(self) -> dict[str, Any]:
        """For /readyz: loaded, stale, error, files, version, loaded_at (epoch seconds)."""
        p = self._policy
        return {
            "loaded": p is not None,
            "stale": self.stale,
            "error": str(self._error) if self._error else None,
            "files": list(p.files) if p else [],
            "version": p.version if p else None,
            "loaded_at": self._loaded_at,
        }

    async def watch(self) -> None:
        """Poll forever (run as a task; cancel to stop)."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await asyncio.to_thread(self.check)
            except Exception:  # a bug in a reload must not kill the watcher; the old policy stays in force
                _log().exception("policy_watch_error")

    def start(self) -> asyncio.Task:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.watch(), name="policy-watch")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
