"""The web console at `/admin/ui/`: exact files only, strict headers, no inline code, and its JS logic (node)."""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp import web

from gateway.admin import console
from gateway.admin.console import CSP, FILES, console_routes

CONSOLE_DIR = Path(console.__file__).parent / "console"
LOGIC_TEST = Path(__file__).parent / "console_logic.test.mjs"
JS_FILES = sorted(name for name in FILES if name.endswith(".mjs"))
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")

EXPECTED_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@pytest.fixture
async def client(aiohttp_client):
    app = web.Application()
    app.router.add_routes(console_routes())

    async def secret(request: web.Request) -> web.Response:  # what a traversal out of /admin/ui/ would reach
        return web.Response(text="admin secret")

    app.router.add_get("/admin/x", secret)
    return await aiohttp_client(app)


def assert_security_headers(resp) -> None:
    assert resp.headers["Content-Security-Policy"] == EXPECTED_CSP
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Frame-Options"] == "DENY"


async def raw_get(client, target: str) -> tuple[int, bytes]:
    """GET with the request-target sent byte for byte (the test client would normalise `..` away)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


# -- serving -------------------------------------------------------------------------------------------------------
def test_csp_constant_is_the_contract():
    assert CSP == EXPECTED_CSP


@pytest.mark.parametrize("path", ["/admin/ui", "/admin/ui/", "/admin/ui/index.html", "/admin/ui/?x=1"])
async def test_index_is_served_with_the_security_headers(client, path):
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert_security_headers(resp)
    assert await resp.read() == (CONSOLE_DIR / "index.html").read_bytes()


@pytest.mark.parametrize("name, content_type", [
    ("console.mjs", "text/javascript; charset=utf-8"),
    ("logic.mjs", "text/javascript; charset=utf-8"),
    ("console.css", "text/css; charset=utf-8"),
    ("favicon.svg", "image/svg+xml"),
])
async def test_each_file_is_served_with_its_content_type(client, name, content_type):
    resp = await client.get(f"/admin/ui/{name}")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == content_type
    assert_security_headers(resp)
    assert await resp.read() == (CONSOLE_DIR / name).read_bytes()


async def test_head_is_answered(client):
    resp = await client.head("/admin/ui/console.css")
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/css; charset=utf-8"


def test_every_served_file_exists_and_nothing_else_is_shipped():
    assert sorted(p.name for p in CONSOLE_DIR.iterdir()) == sorted(FILES)


@pytest.mark.parametrize("target", [
    "/admin/ui/../x",
    "/admin/ui/%2e%2e/",
    "/admin/ui/%2e%2e/x",
    "/admin/ui/..%2fx",
    "/admin/ui/..%2F..%2Fconsole.py",
    "/admin/ui/%2e%2e%2f%2e%2e%2fconsole.py",
    "/admin/ui/./index.html",
    "/admin/ui//index.html",
    "/admin/ui/%69ndex.html",
    "/admin/ui/INDEX.HTML",
    "/admin/ui/index.html/",
    "/admin/ui/console",
    "/admin/ui/console.py",
    "/admin/ui/__init__.py",
    "/admin/ui/logic.test.mjs",
    "/admin/ui/console/index.html",
    "/admin/ui/index.html%00",
    "/admin/ui/nope.js",
])
async def test_anything_but_the_known_files_is_404(client, target):
    status, body = await raw_get(client, target)
    assert status == 404, (target, body[:200])
    assert b"admin secret" not in body
    assert not any(body == (CONSOLE_DIR / name).read_bytes() for name in FILES)


async def test_unknown_file_404_carries_the_headers(client):
    resp = await client.get("/admin/ui/unknown.js")
    assert resp.status == 404
    assert_security_headers(resp)
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_only_get_and_head(client):
    assert (await client.post("/admin/ui/")).status == 405


async def test_the_page_needs_no_token_and_reads_no_data(client):
    """Served without Authorization; the only URLs it names are its own files (data comes from the admin API)."""
    html = await (await client.get("/admin/ui/")).text()
    refs = re.findall(r'(?:src|href)="([^"#][^"]*)"', html)
    assert refs and all(r in {f"/admin/ui/{n}" for n in FILES} for r in refs), refs


# -- the page: no inline code, nothing from elsewhere ----------------------------------------------------------------
class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.script_text: list[str] = []
        self.styles = 0
        self.style_attrs: list[str] = []
        self.handlers: list[str] = []
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
            self._in_script = True
        if tag == "style":
            self.styles += 1
        for name, value in attrs:
            if name == "style":
                self.style_attrs.append(tag)
            if name.startswith("on"):
                self.handlers.append(f"{tag}.{name}")
            if name in ("src", "href", "action", "formaction") and value is not None:
                self.urls.append(value)

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.script_text.append(data)


def scan_index() -> _Scan:
    s = _Scan()
    s.feed((CONSOLE_DIR / "index.html").read_text("utf-8"))
    return s


def test_index_has_no_inline_scripts_styles_or_handlers():
    s = scan_index()
    assert s.scripts, "the page loads its module"
    assert all(a.get("src") for a in s.scripts) and not s.script_text
    assert all(a.get("type") == "module" for a in s.scripts)
    assert s.styles == 0 and s.style_attrs == [] and s.handlers == []
    assert not re.search(r"<style\b|\sstyle\s*=|javascript:", (CONSOLE_DIR / "index.html").read_text("utf-8"), re.I)


def test_nothing_is_loaded_from_another_origin():
    urls = scan_index().urls
    assert urls and all(u.startswith(("/admin/ui/", "#")) for u in urls), urls
    for name in [*JS_FILES, "console.css"]:
        text = (CONSOLE_DIR / name).read_text("utf-8")
        assert not re.search(r"https?://|//cdn|@import|url\(", text), name
        for spec in re.findall(r"""\bfrom\s+["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)""", text):
            assert any(x.startswith("./") for x in spec), (name, spec)  # only sibling modules


@pytest.mark.parametrize("name", JS_FILES)
def test_js_never_treats_data_as_html_or_code(name):
    text = (CONSOLE_DIR / name).read_text("utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "DOMParser", "eval(",
                 "new Function", "createContextualFragment", "srcdoc"):
        assert sink not in text, (name, sink)
    assert "localStorage" not in text, "the token lives in sessionStorage only"
    assert not re.search(r"setAttribute\(\s*[\"'](style|on\w+|href|src)", text), name


def test_the_token_goes_in_a_header_never_a_url():
    text = (CONSOLE_DIR / "console.mjs").read_text("utf-8")
    assert "sessionStorage" in text
    assert "Authorization: `Bearer ${token}`" in text
    assert not re.search(r"[?&](access_)?token=", text)
    fetches = re.findall(r"\bfetch\(([^,)]*)", text)
    assert fetches == ["path"], fetches  # one place calls the API: `api()`, with the header


# -- the JS itself ---------------------------------------------------------------------------------------------------
def run_node(*args: str) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    env = {**os.environ, "TZ": "UTC", "NODE_OPTIONS": ""}
    return subprocess.run([NODE, *args], capture_output=True, text=True, timeout=90, env=env,
                          cwd=Path(__file__).parents[2])


@needs_node
@pytest.mark.parametrize("name", JS_FILES)
def test_js_syntax(name):
    done = run_node("--check", str(CONSOLE_DIR / name))
    assert done.returncode == 0, done.stderr


@needs_node
def test_js_logic_unit_tests():
    done = run_node("--test", str(LOGIC_TEST))
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.search(r"^# pass [1-9]", done.stdout, re.M) and re.search(r"^# fail 0$", done.stdout, re.M), done.stdout
