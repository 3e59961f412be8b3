"""`gateway dev`: the whole product on one machine for a first look.

Starts, in one process: a development OIDC issuer, a demo reasoning backend that streams `reasoning_content`
with planted fake PII and secrets, and the gateway in front of it on 127.0.0.1:8080. Prints ready tokens, a curl
line and an `openai` SDK snippet. Ctrl-C stops everything.
"""
from __future__ import annotations

import asyncio
import errno
import sys
from pathlib import Path

from gateway.config import Settings

REQUESTER = ("alice", ("engineers",))
APPROVER = ("bob", ("sre-approvers",))
INVESTIGATOR = ("ivy", ("investigators",))
VAR = Path("var")
TOKEN_TTL_S = 12 * 3600


def example_policies() -> Path | None:
    """./policies when run from a checkout, else the examples next to the installed (editable) package."""
    for candidate in (Path("policies"), Path(__file__).resolve().parents[1] / "policies"):
        if candidate.is_dir():
            return candidate
    return None


def dev_settings(host: str, port: int, issuer_url: str, backend_url: str, policies: Path | None) -> Settings:
    return Settings.model_validate(
        {
            "server": {"host": host, "port": port, "shutdown_grace_s": 2},
            "upstream": {"url": backend_url},
            "auth": {"issuer": issuer_url, "audience": ["reasoning-gateway"], "groups_claim": "groups"},
            "policies": {"path": str(policies) if policies else None, "reload_s": 1.0},
            "admin": {"approver_groups": list(APPROVER[1]), "investigator_groups": list(INVESTIGATOR[1])},
            # a file-backed audit log under ./var/ (needs the policy: the log holds masked text only)
            "audit": {"store": f"file://{VAR / 'audit'}", "spool_dir": str(VAR / "spool"),
                      "signing_key": str(VAR / "audit-signing-key.pem")} if policies else {},
        }
    )


def banner(url: str, requester_token: str, approver_token: str, issuer_url: str) -> str:
    return f"""
  reasoning-gateway (dev) is up at {url}

  Requester token ({REQUESTER[0]}, groups {list(REQUESTER[1])}):
    {requester_token}

  Approver token ({APPROVER[0]}, groups {list(APPROVER[1])}):
    {approver_token}

  Try it with curl (streams reasoning_content, then the answer):
    curl -N {url}/v1/chat/completions -H "Authorization: Bearer $TOKEN" \\
      -H 'Content-Type: application/json' \\
      -d '{{"model":"fake-reasoner-1","stream":true,"messages":[{{"role":"user","content":"Why did billing tickets rise?"}}]}}'
    (export TOKEN=<the requester token above> first)

  Or with the openai SDK:
    from openai import OpenAI
    client = OpenAI(base_url="{url}/v1", api_key="<requester token>")
    stream = client.chat.completions.create(model="fake-reasoner-1", stream=True,
        messages=[{{"role": "user", "content": "Why did billing tickets rise?"}}])
    for chunk in stream: print(getattr(chunk.choices[0].delta, "reasoning_content", None) or chunk.choices[0].delta.content or "", end="")

  Tokens last {TOKEN_TTL_S // 3600} h. Mint more: curl -s {issuer_url}/token -d sub=carol -d groups=engineers
  Console (approvals inbox, session replay): {url}/admin/ui/  (paste the approver token; investigator token:
    curl -s {issuer_url}/token -d sub=ivy -d groups=investigators)
  Health: {url}/readyz   Metrics: {url}/metrics
  The demo backend plants fake PII and secrets in its reasoning; the policies mask them. Ctrl-C stops everything.
"""


async def _start(host: str, port: int):
    from gateway.auth.dev_issuer import DevIssuer
    from gateway.devtools.backend import BackendOptions, run_backend
    from gateway.server import start_gateway

    issuer = DevIssuer(host="127.0.0.1", port=0, audience="reasoning-gateway")
    await issuer.start()
    backend_runner, backend_url = await run_backend(
        "127.0.0.1", 0, BackendOptions(plant_secrets=True, delay_ms=25.0)
    )
    policies = example_policies()
    settings = dev_settings(host, port, issuer.url, backend_url, policies)
    try:
        gateway_runner, url = await start_gateway(settings)
    except OSError as exc:
        await backend_runner.cleanup()
        await issuer.stop()
        if exc.errno == errno.EADDRINUSE:
            raise SystemExit(f"gateway dev: port {port} is in use; try `gateway dev --port {port + 10}`") from None
        raise
    requester = issuer.mint(REQUESTER[0], REQUESTER[1], ttl_s=TOKEN_TTL_S)
    approver = issuer.mint(APPROVER[0], APPROVER[1], ttl_s=TOKEN_TTL_S)
    print(banner(url, requester, approver, issuer.url), flush=True)
    if policies:
        print(f"  Policies: {policies.resolve()} (edit them; changes apply within a second)", flush=True)
        print(f"  Audit log: {VAR.resolve() / 'audit'} (replay: gateway replay --store file://{VAR / 'audit'} "
              "<session id>; verify: gateway audit verify --store file://var/audit)\n", flush=True)
    else:
        print("  No policies/ directory found: masking is OFF. Run from the repository checkout.\n", flush=True)

    async def stop() -> None:
        await gateway_runner.cleanup()
        await backend_runner.cleanup()
        await issuer.stop()
        print("gateway dev: stopped.", flush=True)

    return stop


def run_dev(host: str = "127.0.0.1", port: int = 8080) -> int:
    from gateway.logs import configure_logging
    from gateway.signals import run_until_signalled

    # Request logs go to stderr so the banner on stdout stays readable (and can be piped).
    configure_logging("info", stream=sys.stderr)
    asyncio.run(run_until_signalled(lambda: _start(host, port)))
    return 0
