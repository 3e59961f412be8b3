"""The admin web console at `/admin/ui/`: an approvals inbox and a session replay viewer, as static files.

The files (`gateway/admin/console/`, shipped as package data) hold no data, so serving them needs no token; the
page asks the user for a bearer token, keeps it in `sessionStorage`, and sends it with every admin API call the
script makes (the API authenticates, authorises and audits those as usual).

Only the files named in `FILES` are served, read once when the routes are built and matched against the *raw*
request-target: a name that merely decodes or normalises to one of them (`%2e%2e`, `./`, `%69ndex.html`) is a
404, and nothing is ever looked up on disk from a request (so there is no path to traverse). Every reply carries
a strict Content-Security-Policy: scripts, styles and fetches from this origin only, no inline code, no framing.
Mount `console_routes()` before the proxy's catch-all route, like the admin API.
"""
from __future__ import annotations

from importlib import resources

from aiohttp import web

from gateway.errors import GatewayError, error_bytes

PREFIX = "/admin/ui"
INDEX = "index.html"
FILES: dict[str, str] = {
    INDEX: "text/html; charset=utf-8",
    "console.mjs": "text/javascript; charset=utf-8",
    "logic.mjs": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
"""Served file name → Content-Type. Nothing else under `/admin/ui/` exists."""

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def read_files() -> dict[str, bytes]:
    """The console's files from the installed package (a missing one fails start-up, not a later request)."""
    folder = resources.files("gateway.admin").joinpath("console")
    return {name: folder.joinpath(name).read_bytes() for name in FILES}


def _not_found() -> web.Response:
    err = GatewayError(404, "not_found", "No console file at this path: open /admin/ui/.")
    return web.Response(status=404, body=error_bytes(err, "openai"), content_type="application/json",
                        headers=SECURITY_HEADERS)


def console_routes() -> list[web.RouteDef]:
    """GET (and HEAD) `/admin/ui`, `/admin/ui/` (the page) and `/admin/ui/<file>` (its files); anything else under
    `/admin/ui/` is a 404 from here too (with the same headers)."""
    files = read_files()
    targets = {f"{PREFIX}/{name}": name for name in FILES} | {PREFIX: INDEX, f"{PREFIX}/": INDEX}

    async def serve(request: web.Request) -> web.Response:
        # the raw target, not the decoded/normalised path: only the exact names are served
        path = request.raw_path.partition("?")[0]
        name = targets.get(path)
        if name is None:
            return _not_found()
        return web.Response(body=files[name], headers={"Content-Type": FILES[name], **SECURITY_HEADERS})

    serve.__name__ = serve.__qualname__ = "admin:console"
    return [web.get(PREFIX, serve), web.get(PREFIX + "/{tail:.*}", serve)]
