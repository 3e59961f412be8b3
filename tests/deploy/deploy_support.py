"""Readers for the deployment files (Dockerfile, .dockerignore, deploy/**), shared by tests/deploy; all static."""
from __future__ import annotations

import json
import re
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
DEPLOY = REPO / "deploy"
EXAMPLE_CONFIG = DEPLOY / "gateway.example.yaml"
K8S_DIR = DEPLOY / "kubernetes"
K8S_TEMPLATES = K8S_DIR / "templates"
"""Manifests to fill in before use (the Secret); `kubectl apply -f deploy/kubernetes/` does not recurse into it."""
COMPOSE_FILE = DEPLOY / "compose.yaml"
HAPROXY_CFG = DEPLOY / "lb" / "haproxy.cfg"
POLICIES = REPO / "policies"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
GATEWAY_REPLICAS = ("gateway-a", "gateway-b")
"""The compose services that run the gateway itself."""


# ---- Dockerfile -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    stage: int
    """Index of the build stage (0 = first FROM)."""
    keyword: str
    """Upper-cased instruction, e.g. ``RUN``."""
    args: str
    """Everything after the keyword, continuation lines joined."""
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form ``CMD``/``ENTRYPOINT``/``HEALTHCHECK CMD``; None for shell form."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            match = re.search(r"(?:^|\s)CMD\s+(.*)$", text)
            text = match.group(1) if match else ""
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None

    def options(self) -> dict[str, str]:
        """Leading ``--flag=value`` options (``COPY --from=builder``, ``HEALTHCHECK --interval=30s``)."""
        opts = {}
        for tok in shlex.split(self.args):
            if not tok.startswith("--"):
                break
            key, _, value = tok[2:].partition("=")
            opts[key] = value
        return opts


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comment lines dropped (as the Docker parser does)."""
    out: list[Instruction] = []
    stage = -1
    buf: list[str] = []
    start = 0
    for no, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continuation are removed
        if not buf:
            start = no
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        joined = " ".join(p for p in buf if p)
        buf = []
        keyword, _, args = joined.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(stage, keyword, args.strip(), start))
    assert not buf, "Dockerfile ends inside a line continuation"
    return out


def env_pairs(args: str) -> dict[str, str]:
    """``ENV A=1 B="x y"`` (or the legacy ``ENV A 1``) as a dict."""
    tokens = shlex.split(args)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(tok.split("=", 1) for tok in tokens)


# ---- YAML files ---------------------------------------------------------------------------------------------------

def load_k8s_resources() -> list[tuple[Path, dict[str, Any]]]:
    """Every manifest: deploy/kubernetes/*.yaml and the templates beside them."""
    resources = []
    paths = sorted([*K8S_DIR.glob("*.yaml"), *K8S_DIR.glob("*.yml")])
    paths += sorted([*K8S_TEMPLATES.glob("*.yaml"), *K8S_TEMPLATES.glob("*.yml")])
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                resources.append((path, doc))
    return resources


# ---- healthcheck commands -------------------------------------------------------------------------------------------

def unused_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- durations and quantities ---------------------------------------------------------------------------------------

_GO_DURATION = re.compile(r"^(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def is_go_duration(value: object) -> bool:
    """Compose's `duration` format: Go's time.ParseDuration syntax (``1m30s``, ``500ms``) or ``0``."""
    return isinstance(value, str) and (value == "0" or bool(_GO_DURATION.match(value)))


def duration_seconds(value: str) -> float:
    assert is_go_duration(value), f"not a duration: {value!r}"
    return sum(float(n) * _UNIT_S[u] for n, u in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", value))


_QUANTITY = re.compile(r"^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_SUFFIX = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def k8s_quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity (``250m``, ``"1"``, ``512Mi``) as a number."""
    match = _QUANTITY.match(str(value))
    assert match, f"not a quantity: {value!r}"
    return float(match[1]) * _SUFFIX[match[2]]


# ---- the gateway's view of a deployment's configuration -------------------------------------------------------------

def effective_config(config_text: str, env: dict[str, str]) -> dict[str, Any]:
    """What `gateway serve` validates: the YAML file with the GATEWAY_* environment applied on top, using the
    gateway's own override code (`gateway.config.apply_env_overrides`)."""
    from gateway.config import apply_env_overrides

    data = yaml.safe_load(config_text) or {}
    apply_env_overrides(data, env)
    return data


def gateway_settings(config_text: str, env: dict[str, str]):
    """`effective_config` validated by `gateway.config.Settings` (pydantic), exactly as at start-up."""
    from gateway.config import Settings

    return Settings.model_validate(effective_config(config_text, env))


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment entries that have a value (a bare `KEY:` passes the host's variable
    through, if set)."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: str(v) for k, v in env.items() if v is not None}


def compose_mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Short-syntax volumes of a compose service: container path -> (source, read_only). A source starting with
    `.` is a bind mount relative to the compose file; anything else names a volume."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *mode = entry.split(":")
        mounts[target] = (source, "ro" in (mode[0].split(",") if mode else []))
    return mounts


def flag_value(argv: list[str], flag: str) -> str | None:
    """`-flag=value` / `--flag=value` / `--flag value` in an argv list."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1:]
    return None


# ---- HAProxy configuration ------------------------------------------------------------------------------------------

@dataclass
class HaproxySection:
    kind: str
    """`global`, `defaults`, `frontend`, `backend`, `resolvers`, ..."""
    name: str
    lines: list[str]
    """Directives with comments and surrounding blanks removed, whitespace collapsed."""

    def has(self, *words: str) -> bool:
        return any(line.split()[:len(words)] == list(words) for line in self.lines)

    def values(self, *words: str) -> list[list[str]]:
        """The words after `words` for every directive starting with them."""
        return [line.split()[len(words):] for line in self.lines if line.split()[:len(words)] == list(words)]


_SECTION_KEYWORDS = {"global", "defaults", "frontend", "backend", "listen", "resolvers", "peers", "userlist",
                     "mailers", "program", "http-errors", "cache", "ring"}


def parse_haproxy(text: str) -> list[HaproxySection]:
    sections: list[HaproxySection] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] in _SECTION_KEYWORDS and not raw[:1].isspace():
            sections.append(HaproxySection(words[0], words[1] if len(words) > 1 else "", []))
            continue
        assert sections, f"directive outside any section: {raw!r}"
        sections[-1].lines.append(" ".join(words))
    return sections
