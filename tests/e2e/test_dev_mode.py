"""`gateway dev` as a new user runs it: one command, printed tokens that work, an audit log under ./var/."""
from __future__ import annotations

import re
import signal
import sys

import openai

from gateway.audit import cli as audit_cli
from tests.support import Proc, free_port, wait_http_ok


def test_gateway_dev_serves_masks_records_and_stops_cleanly(tmp_path):
    port = free_port()
    proc = Proc([sys.executable, "-m", "gateway.cli", "dev", "--port", str(port)], name="dev", cwd=str(tmp_path))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(url + "/readyz", timeout=30, proc=proc)
        proc.wait_for_line("  Requester token", timeout=10)
        out = proc.output()
        tokens = re.findall(r"^    (ey[\w-]+\.[\w-]+\.[\w-]+)$", out, re.M)
        assert len(tokens) == 2, out
        client = openai.OpenAI(base_url=url + "/v1", api_key=tokens[0])
        text = ""
        for chunk in client.chat.completions.create(
                model="fake-reasoner-1", stream=True, extra_headers={"X-Session-Id": "dev-1"},
                messages=[{"role": "user", "content": "Why did billing tickets rise?"}]):
            if chunk.choices:
                d = chunk.choices[0].delta
                text += (d.model_extra or {}).get("reasoning_content") or d.content or ""
        assert "[EMAIL]" in text  # the demo backend's planted values come out masked
        assert "Audit log:" in out
        assert f"{url}/admin/ui/" in out
        import urllib.request
        with urllib.request.urlopen(url + "/admin/ui/", timeout=5) as resp:
            assert resp.status == 200 and b"<html" in resp.read().lower()
    finally:
        proc.popen.send_signal(signal.SIGINT)
        code = proc.popen.wait(20)
        proc.stop()
    assert code == 0, proc.output()[-2000:]
    assert "Traceback" not in proc.output()
    # the audit log under ./var/ holds the session and verifies (the final digest was written at shutdown)
    assert (tmp_path / "var" / "audit").is_dir()
    assert audit_cli.verify(f"file://{tmp_path / 'var' / 'audit'}",
                            public_key_files=[str(tmp_path / "var" / "audit-signing-key.pem.pub")]) == 0
