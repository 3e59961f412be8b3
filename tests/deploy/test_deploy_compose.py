"""deploy/compose.yaml against the vendored compose-spec schema, plus the wiring the local stack relies on;
deploy/gateway.example.yaml against the gateway's own config loader."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from deploy_support import (
    COMPOSE_FILE,
    EXAMPLE_CONFIG,
    REPO,
    SCHEMAS,
    duration_seconds,
    is_go_duration,
    unused_port,
)
from gateway.config import load_settings


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text(encoding="utf-8"))
    # The file says draft 2019-09 (with a `#`-suffixed URI jsonschema does not map, hence explicit).
    cls = jsonschema.Draft201909Validator
    cls.check_schema(schema)
    formats = jsonschema.FormatChecker(formats=())
    formats.checks("duration")(is_go_duration)
    return cls(schema, format_checker=formats)


def _errors(validator, doc) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(doc)]


def _env(service: dict) -> dict[str, str]:
    """Environment entries with a value (a bare `KEY:` passes the host's variable through, if set)."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: str(v) for k, v in env.items() if v is not None}


def test_example_config_validates() -> None:
    settings = load_settings(EXAMPLE_CONFIG, env={})
    assert settings.server.port == 8080
    assert settings.upstream.forward_authorization is False


def test_compose_file_matches_the_compose_spec(validator, compose: dict) -> None:
    assert not _errors(validator, compose)


def test_schema_check_has_teeth(validator, compose: dict) -> None:
    bad = copy.deepcopy(compose)
    bad["services"]["gateway"]["healthcheck"]["intervall"] = "10s"
    bad["services"]["backend"]["healthcheck"]["interval"] = "ten seconds"
    bad["services"]["backend"]["depends_on"] = {"gateway": {"condition": "when_ready"}}
    errors = " | ".join(_errors(validator, bad))
    assert "intervall" in errors and "ten seconds" in errors and "when_ready" in errors


def test_services_share_the_image_built_from_the_repo(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"gateway", "backend"}, "only services something uses"
    for name, svc in services.items():
        assert svc["image"] == "reasoning-gateway:0.1.0", name
        context = (COMPOSE_FILE.parent / svc["build"]["context"]).resolve()
        assert context == REPO and (context / svc["build"].get("dockerfile", "Dockerfile")).is_file(), name
        assert "healthcheck" in svc and not svc["healthcheck"].get("disable"), name


def test_backend_runs_the_demo_backend(compose: dict) -> None:
    backend = compose["services"]["backend"]
    argv = [*backend["entrypoint"], *backend["command"]]
    assert argv[:3] == ["python", "-m", "gateway.devtools.backend"]
    assert argv[argv.index("--port") + 1] == "9000"
    assert "ports" not in backend, "the backend is reached through the gateway only"


def test_gateway_is_wired_to_the_backend(compose: dict) -> None:
    gateway, backend = compose["services"]["gateway"], compose["services"]["backend"]
    assert gateway["depends_on"]["backend"]["condition"] == "service_healthy"
    settings = load_settings(EXAMPLE_CONFIG, env=_env(gateway))
    upstream = urlsplit(settings.upstream.url)
    assert upstream.hostname == "backend"
    assert str(upstream.port) == backend["command"][backend["command"].index("--port") + 1]
    assert gateway["ports"] == [f"127.0.0.1:8080:{settings.server.port}"], "publish on the host's loopback only"
    assert duration_seconds(gateway["stop_grace_period"]) > settings.server.shutdown_grace_s


def test_services_are_locked_down(compose: dict) -> None:
    for name, svc in compose["services"].items():
        assert svc.get("read_only") is True, name
        assert "/tmp" in svc.get("tmpfs", []), name
        assert svc.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in svc.get("security_opt", []), name
        assert "privileged" not in svc and "user" not in svc, f"{name}: keep the image's non-root user"


@pytest.mark.parametrize("service, default_port", [("gateway", 8080), ("backend", 9000)])
def test_healthcheck_commands_work(compose: dict, http_server, service: str, default_port: int) -> None:
    """Run each compose healthcheck (pointed at a loopback stand-in) for a healthy and an absent service."""
    test = compose["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python"
    code = test[-1]
    assert str(default_port) in code

    def run(port: int) -> int:
        argv = [sys.executable, *test[2:-1], code.replace(str(default_port), str(port))]
        return subprocess.run(argv, capture_output=True, timeout=30, env=dict(os.environ)).returncode

    assert run(http_server(200)) == 0
    assert run(unused_port()) != 0
    if service == "gateway":
        assert run(http_server(503)) != 0
        assert http_server.servers[0].paths == ["/healthz"]


def test_compose_uses_no_undeclared_interpolation() -> None:
    """`${VAR}` without a default makes `docker compose` warn and substitute an empty string."""
    text = COMPOSE_FILE.read_text()
    assert "${" not in text or all(":-" in part.split("}")[0] for part in text.split("${")[1:])


def test_compose_has_no_obsolete_or_unknown_top_level_keys(compose: dict) -> None:
    assert "version" not in compose, "`version` is obsolete in Compose v2 and only warns"
    assert set(yaml.safe_load(COMPOSE_FILE.read_text())) - {"services"} <= {
        k for k in compose if k.startswith("x-")
    }
