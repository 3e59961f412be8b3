"""Test helpers that start real processes and services on loopback."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

import yaml


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process whose output goes to a log file; stopped by pid when the test is done."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, name: str = "proc",
                 cwd: str | None = None) -> None:
        self.log_path = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=cwd
        )
        self.name = name

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_line(self, prefix: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.output().splitlines():
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not print {prefix!r}:\n{self.output()[-3000:]}")

    def stop(self, sig_timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(sig_timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


def wait_http_ok(url: str, timeout: float = 15.0, proc: Proc | None = None) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        if proc is not None and proc.popen.poll() is not None:
            break
        time.sleep(0.05)
    detail = proc.output()[-3000:] if proc else ""
    raise RuntimeError(f"{url} not ready ({last})\n{detail}")


def start_backend(*extra: str) -> tuple[Proc, str]:
    proc = Proc([sys.executable, "-m", "gateway.devtools.backend", "--port", "0", "--test-controls", *extra],
                name="backend")
    url = proc.wait_for_line("READY ")
    return proc, url


def write_config(data: dict) -> str:
    fd, path = tempfile.mkstemp(prefix="gateway-", suffix=".yaml")
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(data, fh)
    return path


def gateway_config(issuer_url: str, upstream_url: str, **sections) -> dict:
    cfg = {
        "server": {"host": "127.0.0.1", "port": free_port(), "shutdown_grace_s": 5},
        "upstream": {"url": upstream_url, "connect_timeout_s": 2, "read_timeout_s": 10},
        "auth": {"issuer": issuer_url, "audience": ["reasoning-gateway"], "jwks_min_refetch_s": 1},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


def start_gateway(cfg: dict, *, env: dict[str, str] | None = None, ready: bool = True) -> tuple[Proc, str]:
    path = write_config(cfg)
    proc = Proc([sys.executable, "-m", "gateway.cli", "serve", "--config", path], env=env, name="gateway")
    url = f"http://127.0.0.1:{cfg['server']['port']}"
    if ready:
        wait_http_ok(url + "/readyz", proc=proc)
    else:
        wait_http_ok(url + "/healthz", proc=proc)
    return proc, url


class ThreadedIssuer:
    """The dev OIDC issuer serving on its own event loop thread, so any test (sync or async) can mint tokens."""

    def __init__(self, port: int = 0) -> None:
        from gateway.auth.dev_issuer import DevIssuer

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.issuer = DevIssuer(host="127.0.0.1", port=port, audience="reasoning-gateway")
        asyncio.run_coroutine_threadsafe(self.issuer.start(), self.loop).result(10)
        self.url = self.issuer.url

    def mint(self, sub: str = "alice", groups=("engineers",), **kw) -> str:
        return self.issuer.mint(sub, groups, **kw)

    def rotate(self, alg: str = "RS256") -> str:
        # Key state belongs to the issuer's loop thread: change it there.
        return asyncio.run_coroutine_threadsafe(_call(self.issuer.rotate, alg), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.issuer.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def _call(fn, *args):
    return fn(*args)
