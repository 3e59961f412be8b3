"""`gateway serve --workers N`: N processes share the port, and SIGTERM to the supervisor stops them all."""
import os
import signal
import sys
import time
import urllib.request

from tests.support import Proc, gateway_config, wait_http_ok, write_config


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    with open(path) as fh:
        return [int(p) for p in fh.read().split()]


def test_two_workers_serve_and_stop_together(issuer, backend):
    cfg = gateway_config(issuer.url, backend)
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
            req = urllib.request.Request(url + "/v1/models", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                assert resp.status == 200
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(15) == 0
        for pid in workers:
            assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    finally:
        proc.stop()
