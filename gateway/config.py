"""Gateway configuration: a YAML file, overridden by ``GATEWAY_<SECTION>__<KEY>`` environment variables.

Validated with pydantic; an invalid file stops start-up with the key path and the reason (see ``ConfigError``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.audit.layout import MAX_SEGMENT_RECORDS

ENV_PREFIX = "GATEWAY_"
_ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    """Largest request body accepted; larger ones get 413 payload_too_large."""
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    """Largest single header line (incl. the bearer token); longer ones get 400/431 from the HTTP parser."""
    shutdown_grace_s: float = Field(30.0, ge=0)
    """On SIGTERM, in-flight streams get this long to finish before they are cut."""
    trust_forwarded: bool = False
    """Append to (instead of replace) incoming X-Forwarded-For; only behind a trusted load balancer."""


class UpstreamSettings(_Section):
    url: str = "http://127.0.0.1:9000"
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(300.0, gt=0)
    """Longest silence between two upstream bytes (headers or body) before 504 upstream_timeout."""
    forward_authorization: bool = False
    """Forward the client's Authorization header upstream (off: the backend never sees user tokens)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Headers added to every upstream request (e.g. the backend's own API key)."""
    max_connections: int = Field(1000, ge=1)

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v.rstrip("/")


class AuthSettings(_Section):
    issuer: str = ""
    """OIDC issuer URL; discovery is fetched from `<issuer>/.well-known/openid-configuration`."""
    audience: list[str] = Field(default_factory=list)
    """Accepted `aud` values (any one must match). Empty list is refused: tokens for other apps must not pass."""
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    """Allowlist of JWS algorithms. Only asymmetric ones: `none` and HMAC are never accepted."""
    groups_claim: str = "groups"
    """Dotted path to the groups/roles list, e.g. `groups` or `realm_access.roles`."""
    subject_claim: str = "sub"
    leeway_s: float = Field(30.0, ge=0, le=600)
    max_token_age_s: float | None = Field(None, gt=0)
    """Reject tokens whose `iat` is older than this even when not yet expired."""
    jwks_refresh_s: float = Field(3600.0, ge=10)
    """Regular JWKS refresh interval."""
    jwks_min_refetch_s: float = Field(30.0, ge=0)
    """An unknown `kid` triggers at most one JWKS refetch per this many seconds."""
    jwks_retry_initial_s: float = Field(1.0, gt=0)
    """First retry delay when the IdP cannot be reached; doubles up to `jwks_retry_max_s`."""
    jwks_retry_max_s: float = Field(60.0, gt=0)
    http_timeout_s: float = Field(5.0, gt=0)
    max_token_bytes: int = Field(8192, ge=512)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in _ASYMMETRIC]
        if bad:
            raise ValueError(f"only asymmetric algorithms are allowed ({', '.join(sorted(_ASYMMETRIC))}); got {bad}")
        if not v:
            raise ValueError("at least one algorithm is required")
        return v

    @field_validator("audience", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _complete(self) -> AuthSettings:
        if not self.issuer:
            raise ValueError("auth.issuer is required (the OIDC issuer URL)")
        if not self.issuer.startswith(("http://", "https://")):
            raise ValueError("auth.issuer must be an http(s) URL")
        if not self.audience:
            raise ValueError("auth.audience is required: tokens minted for other applications must not pass")
        return self


class PoliciesSettings(_Section):
    path: str | None = None
    """A policy file or a directory of `*.yaml` files (merged in name order). None: no policy and no masking
    (the gateway only authenticates and forwards; start-up logs a warning)."""
    reload_s: float = Field(2.0, ge=0)
    """How often to look for edits; 0 turns hot reload off."""


class MaskingSettings(_Section):
    hmac_key: SecretStr | None = None
    """Key for the `keyed_hash` style (`[EMAIL:3f9a1c]`); required when a policy uses that style."""
    max_hold_chars: int = Field(8192, ge=64)
    """Text held back per channel while it could still become part of a match; beyond this it is masked whole."""
    max_hold_s: float = Field(5.0, gt=0)
    """Held text older than this is masked whole when the next chunk arrives, never released."""


class AdminSettings(_Section):
    approver_groups: list[str] = Field(default_factory=list)
    investigator_groups: list[str] = Field(default_factory=list)
    admin_groups: list[str] = Field(default_factory=list)


class S3Settings(_Section):
    endpoint_url: str | None = None
    """S3 API endpoint (SeaweedFS, MinIO, ...); None = AWS."""
    region: str | None = None
    access_key_id: str | None = None
    """Explicit credentials; when unset boto3's standard chain applies (env, files, instance roles)."""
    secret_access_key: SecretStr | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "path"


class AuditSettings(_Section):
    store: str | None = None
    """`file://<dir>` or `s3://bucket/prefix`. None: no audit log (start-up warns). Needs `policies.path`: the log
    holds masked text only, and the policy says what to mask."""
    s3: S3Settings = Field(default_factory=S3Settings)
    spool_dir: str = "./var/spool"
    """Local spool (records are durable here before the store has them). Each process takes its own
    subdirectory lock; `--workers N` use `<spool_dir>/worker-<i>`."""
    spool_max_bytes: int = Field(1 << 30, ge=1 << 16)
    """Backlog the spool absorbs while the store is down; beyond it new requests get 503 audit_unavailable."""
    durability: Literal["strict", "relaxed"] = "strict"
    """strict: a request is spooled (fsynced) before it is forwarded, its response before the final byte.
    relaxed: records are spooled in the background (a crash may lose the last few)."""
    signing_key: str = "./var/audit-signing-key.pem"
    """Ed25519 private key (PKCS#8 PEM) that signs digests; created with a `.pub` beside it on first start."""
    digest_interval_s: float = Field(60.0, gt=0, le=60)
    """Each stream signs a digest at least this often (and at shutdown)."""
    anchor_store: str | None = None
    """Optional second store (`file://` / `s3://`, same S3 settings) that receives a copy of every digest, so a
    truncated tail in the main store is detectable."""
    upload_batch: int = Field(500, ge=1, le=MAX_SEGMENT_RECORDS)
    """Most records the uploader packs into one segment object (one PUT, plus an index pointer per session in it
    and a catalog object if it starts sessions). Under load segments fill up; a quiet gateway ships what it has."""
    upload_concurrency: int = Field(16, ge=1, le=256)
    """PUTs the uploader keeps in flight at once (segments and index objects alike)."""
    journal_interval_s: float = Field(0.25, gt=0)
    """strict only: how often a streaming response's chunks so far are journaled (kept if the process dies)."""
    shutdown_drain_s: float = Field(10.0, ge=0)
    """On shutdown, how long the uploader may keep shipping the spool (the rest ships at next start)."""

    @field_validator("store", "anchor_store")
    @classmethod
    def _store_uri(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("file://", "s3://")):
            raise ValueError("must be a file://<dir> or s3://bucket/prefix URI")
        return v


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True


# Sections owned by their packages; imported here, below the sections they themselves import from this module.
from gateway.approvals.settings import ApprovalSettings
from gateway.revocation.settings import RevocationSettings
from gateway.webhooks.settings import WebhooksSettings


class Settings(_Section):
    server: ServerSettings = Field(default_factory=ServerSettings)
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)
    auth: AuthSettings
    policies: PoliciesSettings = Field(default_factory=PoliciesSettings)
    masking: MaskingSettings = Field(default_factory=MaskingSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    revocations: RevocationSettings = Field(default_factory=RevocationSettings)
    webhooks: WebhooksSettings = Field(default_factory=WebhooksSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @model_validator(mode="after")
    def _audit_needs_policy(self) -> Settings:
        if self.audit.store and not self.policies.path:
            raise ValueError("audit.store needs policies.path: the audit log stores masked text only, and the "
                             "policy's masking section says what to mask")
        return self


class ConfigError(Exception):
    """The configuration is unusable; ``str()`` lists each problem as `key.path: reason`."""


def load_settings(path: str | Path | None, env: dict[str, str] | None = None) -> Settings:
    """Read the YAML file (if any), apply environment overrides and validate."""
    data: dict[str, Any] = {}
    source = str(path) if path else "<defaults>"
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{source}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: the top level must be a mapping of sections")
        data = loaded
    apply_env_overrides(data, os.environ if env is None else env)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: invalid configuration"]
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {loc}: {msg}")
        raise ConfigError("\n".join(lines)) from None


def apply_env_overrides(data: dict[str, Any], env) -> None:
    """`GATEWAY_UPSTREAM__URL=http://x` sets data['upstream']['url']; values are parsed as YAML scalars/lists."""
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX):].split("__")]
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = _env_value(raw)


def _env_value(raw: str) -> Any:
    """Numbers, booleans, lists and mappings are parsed as YAML; anything that YAML would read as text keeps its
    exact characters (YAML would drop `#...` as a comment or eat `&anchor`s — wrong for secrets and URLs)."""
    if raw == "":
        return ""
    try:
        parsed = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if parsed is None and raw.strip() not in ("null", "Null", "NULL", "~"):
        return raw
    return raw if isinstance(parsed, str) else parsed
