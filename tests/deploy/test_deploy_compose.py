"""deploy/compose.yaml against the vendored compose-spec schema, plus the wiring the local multi-replica stack relies
on: two gateway replicas behind the load balancer, sharing Redis and the S3 store, with the dev IdP and the demo
backend. Each replica's configuration (gateway.example.yaml + the environment compose sets) is validated by the
gateway's own loader; deploy/lb/haproxy.cfg is checked statically (and by HAProxy itself when it is installed)."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from deploy_support import (
    COMPOSE_FILE,
    EXAMPLE_CONFIG,
    GATEWAY_REPLICAS,
    HAPROXY_CFG,
    POLICIES,
    REPO,
    SCHEMAS,
    compose_env,
    compose_mounts,
    duration_seconds,
    flag_value,
    gateway_settings,
    is_go_duration,
    parse_haproxy,
    unused_port,
)
from gateway.config import load_settings

GATEWAY_IMAGE = "reasoning-gateway:0.1.0"
SERVICES = {"lb", *GATEWAY_REPLICAS, "redis", "s3", "idp", "backend"}
CONFIG_TARGET = "/etc/gateway/gateway.yaml"


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


def _replica_config_text(service: dict) -> str:
    """The file the replica mounts at /etc/gateway/gateway.yaml (resolved from the compose file's directory)."""
    source, read_only = compose_mounts(service)[CONFIG_TARGET]
    assert read_only, "mount the configuration read-only"
    return (COMPOSE_FILE.parent / source).resolve().read_text(encoding="utf-8")


@pytest.fixture(scope="module", params=GATEWAY_REPLICAS)
def replica(request, compose: dict) -> tuple[str, dict]:
    return request.param, compose["services"][request.param]


@pytest.fixture(scope="module")
def replica_settings(compose: dict) -> dict:
    """Each replica's settings: its mounted gateway.yaml + the GATEWAY_* env compose gives it, validated by the
    gateway (`apply_env_overrides` + `Settings`)."""
    out = {}
    for name in GATEWAY_REPLICAS:
        svc = compose["services"][name]
        out[name] = gateway_settings(_replica_config_text(svc), compose_env(svc))
    return out


def _argv(svc: dict) -> list[str]:
    entry = svc.get("entrypoint", [])
    return [*(entry if isinstance(entry, list) else [entry]), *svc.get("command", [])]


def _container_port(svc: dict, default: int) -> set[int]:
    return {int(p) for p in svc.get("expose", [])} or {default}


# ---- schema and top level ---------------------------------------------------------------------------------------------

def test_example_config_validates() -> None:
    settings = load_settings(EXAMPLE_CONFIG, env={})
    assert settings.server.port == 8080
    assert settings.upstream.forward_authorization is False
    assert settings.approvals.backend == settings.revocations.backend == "redis"
    assert settings.audit.store and settings.audit.store.startswith("s3://")


def test_compose_file_matches_the_compose_spec(validator, compose: dict) -> None:
    assert not _errors(validator, compose)


def test_schema_check_has_teeth(validator, compose: dict) -> None:
    bad = copy.deepcopy(compose)
    bad["services"]["gateway-a"]["healthcheck"]["intervall"] = "10s"
    bad["services"]["backend"]["healthcheck"]["interval"] = "ten seconds"
    bad["services"]["lb"]["depends_on"] = {"gateway-a": {"condition": "when_ready"}}
    errors = " | ".join(_errors(validator, bad))
    assert "intervall" in errors and "ten seconds" in errors and "when_ready" in errors


def test_compose_uses_no_undeclared_interpolation() -> None:
    """`${VAR}` without a default makes `docker compose` warn and substitute an empty string."""
    text = COMPOSE_FILE.read_text()
    assert "${" not in text or all(":-" in part.split("}")[0] for part in text.split("${")[1:])
    # a lone `$` (e.g. in a CMD-SHELL) would be interpolated too
    assert all(part.startswith(("{", "$")) for part in text.split("$")[1:]), "escape `$` as `$$`"


def test_compose_has_no_obsolete_or_unknown_top_level_keys(compose: dict) -> None:
    assert "version" not in compose, "`version` is obsolete in Compose v2 and only warns"
    assert set(compose) - {"services", "volumes"} <= {k for k in compose if k.startswith("x-")}


# ---- the stack ------------------------------------------------------------------------------------------------------------

def test_the_stack_is_two_replicas_behind_a_load_balancer_with_redis_s3_and_an_idp(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == SERVICES, "only services something uses"
    assert services["lb"]["image"].split(":")[0] in {"haproxy", "nginx"}
    assert services["redis"]["image"] == "redis:7-alpine"
    assert services["s3"]["image"].split(":")[0] in {"chrislusf/seaweedfs", "minio/minio"}
    for name, svc in services.items():
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image by tag"
        assert "healthcheck" in svc and not svc["healthcheck"].get("disable"), name


def test_gateway_image_services_are_built_from_the_repo(compose: dict) -> None:
    for name in (*GATEWAY_REPLICAS, "idp", "backend"):
        svc = compose["services"][name]
        assert svc["image"] == GATEWAY_IMAGE, name
        context = (COMPOSE_FILE.parent / svc["build"]["context"]).resolve()
        assert context == REPO and (context / svc["build"].get("dockerfile", "Dockerfile")).is_file(), name


def test_backend_runs_the_demo_backend(compose: dict) -> None:
    backend = compose["services"]["backend"]
    argv = _argv(backend)
    assert argv[:3] == ["python", "-m", "gateway.devtools.backend"]
    assert int(flag_value(argv, "--port")) in _container_port(backend, 9000)
    assert "ports" not in backend, "the backend is reached through the gateways only"


def test_idp_is_the_dev_issuer_and_its_issuer_url_is_what_the_replicas_trust(compose: dict, replica_settings) -> None:
    """DevIssuer's issuer (`iss`, discovery) is http://<--host>:<--port>; the replicas must be configured with that
    exact string, and `hostname:` makes the name this container's own address so it can bind to it."""
    idp = compose["services"]["idp"]
    argv = _argv(idp)
    assert argv[:3] == ["python", "-m", "gateway.auth.dev_issuer"]
    host, port = flag_value(argv, "--host"), int(flag_value(argv, "--port"))
    assert host == idp.get("hostname") == "idp"
    for name, settings in replica_settings.items():
        assert settings.auth.issuer == f"http://{host}:{port}", name
        assert flag_value(argv, "--audience") in settings.auth.audience, name
    assert idp["ports"] == [f"127.0.0.1:{port}:{port}"], "tokens are fetched from the host's loopback only"


def test_issuer_url_is_built_from_the_host_it_is_given() -> None:
    """The property the idp service relies on, checked on the real DevIssuer: the URL keeps the host *name*."""
    import asyncio

    from gateway.auth.dev_issuer import DevIssuer

    async def url() -> str:
        issuer = DevIssuer("localhost", 0)
        await issuer.start()
        try:
            return issuer.url
        finally:
            await issuer.stop()

    assert urlsplit(asyncio.run(url())).hostname == "localhost"


def test_replica_config_shares_redis_and_s3(replica, compose: dict, replica_settings) -> None:
    name, svc = replica
    settings = replica_settings[name]
    services = compose["services"]

    # approvals and revocations: the redis backend, both on the stack's one Redis
    assert settings.approvals.backend == settings.revocations.backend == "redis"
    assert settings.approvals.redis_url == settings.revocations.redis_url
    redis = urlsplit(settings.approvals.redis_url)
    assert redis.hostname == "redis" and redis.port in _container_port(services["redis"], 6379)
    # audit: the S3 service, its bucket, its credentials
    store = urlsplit(settings.audit.store)
    s3 = services["s3"]
    assert store.scheme == "s3" and store.netloc == flag_value(_argv(s3), "-bucket"), "the bucket s3 creates"
    endpoint = urlsplit(settings.audit.s3.endpoint_url)
    assert endpoint.hostname == "s3" and endpoint.port in _container_port(s3, 8333)
    assert settings.audit.s3.addressing_style == "path", "SeaweedFS has no wildcard DNS for virtual hosts"
    assert settings.audit.s3.access_key_id == s3["environment"]["AWS_ACCESS_KEY_ID"]
    assert settings.audit.s3.secret_access_key.get_secret_value() == s3["environment"]["AWS_SECRET_ACCESS_KEY"]
    # the upstream is the backend service
    upstream = urlsplit(settings.upstream.url)
    assert upstream.hostname == "backend" and upstream.port in _container_port(services["backend"], 9000)
    # `serve --workers N` with N > 1 needs the shared backends: this configuration must pass that check too
    from gateway.services import check_shared_state

    check_shared_state(settings, max(settings.server.workers, 4))


def test_each_replica_keeps_its_spool_and_signing_key_on_its_own_volume(compose: dict, replica_settings) -> None:
    volumes_by_replica = {}
    for name in GATEWAY_REPLICAS:
        settings = replica_settings[name]
        mounts = compose_mounts(compose["services"][name])
        spool = Path(settings.audit.spool_dir)
        key = Path(settings.audit.signing_key)
        target = next((t for t in mounts if spool.is_relative_to(t)), None)
        assert target is not None, f"{name}: audit.spool_dir {spool} is on no volume (the root is read-only)"
        source, read_only = mounts[target]
        assert not read_only and not source.startswith("."), f"{name}: the spool needs a writable named volume"
        assert source in compose.get("volumes", {}), f"{name}: volume {source} is not declared"
        assert key.is_relative_to(target), f"{name}: the generated signing key must survive restarts, as the spool"
        volumes_by_replica[name] = source
    assert len(set(volumes_by_replica.values())) == len(GATEWAY_REPLICAS), "one spool volume per replica"


def test_replicas_mount_the_example_config_and_the_policies(replica, replica_settings) -> None:
    name, svc = replica
    mounts = compose_mounts(svc)
    assert (COMPOSE_FILE.parent / mounts[CONFIG_TARGET][0]).resolve() == EXAMPLE_CONFIG
    settings = replica_settings[name]
    source, read_only = mounts[settings.policies.path]
    assert read_only and (COMPOSE_FILE.parent / source).resolve() == POLICIES
    from gateway.catalog import CatalogRegistry
    from gateway.policy.cli import check

    assert check(POLICIES, CatalogRegistry()) == 0, "the mounted policy does not load"


def test_replicas_are_identical_but_for_their_ports_and_volumes(compose: dict) -> None:
    a, b = (dict(compose["services"][n]) for n in GATEWAY_REPLICAS)
    for svc in (a, b):
        svc.pop("ports")
        svc.pop("volumes")
    assert a == b


def test_replica_env_is_trust_forwarded_behind_the_lb(replica_settings) -> None:
    for name, settings in replica_settings.items():
        assert settings.server.trust_forwarded is True, f"{name}: the lb sets X-Forwarded-For"
        assert settings.server.host == "0.0.0.0", f"{name}: the lb must reach it"


def test_start_order_waits_for_healthy_dependencies(compose: dict) -> None:
    services = compose["services"]
    for name in GATEWAY_REPLICAS:
        deps = services[name]["depends_on"]
        assert {d: c["condition"] for d, c in deps.items()} == {
            "backend": "service_healthy", "idp": "service_healthy", "redis": "service_healthy",
            "s3": "service_healthy"}, name
    lb_deps = services["lb"]["depends_on"]
    assert {d: c["condition"] for d, c in lb_deps.items()} == {n: "service_healthy" for n in GATEWAY_REPLICAS}


def test_only_loopback_ports_are_published(compose: dict) -> None:
    published = {}
    for name, svc in compose["services"].items():
        for entry in svc.get("ports", []):
            assert isinstance(entry, str) and entry.startswith("127.0.0.1:"), f"{name}: {entry} is not loopback-only"
            published[name] = entry
    assert set(published) == {"lb", *GATEWAY_REPLICAS, "idp", "s3"}, "redis and the backend stay unpublished"
    assert published["lb"] == "127.0.0.1:8080:8080"


def test_services_are_locked_down(compose: dict) -> None:
    for name, svc in compose["services"].items():
        assert svc.get("read_only") is True, name
        assert "/tmp" in svc.get("tmpfs", []), name
        assert svc.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in svc.get("security_opt", []), name
        assert "privileged" not in svc, name
        if svc["image"] == GATEWAY_IMAGE:
            assert "user" not in svc, f"{name}: keep the image's non-root user"
        elif "user" in svc:
            uid = str(svc["user"]).split(":")[0]
            assert uid.isdigit() and int(uid) != 0, f"{name}: user must be a non-root uid"
        if name == "s3":  # the SeaweedFS entrypoint chowns /data and drops to its own user: nothing more
            assert set(svc.get("cap_add", [])) <= {"CHOWN", "SETUID", "SETGID"}
        else:
            assert "cap_add" not in svc, name
    assert compose["services"]["redis"].get("user"), "without capabilities redis' entrypoint cannot drop root"


def test_stop_grace_outlasts_the_drain(compose: dict, replica_settings) -> None:
    for name, settings in replica_settings.items():
        grace = duration_seconds(compose["services"][name]["stop_grace_period"])
        assert grace > settings.server.shutdown_grace_s + settings.audit.shutdown_drain_s, name
    hard_stop = [v for s in parse_haproxy(HAPROXY_CFG.read_text()) if s.kind == "global"
                 for v in s.values("hard-stop-after")]
    assert hard_stop, "bound the lb's soft stop"
    assert duration_seconds(compose["services"]["lb"]["stop_grace_period"]) > duration_seconds(hard_stop[0][0])


def test_redis_has_no_persistence(compose: dict) -> None:
    argv = _argv(compose["services"]["redis"])
    assert argv[0] == "redis-server"
    assert flag_value(argv, "--save") == "" and flag_value(argv, "--appendonly") == "no"
    assert "volumes" not in compose["services"]["redis"]


def test_s3_service_creates_the_bucket_and_uses_the_demo_keys(compose: dict) -> None:
    s3 = compose["services"]["s3"]
    argv = _argv(s3)
    assert "mini" in argv and flag_value(argv, "-dir") == "/data"
    assert compose_mounts(s3)["/data"][0] in compose["volumes"]
    env = s3["environment"]
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "demo" in env[key], f"{key}: keep the demo credentials obviously fake"
    bucket = flag_value(argv, "-bucket")
    assert bucket and bucket in " ".join(s3["healthcheck"]["test"]), "healthy only once the bucket exists"


# ---- the load balancer -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def haproxy() -> dict:
    sections = parse_haproxy(HAPROXY_CFG.read_text(encoding="utf-8"))
    by_kind: dict[str, list] = {}
    for s in sections:
        by_kind.setdefault(s.kind, []).append(s)
    return by_kind


def test_lb_mounts_its_config(compose: dict) -> None:
    lb = compose["services"]["lb"]
    assert lb["image"].startswith("haproxy:")
    source, read_only = compose_mounts(lb)["/usr/local/etc/haproxy/haproxy.cfg"]
    assert read_only and (COMPOSE_FILE.parent / source).resolve() == HAPROXY_CFG


def test_lb_round_robins_over_both_replicas_checking_readyz(haproxy: dict, compose: dict, replica_settings) -> None:
    [frontend] = haproxy["frontend"]
    [backend] = [b for b in haproxy["backend"] if b.name == frontend.values("default_backend")[0][0]]
    assert backend.values("balance") == [["roundrobin"]]
    servers = {words[0]: words[1] for words in backend.values("server")}
    assert set(servers) == set(GATEWAY_REPLICAS)
    for name, address in servers.items():
        host, port = address.rsplit(":", 1)
        assert host == name and int(port) == replica_settings[name].server.port
    # active checks on /readyz, for every server
    checked = backend.has("default-server") and "check" in backend.values("default-server")[0]
    assert checked or all("check" in words for words in backend.values("server"))
    assert backend.has("option", "httpchk")
    send = backend.values("http-check", "send")
    assert send and send[0][send[0].index("uri") + 1] == "/readyz"
    assert backend.values("http-check", "expect") == [["status", "200"]]
    # the published port reaches the frontend
    bind = frontend.values("bind")[0][0]
    assert compose["services"]["lb"]["ports"][0].rsplit(":", 1)[1] == bind.rsplit(":", 1)[1]


def test_lb_does_not_buffer_streams_and_outwaits_the_gateway(haproxy: dict, replica_settings) -> None:
    everything = [line for sections in haproxy.values() for s in sections for line in s.lines]
    for directive in ("compression", "option http-buffer-request", "filter compression", "filter cache",
                      "http-request cache-use", "http-response cache-store"):
        assert not any(line.startswith(directive) for line in everything), f"{directive}: buffers or delays SSE"
    [defaults] = haproxy["defaults"]
    assert defaults.has("option", "http-no-delay"), "send each SSE event at once"
    assert defaults.has("option", "forwardfor") == all(s.server.trust_forwarded for s in replica_settings.values())
    timeouts = {words[0]: duration_seconds(words[1]) for words in defaults.values("timeout")}
    for settings in replica_settings.values():
        longest_silence = settings.upstream.read_timeout_s + settings.approvals.hold_s
        assert timeouts["server"] > longest_silence and timeouts["client"] > longest_silence


def test_haproxy_accepts_the_config() -> None:
    binary = _haproxy()
    proc = subprocess.run([binary, "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # outside Docker the replicas' names do not resolve: the only warnings allowed are about that
    warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if "[WARNING]" in line]
    assert all("could not resolve address" in w for w in warnings), warnings


def _haproxy() -> str:
    import shutil

    binary = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)
    if binary is None:
        pytest.skip("haproxy not installed (Debian package haproxy)")
    return binary


# ---- healthchecks, run for real ------------------------------------------------------------------------------------------

def _run(argv: list[str], env: dict | None = None) -> int:
    return subprocess.run(argv, capture_output=True, timeout=30, env={**os.environ, **(env or {})}).returncode


@pytest.mark.parametrize("service, host, port, path", [
    ("gateway-a", "127.0.0.1", 8080, "/healthz"),
    ("gateway-b", "127.0.0.1", 8080, "/healthz"),
    ("idp", "idp", 9100, "/.well-known/openid-configuration"),
    ("backend", "127.0.0.1", 9000, None),
])
def test_python_healthchecks_work(compose: dict, http_server, service: str, host: str, port: int,
                                  path: str | None) -> None:
    """Run each python healthcheck against a loopback stand-in: healthy, failing (503) and absent."""
    test = compose["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python"
    code = test[-1]
    assert f"{host}', {port}" in code or f"{host}:{port}" in code

    def run(p: int) -> int:
        local = code.replace(f"{host}:{port}", f"127.0.0.1:{p}").replace(f"'{host}', {port}", f"'127.0.0.1', {p}")
        return _run([sys.executable, *test[2:-1], local])

    assert run(http_server(200)) == 0
    assert run(unused_port()) != 0
    if path is not None:
        assert run(http_server(503)) != 0
        assert http_server.servers[0].paths == [path]


def test_lb_healthcheck_works(compose: dict, http_server) -> None:
    """busybox wget in the haproxy image; GNU wget takes the same flags and exits non-zero likewise."""
    import shutil

    if shutil.which("wget") is None:
        pytest.skip("wget not installed")
    test = compose["services"]["lb"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "wget"]
    url = test[-1]
    assert urlsplit(url).path == "/readyz" and urlsplit(url).port == 8080

    def run(p: int) -> int:
        return _run([*test[1:-1], url.replace(":8080/", f":{p}/")])

    assert run(http_server(200)) == 0
    assert run(http_server(503)) != 0
    assert run(unused_port()) != 0


def test_redis_healthcheck_works(compose: dict, request) -> None:
    import shutil

    if shutil.which("redis-cli") is None or shutil.which("redis-server") is None:
        pytest.skip("redis-cli / redis-server not installed")
    redis_server = request.getfixturevalue("redis_server")  # the suite's private redis-server (tests/conftest.py)
    test = compose["services"]["redis"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "-p 6379" in test[1]
    assert _run(["sh", "-c", test[1].replace("-p 6379", f"-p {redis_server.port}")]) == 0
    assert _run(["sh", "-c", test[1].replace("-p 6379", f"-p {unused_port()}")]) != 0


def test_bind_mounts_are_read_only_and_exist(compose: dict) -> None:
    """Nothing of the host but the config, the policies and the lb config is mounted; all read-only."""
    for name, svc in compose["services"].items():
        for target, (source, read_only) in compose_mounts(svc).items():
            if source.startswith("."):
                assert read_only, f"{name}: bind mount {source} -> {target} must be read-only"
                assert (COMPOSE_FILE.parent / source).resolve().exists(), f"{name}: {source} does not exist"


def test_demo_secrets_read_back_unchanged_through_the_env_parser(compose: dict) -> None:
    """GATEWAY_* values are parsed as YAML: a secret that YAML reads as something else would be mangled."""
    for name in GATEWAY_REPLICAS:
        for key, value in compose_env(compose["services"][name]).items():
            if "KEY" in key or "SECRET" in key:
                assert yaml.safe_load(value) == value, f"{name}: {key}"
