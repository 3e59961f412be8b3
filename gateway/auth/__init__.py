"""OIDC bearer-token authentication: JWKS key source, token verifier, and a development issuer.

``gateway.auth.dev_issuer`` is not imported here on purpose: it is also run as ``python -m``.
"""
from gateway.auth.errors import AuthError, auth_unavailable
from gateway.auth.oidc import OidcVerifier

__all__ = ["AuthError", "OidcVerifier", "auth_unavailable"]
