"""Child processes of the benchmark and what /proc says about them (CPU time, resident memory).

Linux only: CPU and RSS are read from /proc rather than through psutil, which keeps the harness free of extra
dependencies; a target and the processes it forks (``--workers``) are summed as one.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from contextlib import closing
from pathlib import Path

import aiohttp

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "; comm may contain spaces


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process tree (10 ms resolution on most kernels)."""
    total = 0
    for p in process_tree(pid):
        try:
            fields = _stat_fields(p)
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError):
            pass
    return total / _TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of the process tree."""
    total = 0
    for p in process_tree(pid):
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * _PAGE
        except (OSError, IndexError):
            pass
    return total


class Child:
    """A child process with its output in a log file (never a pipe nobody reads, which would block it)."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, cwd: str | None = None) -> None:
        self.name, self.argv = name, argv
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.started_at = time.perf_counter()
        self.proc: asyncio.subprocess.Process | None = None
        self._cwd = cwd

    async def start(self) -> "Child":
        self.started_at = time.perf_counter()
        self.proc = await asyncio.create_subprocess_exec(*self.argv, stdout=self._log, stderr=asyncio.subprocess.STDOUT,
                                                         stdin=asyncio.subprocess.DEVNULL, cwd=self._cwd)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output_tail(self, n: int = 2000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    async def wait_ready_line(self, timeout: float = 20.0) -> str:
        """The URL from the child's `READY <url>` line."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith("READY "):
                    return line.split()[1]
            if self.proc is not None and self.proc.returncode is not None:
                break
            await asyncio.sleep(0.02)
        raise RuntimeError(f"{self.name} did not print READY:\n{self.output_tail()}")

    async def wait_http_ok(self, url: str, timeout: float = 20.0, interval: float = 0.005) -> float:
        """Poll ``url`` until it answers 200; returns seconds since the process was spawned."""
        deadline = time.perf_counter() + timeout
        last = "no answer"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.perf_counter() < deadline:
                try:
                    async with session.get(url) as r:
                        if r.status == 200:
                            return time.perf_counter() - self.started_at
                        last = f"HTTP {r.status}: {(await r.text())[:300]}"
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    last = exc.__class__.__name__
                if self.proc is not None and self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output_tail()}")
                await asyncio.sleep(interval)
        raise RuntimeError(f"{url} not ready ({last}):\n{self.output_tail()}")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._log.close()


class Loadgen:
    """The load generator process (``bench.loadgen --serve``), driven by JSON lines."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> "Loadgen":
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.loadgen", "--serve", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=16 * 1024 * 1024)
        return self

    async def _ask(self, command: dict) -> dict:
        assert self.proc and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the load generator exited")
        return json.loads(line)

    async def load(self, config: dict) -> dict:
        return await self._ask({"load": config})

    async def hold(self, config: dict) -> dict:
        """Open ``config['hold_streams']`` streams; returns {"held", "failed"} with them still open."""
        return await self._ask({"hold": config})

    async def release(self) -> dict:
        return await self._ask({"release": True})

    async def stop(self) -> None:
        if self.proc and self.proc.returncode is None:
            assert self.proc.stdin
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def stop_all(loadgen: "Loadgen", children: list["Child"], issuer=None) -> None:
    """Tear a benchmark down: the load generator, then every child (last started first), then the in-process IdP."""
    await loadgen.stop()
    for child in reversed(children):
        await child.stop()
    if issuer is not None:
        await issuer.stop()


def run_and_save(name: str, run, args, unavailable: type[Exception]) -> dict:
    """`asyncio.run(run(args))`, exit with a one-line reason if a target cannot start, write `--out` JSON."""
    import asyncio
    import json
    from pathlib import Path

    try:
        results = asyncio.run(run(args))
    except unavailable as exc:
        raise SystemExit(f"{name}: {exc}") from None
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    return results
