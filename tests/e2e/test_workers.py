"""`gateway serve --workers N`: N processes share the port and their shared state (Redis), and SIGTERM to the
supervisor stops them all."""
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

from tests.support import Proc, gateway_config, wait_http_ok, write_config


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    with open(path) as fh:
        return [int(p) for p in fh.read().split()]


def _call(url: str, token: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_workers_without_shared_state_refuse_to_start(issuer, backend):
    cfg = gateway_config(issuer.url, backend)
    proc = Proc([sys.executable, "-m", "gateway.cli", "serve", "--workers", "2", "--config", write_config(cfg)],
                name="gateway-workers")
    assert proc.popen.wait(30) == 2
    assert "revocations.backend: redis" in proc.output() and "Traceback" not in proc.output()


def test_two_workers_serve_share_revocations_and_stop_together(issuer, backend, redis_server):
    redis_server.start()
    cfg = gateway_config(issuer.url, backend, revocations={"backend": "redis", "redis_url": redis_server.url},
                         approvals={"backend": "redis", "redis_url": redis_server.url},
                         admin={"admin_groups": ["gateway-admins"]})
    proc = Proc([sys.executable, "-m", "gateway.cli", "serve", "--workers", "2", "--config", write_config(cfg)],
                name="gateway-workers")
    url = f"http://127.0.0.1:{cfg['server']['port']}"
    try:
        wait_http_ok(url + "/readyz", proc=proc)
        deadline = time.monotonic() + 10
        while len(_children(proc.popen.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = _children(proc.popen.pid)
        assert len(workers) == 2
        token = issuer.mint("alice", ["engineers"])
        for _ in range(20):
            assert _call(url + "/v1/models", token)[0] == 200
        # a revocation made through whichever worker answers applies on every worker at once
        status, rev = _call(url + "/admin/revocations", issuer.mint("root", ["gateway-admins"]), "POST",
                            {"subject": "alice", "reason": "offboarded", "ttl_s": 600})
        assert status == 201 and rev["kind"] == "subject"
        time.sleep(0.2)
        answers = [_call(url + "/v1/models", token) for _ in range(20)]
        assert all(code == 401 and body["error"]["code"] == "token_revoked" for code, body in answers), answers
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(15) == 0
        for pid in workers:
            assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    finally:
        proc.stop()
