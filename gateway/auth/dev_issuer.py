"""A small but real OIDC issuer for `gateway dev`, the tests and the benchmark. Never for production.

It serves discovery and a JWKS over HTTP and signs tokens with real RSA/EC keys, so the verifier is exercised
exactly as against a production IdP. ``POST /token`` hands out tokens to anyone who asks: that is the point in
development, and the reason it binds to loopback by default.

Run alone: ``python -m gateway.auth.dev_issuer --port 9100`` prints the issuer URL on its first stdout line.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.signals import run_until_signalled

_GENERATORS = {
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "PS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ES384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
}


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    alg: str
    private_key: Any
    public_jwk: dict[str, Any]


class DevIssuer:
    """An in-process OIDC issuer on a real socket. ``url`` is the issuer (and `iss`) once started."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, audience: str = "reasoning-gateway") -> None:
        self.host = host
        self.port = port
        self.audience = audience
        self.url = ""
        self.fetch_count: Counter[str] = Counter()
        """Requests served per endpoint: `discovery`, `jwks`, `token`."""
        self._keys: dict[str, _Key] = {}
        self._current: dict[str, str] = {}
        self._runner: web.AppRunner | None = None
        self.rotate("RS256")
        self.rotate("ES256")

    @property
    def jwks_requests(self) -> int:
        return self.fetch_count["jwks"]

    @property
    def discovery_requests(self) -> int:
        return self.fetch_count["discovery"]

    # -- keys -------------------------------------------------------------------------------------------------
    def rotate(self, alg: str = "RS256") -> str:
        """Make a new current key for ``alg`` and return its kid; older keys stay published until retired."""
        if alg not in _GENERATORS:
            raise ValueError(f"unsupported alg {alg}; choose from {sorted(_GENERATORS)}")
        private_key = _GENERATORS[alg]()
        kid = f"{alg.lower()}-{secrets.token_hex(6)}"
        jwk = jwt.get_algorithm_by_name(alg).to_jwk(private_key.public_key(), as_dict=True)
        self._keys[kid] = _Key(kid, alg, private_key, {**jwk, "kid": kid, "alg": alg, "use": "sig"})
        self._current[alg] = kid
        return kid

    def retire(self, kid: str) -> None:
        """Stop publishing ``kid`` (a retired current key leaves its alg without a signing key until rotate)."""
        key = self._keys.pop(kid)
        if self._current.get(key.alg) == kid:
            del self._current[key.alg]

    def current_kid(self, alg: str = "RS256") -> str:
        return self._current[alg]

    def private_key(self, kid: str) -> Any:
        """The signing key behind ``kid`` (tests use it to craft tokens mint() would refuse to make)."""
        return self._keys[kid].private_key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk for k in self._keys.values()]}

    # -- tokens -----------------------------------------------------------------------------------------------
    def mint(
        self,
        sub: str,
        groups: Iterable[str] = (),
        *,
        alg: str = "RS256",
        kid: str | None = None,
        ttl_s: float | None = 3600,
        claims: dict[str, Any] | None = None,
        iat: float | None = None,
        nbf: float | None = None,
        aud: str | list[str] | None = None,
        iss: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """A signed access token. ``kid`` picks a key (its alg wins); claims/headers set to None are removed."""
        key = self._keys[kid] if kid is not None else self._keys[self._current[alg]]
        issued = int(time.time() if iat is None else iat)
        payload: dict[str, Any] = {
            "iss": iss if iss is not None else self.url,
            "sub": sub,
            "aud": aud if aud is not None else self.audience,
            "iat": issued,
            "jti": secrets.token_hex(12),
            "azp": "gateway-dev",
            "groups": list(groups),
        }
        if ttl_s is not None:
            payload["exp"] = int(issued + ttl_s)
        if nbf is not None:
            payload["nbf"] = int(nbf)
        payload.update(claims or {})
        header = {"kid": key.kid, **(headers or {})}
        return jwt.encode(
            {k: v for k, v in payload.items() if v is not None},
            key.private_key,
            algorithm=key.alg,
            headers={k: v for k, v in header.items() if v is not None},
        )

    # -- HTTP -------------------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_post("/token", self._token)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "DevIssuer":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _discovery(self, request: web.Request) -> web.Response:
        self.fetch_count["discovery"] += 1
        return web.json_response({
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks",
            "token_endpoint": f"{self.url}/token",
            "id_token_signing_alg_values_supported": sorted({k.alg for k in self._keys.values()}),
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
        })

    async def _jwks(self, request: web.Request) -> web.Response:
        self.fetch_count["jwks"] += 1
        return web.json_response(self.jwks())

    async def _token(self, request: web.Request) -> web.Response:
        """Dev-only: `sub` and `groups` (JSON list, repeated form field, or comma-separated), optional `ttl_s`."""
        self.fetch_count["token"] += 1
        body: Any
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except json.JSONDecodeError:
                raise web.HTTPBadRequest(text="body is not JSON") from None
            if not isinstance(body, dict):
                raise web.HTTPBadRequest(text="body must be a JSON object")
            groups = body.get("groups", [])
            groups = [groups] if isinstance(groups, str) else groups
        else:
            body = await request.post()
            groups = [g for value in body.getall("groups", []) for g in str(value).split(",") if g]
        sub = body.get("sub")
        if not isinstance(sub, str) or not sub:
            raise web.HTTPBadRequest(text="`sub` is required")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise web.HTTPBadRequest(text="`groups` must be a list of strings")
        try:
            ttl_s = float(body.get("ttl_s", 3600))
        except (TypeError, ValueError):
            raise web.HTTPBadRequest(text="`ttl_s` must be a number") from None
        token = self.mint(sub, groups, ttl_s=ttl_s)
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": int(ttl_s)})


async def _serve(host: str, port: int, audience: str) -> None:
    async def start():
        issuer = DevIssuer(host, port, audience)
        await issuer.start()
        print(issuer.url, flush=True)
        print(f"dev issuer up; get a token: curl -d sub=alice -d groups=dev {issuer.url}/token", file=sys.stderr)
        return issuer.stop

    await run_until_signalled(start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Development OIDC issuer (hands out tokens to anyone: dev only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--audience", default="reasoning-gateway")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        print("warning: the dev issuer mints tokens for anyone who can reach it", file=sys.stderr)
    asyncio.run(_serve(args.host, args.port, args.audience))


if __name__ == "__main__":
    main()
