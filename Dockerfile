# reasoning-gateway container image.
#
#   docker build -t reasoning-gateway:0.1.0 .
#   docker compose -f deploy/compose.yaml up --build    # two replicas + LB + Redis + S3 + IdP + demo backend
#
# No configuration and no secret is baked in: mount the config at /etc/gateway/gateway.yaml (the Kubernetes
# manifests mount a ConfigMap there) and pass secrets as GATEWAY_<SECTION>__<KEY> environment variables.

# ---- builder: build the wheel and install it (with its dependencies) into a self-contained venv ----
FROM python:3.11-slim AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
# Only what the wheel is built from (see .dockerignore); README.md is the package's declared readme.
COPY pyproject.toml README.md ./
COPY gateway ./gateway

RUN python -m venv /opt/venv \
 && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-cache-dir /wheels/*.whl

# ---- runtime: the venv on a clean slim image, run as an unprivileged numeric user ----
FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="reasoning-gateway" \
      org.opencontainers.image.description="Authenticating, inspecting, masking and recording reverse proxy for LLM reasoning services" \
      org.opencontainers.image.version="0.1.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:${PATH}"

# Fixed UID/GID so Kubernetes runAsUser/fsGroup and volume ownership can rely on them. /var/lib/gateway holds the
# audit spool (and, where it is generated, the signing key): a fresh named volume mounted there starts with this
# ownership, so the unprivileged user can write to it without any chown at run time.
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin gateway \
 && mkdir -p /etc/gateway /var/lib/gateway \
 && chown 10001:10001 /var/lib/gateway \
 && chmod 0750 /var/lib/gateway

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
# The root filesystem is read-only in Kubernetes/compose; /tmp is the writable scratch mount there.
WORKDIR /tmp
EXPOSE 8080

# slim has no curl: probe liveness with the standard library (a non-2xx status or no answer exits non-zero).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_SERVER__PORT', '8080'), timeout=4)"]

# SIGTERM starts the graceful drain (server.shutdown_grace_s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["gateway"]
CMD ["serve", "--config", "/etc/gateway/gateway.yaml"]
