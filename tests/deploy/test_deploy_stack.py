"""The compose stack rehearsed without Docker: the same commands and configuration, on loopback.

There is no container engine here, so each service's own command runs as a local process instead, with only what a
container provides rewritten: service host names become loopback addresses (`s3:8333` -> `127.0.0.1:<port>`), mount
targets become their sources or temp dirs, and listening ports are picked free. Everything else -- the SeaweedFS
flags and credentials, the dev issuer's command, deploy/gateway.example.yaml with each replica's GATEWAY_* env, the
healthcheck commands and deploy/lb/haproxy.cfg -- is what the stack runs. Each part is skipped when its binary
(`weed`, `redis-server`, `haproxy`, `wget`) is missing.
"""
from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy_support import (
    COMPOSE_FILE,
    EXAMPLE_CONFIG,
    GATEWAY_REPLICAS,
    HAPROXY_CFG,
    POLICIES,
    compose_env,
    compose_mounts,
    duration_seconds,
    effective_config,
    flag_value,
    gateway_settings,
)
from tests.support import Proc, free_port, wait_http_ok

pytestmark = pytest.mark.timeout(300)


# ---- SeaweedFS, as the `s3` service runs it ---------------------------------------------------------------------------

@dataclass
class LocalS3:
    endpoint: str
    ports: dict[str, int]
    env: dict[str, str]
    bucket: str


def _weed_or_skip() -> str:
    from tests.audit.seaweed import WeedUnavailable, find_weed

    try:
        return find_weed()
    except WeedUnavailable as exc:
        pytest.skip(str(exc))


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def s3_service(compose: dict) -> Iterator[LocalS3]:
    """`weed <the s3 service's command>` with its environment; ready when its compose healthcheck passes."""
    from tests.audit.seaweed import GRPC_OFFSET, PORT_NAMES, pick_ports

    weed = _weed_or_skip()
    if shutil.which("wget") is None:
        pytest.skip("wget not installed (the s3 healthcheck uses it)")
    svc = compose["services"]["s3"]
    workdir = Path(tempfile.mkdtemp(prefix="deploy-s3-"))
    ports = dict(zip(PORT_NAMES, pick_ports(), strict=True))
    argv = []
    for arg in svc["command"]:
        if arg.startswith("-dir="):
            arg = f"-dir={workdir / 'data'}"
        elif arg.startswith("-ip.bind="):
            arg = "-ip.bind=127.0.0.1"
        argv.append(arg)
    assert "mini" in argv and any(a.startswith("-dir=") for a in argv)
    argv += ["-ip=127.0.0.1", *(f"-{name}={port}" for name, port in ports.items()),
             f"-s3.localSocket={workdir / 's3.sock'}", f"-filer.localSocket={workdir / 'filer.sock'}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "WEED_"))}
    env.update({k: str(v) for k, v in svc["environment"].items()})
    (workdir / "data").mkdir()
    log = open(workdir / "weed.log", "wb")
    proc = subprocess.Popen([weed, *argv], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=workdir, env=env, start_new_session=True)
    try:
        # the compose healthcheck, pointed at these ports: S3 answers and the bucket exists
        check = svc["healthcheck"]["test"][1]
        check = check.replace(":8333/", f":{ports['s3.port']}/").replace(":8888/", f":{ports['filer.port']}/")
        deadline = time.monotonic() + 90
        while subprocess.run(["sh", "-c", check], capture_output=True, timeout=30).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"s3 never became healthy:\n{(workdir / 'weed.log').read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield LocalS3(endpoint=f"http://127.0.0.1:{ports['s3.port']}", ports=ports,
                      env={k: str(v) for k, v in svc["environment"].items()},
                      bucket=flag_value(svc["command"], "-bucket"))
    finally:
        _stop(proc)
        log.close()
        for port in ports.values():  # a killed weed leaves its gRPC sockets, named after our ports
            for path in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-grpc-{port + GRPC_OFFSET}.sock"):
                path.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)


def test_s3_service_honours_conditional_writes_with_the_replicas_settings(s3_service: LocalS3, compose: dict):
    """What every replica does at start-up (and refuses to start without), with its own S3 settings."""
    from gateway.audit.service import store_options
    from gateway.audit.store import store_from_uri

    svc = compose["services"][GATEWAY_REPLICAS[0]]
    settings = gateway_settings(EXAMPLE_CONFIG.read_text(), compose_env(svc))
    options = store_options(settings.audit, settings.audit.store)
    assert options["endpoint_url"] == "http://s3:8333"
    options["endpoint_url"] = s3_service.endpoint

    async def probe() -> None:
        store = store_from_uri(settings.audit.store, **options)
        try:
            await store.probe_conditional_writes()
        finally:
            await store.close()

    asyncio.run(probe())


# ---- the whole stack: two replicas sharing Redis and S3 ----------------------------------------------------------------

def _leaves(data: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _leaves(v, (*path, k))
    else:
        yield path, data


def _set(data: dict, path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        data = data.setdefault(part, {})
    data[path[-1]] = value


def _get(data: dict, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _env_value(value: Any) -> str:
    if isinstance(value, str):
        assert yaml.safe_load(value) == value, f"{value!r} would not survive the env parser"
        return value
    return json.dumps(value)


def _localize(config: dict, hosts: dict[str, str], paths: dict[str, str]) -> dict:
    """Rewrite `//service:port` authorities and mount-target path prefixes in every string of the config."""
    out = copy.deepcopy(config)
    for path, value in list(_leaves(out)):
        if not isinstance(value, str):
            continue
        new = value
        for service, local in hosts.items():
            new = re.sub(rf"//{re.escape(service)}(?=/|$)", f"//{local}", new)
        for target, source in paths.items():
            if new == target or new.startswith(target.rstrip("/") + "/"):
                new = source + new[len(target.rstrip("/")):]
        _set(out, path, new)
    return out


def _post(url: str, data: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _token(issuer: str, sub: str, groups: str) -> str:
    status, body = _post(f"{issuer}/token", urllib.parse.urlencode({"sub": sub, "groups": groups}).encode(),
                         {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, body
    return json.loads(body)["access_token"]


def _chat(gateway: str, token: str) -> tuple[int, bytes]:
    body = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "What is 2+2?"}]}).encode()
    return _post(f"{gateway}/v1/chat/completions", body,
                 {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def _swap(argv: list[str], flag: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(flag) + 1] = value
    return out


def test_two_replicas_run_the_deploy_config_sharing_redis_and_s3(
        s3_service: LocalS3, redis_server, compose: dict, tmp_path: Path) -> None:
    services = compose["services"]
    procs: list[Proc] = []
    try:
        # the idp and the backend: their compose commands, bound to loopback on free ports
        idp_argv = [*services["idp"]["entrypoint"], *services["idp"]["command"]]
        idp_port = free_port()
        idp = Proc([sys.executable, *_swap(_swap(idp_argv, "--host", "127.0.0.1"), "--port", str(idp_port))[1:]],
                   name="idp")
        procs.append(idp)
        issuer = "http://" + idp.wait_for_line("http://")
        assert issuer == f"http://127.0.0.1:{idp_port}"
        be_argv = [*services["backend"]["entrypoint"], *services["backend"]["command"]]
        be_port = free_port()
        backend = Proc([sys.executable, *_swap(_swap(be_argv, "--host", "127.0.0.1"), "--port", str(be_port))[1:]],
                       name="backend")
        procs.append(backend)
        backend.wait_for_line("READY ")

        hosts = {"idp:9100": f"127.0.0.1:{idp_port}", "backend:9000": f"127.0.0.1:{be_port}",
                 "redis:6379": f"127.0.0.1:{redis_server.port}",
                 "s3:8333": s3_service.endpoint.removeprefix("http://")}
        file_config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
        gateways: dict[str, tuple[Proc, str, Path]] = {}
        for name in GATEWAY_REPLICAS:
            svc = services[name]
            effective = effective_config(EXAMPLE_CONFIG.read_text(), compose_env(svc))
            state = tmp_path / name
            paths = {}
            for target, (source, _) in compose_mounts(svc).items():
                if source.startswith("."):
                    paths[target] = str((COMPOSE_FILE.parent / source).resolve())
                else:  # the replica's named volume: a directory of its own
                    state.mkdir()
                    paths[target] = str(state)
            local = _localize(effective, hosts, paths)
            port = free_port()
            _set(local, ("server", "host"), "127.0.0.1")
            _set(local, ("server", "port"), port)
            # every value that differs from the file goes in as an env override, as compose does
            env = {f"GATEWAY_{'__'.join(p).upper()}": _env_value(v) for p, v in _leaves(local)
                   if _get(file_config, p) != v}
            assert _get(local, ("policies", "path")) == str(POLICIES)
            proc = Proc([sys.executable, "-m", "gateway.cli", "serve", "--config", str(EXAMPLE_CONFIG)], env=env,
                        name=name)
            procs.append(proc)
            gateways[name] = (proc, f"http://127.0.0.1:{port}", state)
        for name, (proc, url, _) in gateways.items():
            wait_http_ok(f"{url}/readyz", timeout=60, proc=proc)

        # both replicas serve, authenticated by the idp, forwarding to the backend, auditing to S3
        (a_proc, a_url, a_state), (b_proc, b_url, b_state) = gateways.values()
        user = _token(issuer, "mallory", "engineers")
        for url in (a_url, b_url):
            status, body = _chat(url, user)
            assert status == 200, body
        # shared Redis: a revocation made through B stops the same user on A
        admin = _token(issuer, "root", "gateway-admins")
        status, body = _post(f"{b_url}/admin/revocations",
                             json.dumps({"subject": "mallory", "reason": "deploy test", "ttl_s": 600}).encode(),
                             {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
        assert status == 201, body
        deadline = time.monotonic() + 5
        while (status := _chat(a_url, user)[0]) == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status == 401, "the revocation made on B did not reach A"

        # graceful stop within compose's stop_grace_period, the spools shipped
        grace = duration_seconds(services[GATEWAY_REPLICAS[0]]["stop_grace_period"])
        for name, (proc, _, _) in gateways.items():
            t0 = time.monotonic()
            assert proc.stop(sig_timeout=grace) == 0, proc.output()[-3000:]
            assert time.monotonic() - t0 < grace, name

        # one key per replica, generated beside its spool; the bucket verifies with both public keys
        pubs = [state / "audit-signing-key.pem.pub" for _, _, state in gateways.values()]
        assert all(p.is_file() for p in pubs) and pubs[0].read_bytes() != pubs[1].read_bytes()
        settings = gateway_settings(EXAMPLE_CONFIG.read_text(), compose_env(services[GATEWAY_REPLICAS[0]]))
        verify = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "audit", "verify", "--store", settings.audit.store,
             "--s3-endpoint", s3_service.endpoint, *(arg for p in pubs for arg in ("--public-key", str(p)))],
            env={**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                 "AWS_ACCESS_KEY_ID": s3_service.env["AWS_ACCESS_KEY_ID"],
                 "AWS_SECRET_ACCESS_KEY": s3_service.env["AWS_SECRET_ACCESS_KEY"]},
            capture_output=True, text=True, timeout=120)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        valid, checked = map(int, re.search(r"(\d+)/(\d+) valid", verify.stdout).groups())
        assert valid == checked >= 3, verify.stdout  # mallory's three exchanges at least
    finally:
        for proc in reversed(procs):
            proc.stop()


# ---- the load balancer, as configured --------------------------------------------------------------------------------

class _Replica(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str, ready: bool) -> None:
        self.name, self.ready, self.hits = name, ready, 0
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), _ReplicaHandler)


class _ReplicaHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Replica

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/readyz":
            self._reply(200 if self.server.ready else 503, b"{}")
        elif self.path == "/stream":  # one SSE event, then wait, then the rest
            self.server.hits += 1
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._chunk(b"data: first\n\n")
            self.server.release.wait(20)
            self._chunk(b"data: last\n\n")
            self._chunk(b"")
        else:
            self.server.hits += 1
            self._reply(200, self.server.name.encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _lb_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except urllib.error.URLError:  # not listening yet
        return 0, b""


def test_haproxy_routes_to_ready_replicas_round_robin_and_streams_unbuffered(tmp_path: Path) -> None:
    """Run haproxy.cfg with the replicas' addresses and the bind port pointed at loopback stand-ins."""
    binary = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)
    if binary is None:
        pytest.skip("haproxy not installed (Debian package haproxy)")
    a, b = _Replica("gateway-a", True), _Replica("gateway-b", False)
    for server in (a, b):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    lb_port = free_port()
    text = HAPROXY_CFG.read_text()
    assert "bind :8080" in text
    text = text.replace("bind :8080", f"bind 127.0.0.1:{lb_port}")
    for server in (a, b):
        assert f" {server.name}:8080" in text
        text = text.replace(f" {server.name}:8080", f" 127.0.0.1:{server.server_address[1]}")
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    log = open(tmp_path / "haproxy.log", "wb")
    proc = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        # B fails /readyz: after its checks it gets nothing
        deadline = time.monotonic() + 20
        while True:
            answers = {_lb_get(lb_port, "/v1/models")[1] for _ in range(6)}
            if answers == {b"gateway-a"}:
                break
            assert time.monotonic() < deadline and proc.poll() is None, \
                f"B still routed: {answers}\n{(tmp_path / 'haproxy.log').read_text(errors='replace')}"
            time.sleep(0.5)
        # B becomes ready: round robin over both
        b.ready = True
        deadline = time.monotonic() + 20
        while True:
            answers = [_lb_get(lb_port, "/v1/models")[1] for _ in range(6)]
            if set(answers) == {b"gateway-a", b"gateway-b"}:
                assert all(x != y for x, y in zip(answers, answers[1:])), f"not round robin: {answers}"
                break
            assert time.monotonic() < deadline, f"B never came back: {answers}"
            time.sleep(0.5)
        # an SSE event reaches the client while the replica still holds the stream open
        with socket.create_connection(("127.0.0.1", lb_port), timeout=10) as sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: lb\r\nAccept: text/event-stream\r\n\r\n")
            received = b""
            while b"data: first" not in received:
                chunk = sock.recv(4096)
                assert chunk, f"closed before the first event: {received!r}"
                received += chunk
            assert b"data: last" not in received
            for server in (a, b):
                server.release.set()
            while b"data: last" not in received:
                chunk = sock.recv(4096)
                assert chunk, received
                received += chunk
    finally:
        for server in (a, b):
            server.release.set()
        _stop(proc)
        log.close()
        for server in (a, b):
            server.shutdown()
            server.server_close()
