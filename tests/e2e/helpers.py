"""Helpers for the end-to-end tests: handcrafted HTTP/1.1 over raw sockets, backend counters, metrics, SSE."""
from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

HEX_ID = re.compile(r"^[0-9a-f]{32}$")
"""Shape of the request ids the gateway assigns (X-Gateway-Request-Id)."""
SESSION_ID = re.compile(r"^g\d{8}T\d{9}Z-[0-9a-f]{32}$")
"""Shape of a session id the gateway assigns (X-Gateway-Session-Id when the client named none): its start time."""


# --- raw HTTP/1.1 ---------------------------------------------------------------------------------------------

@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class RawResult:
    responses: list[RawResponse] = field(default_factory=list)
    closed: bool = False
    """The server closed (or reset) the connection."""
    leftover: bytes = b""
    """Bytes after the last complete response (should be empty)."""


def _parse_one(buf: bytes, at_eof: bool) -> tuple[RawResponse | None, bytes]:
    """One response off the front of ``buf``; (None, buf) while incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None, buf
    head = buf[:end].decode("latin-1").split("\r\n")
    rest = buf[end + 4:]
    _version, status, *reason = head[0].split(" ", 2)
    headers = []
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    resp = RawResponse(int(status), reason[0] if reason else "", headers, b"")
    te = (resp.header("Transfer-Encoding") or "").lower()
    length = resp.header("Content-Length")
    if resp.status in (204, 304) or 100 <= resp.status < 200:
        return resp, rest
    if te == "chunked":
        body = b""
        pos = 0
        while True:
            line_end = rest.find(b"\r\n", pos)
            if line_end < 0:
                return None, buf
            size = int(rest[pos:line_end].split(b";")[0], 16)
            start = line_end + 2
            if size == 0:
                trailer_end = rest.find(b"\r\n\r\n", line_end)
                if trailer_end < 0:
                    return None, buf
                resp.body = body
                return resp, rest[trailer_end + 4:]
            if len(rest) < start + size + 2:
                return None, buf
            body += rest[start:start + size]
            pos = start + size + 2
    if length is not None:
        n = int(length)
        if len(rest) < n:
            return None, buf
        resp.body = rest[:n]
        return resp, rest[n:]
    if not at_eof:  # body delimited by the connection close
        return None, buf
    resp.body = rest
    return resp, b""


async def raw_http(url: str, data: bytes, *, quiet_s: float = 3.0, expect: int | None = None) -> RawResult:
    """Send ``data`` exactly as given; read and parse responses until the server closes the connection, stays
    quiet for ``quiet_s`` (send ``Connection: close`` on the last request to avoid waiting), or ``expect``
    responses have arrived."""
    u = URL(url)
    reader, writer = await asyncio.open_connection(u.host, u.port)
    result = RawResult()
    buf = b""
    try:
        writer.write(data)
        await writer.drain()
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), quiet_s)
            except asyncio.TimeoutError:
                break
            except (ConnectionResetError, BrokenPipeError):
                result.closed = True
                break
            if not chunk:
                result.closed = True
                break
            buf += chunk
            while buf:
                resp, buf = _parse_one(buf, False)
                if resp is None:
                    break
                result.responses.append(resp)
            if expect is not None and len(result.responses) >= expect:
                break
        while buf and result.closed:
            resp, buf = _parse_one(buf, True)
            if resp is None:
                break
            result.responses.append(resp)
        result.leftover = buf
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionResetError, BrokenPipeError):
            pass
    return result


def request_bytes(method: str, target: str, headers: list[tuple[str, str]] | dict[str, str] = (),
                  body: bytes = b"") -> bytes:
    items = headers.items() if isinstance(headers, dict) else headers
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in items) + "\r\n"
    return head.encode("latin-1") + body


# --- the backend's view -----------------------------------------------------------------------------------------

async def backend_stats(backend: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as s, s.get(backend + "/_test/stats") as r:
        assert r.status == 200
        return await r.json()


async def backend_last(backend: str) -> dict | None:
    async with aiohttp.ClientSession() as s, s.get(backend + "/_test/last") as r:
        return await r.json() if r.status == 200 else None


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 3.0, interval: float = 0.05) -> bool:
    """Poll ``check`` until it is true (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)


# --- metrics ----------------------------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m and m.group(1) == name:
            out.append((dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def metric(text: str, name: str, **labels: str) -> float | None:
    """Sum of the samples of ``name`` whose labels include ``labels``; None if there is none."""
    found = [v for lbls, v in samples(text, name) if all(lbls.get(k) == v for k, v in labels.items())]
    return sum(found) if found else None


async def scrape(gateway: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(gateway + "/metrics") as r:
        assert r.status == 200
        return await r.text()


# --- SSE --------------------------------------------------------------------------------------------------------

def sse_frames(body: bytes) -> list[bytes]:
    """The raw frames of an SSE body (each without its blank-line terminator)."""
    frames = body.split(b"\n\n")
    assert frames[-1] == b"", f"stream does not end on a frame boundary: {body[-80:]!r}"
    return frames[:-1]


def sse_data(body: bytes) -> list[str]:
    """The `data:` payload of each frame."""
    out = []
    for frame in sse_frames(body):
        lines = [ln[5:].lstrip(" ") for ln in frame.decode().split("\n") if ln.startswith("data:")]
        out.append("\n".join(lines))
    return out
