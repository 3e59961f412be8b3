"""Fixtures for tests/deploy; the readers themselves live in deploy_support.py."""
from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # deploy_support, whatever pytest's import mode

from deploy_support import COMPOSE_FILE, DOCKERFILE, Instruction, load_k8s_resources, parse_dockerfile  # noqa: E402


@pytest.fixture(scope="session")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def final_stage(dockerfile: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in dockerfile)
    return [i for i in dockerfile if i.stage == last]


@pytest.fixture(scope="session")
def k8s() -> dict[str, dict[str, Any]]:
    """The manifests by kind; each kind must appear exactly once."""
    by_kind: dict[str, dict[str, Any]] = {}
    for path, res in load_k8s_resources():
        kind = res.get("kind")
        assert kind not in by_kind, f"{path.name}: a second {kind}"
        by_kind[kind] = res
    return by_kind


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture
def http_server() -> Iterator:
    """Start a loopback HTTP server whose every GET answers ``status``; yields a factory returning its port."""
    servers: list[HTTPServer] = []

    def start(status: int) -> int:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                self.server.paths.append(self.path)  # type: ignore[attr-defined]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = HTTPServer(("127.0.0.1", 0), Handler)
        server.paths = []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    start.servers = servers  # type: ignore[attr-defined]
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
