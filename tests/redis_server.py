"""A private `redis-server` on a free loopback port, started and stopped by the test suite.

    with running_redis() as r:      # r.url == "redis://127.0.0.1:<port>/0"
        r.stop(); ...; r.start()    # same port: a Redis outage and its recovery
        r.kill()                    # SIGKILL, as a crashed server

Tests never touch the machine's shared Redis on 6379: each run gets its own server with no persistence, bound to
127.0.0.1, stopped by its pid. `redis_server` / `redis_url` fixtures live in `tests/conftest.py`.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.support import free_port


class RedisUnavailable(RuntimeError):
    """No `redis-server` binary on this machine."""


def find_redis_server() -> str:
    path = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server")
    if not path:
        raise RedisUnavailable("redis-server not found (Debian package redis-server, or set REDIS_SERVER_BIN)")
    return path


@dataclass
class RedisServer:
    port: int
    workdir: str
    binary: str
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        log = open(os.path.join(self.workdir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", self.workdir, "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}: {self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM), waiting until the port is closed."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-operation, as in a crash."""
        self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout: float) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.workdir, "redis.log"), "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    workdir = tempfile.mkdtemp(prefix="gw-redis-")
    server = RedisServer(port=free_port(), workdir=workdir, binary=find_redis_server())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
