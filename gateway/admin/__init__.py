"""The admin API: OIDC bearer auth, roles from groups, every call audited before it runs (see `framework`).

`setup_admin(app, ctx)` mounts the investigator endpoints; later endpoint groups (approvals, revocations) are
declared with `endpoint(...)` and mounted the same way (`setup_admin(app, ctx, [*INVESTIGATOR_ENDPOINTS, ...])`).
"""
from gateway.admin.context import AdminContext, RecordAdmin, Role, TokenVerifier, roles_for
from gateway.admin.framework import AdminCall, AdminEndpoint, endpoint, json_reply
from gateway.admin.routes import ADMIN, INVESTIGATOR_ENDPOINTS, admin_routes, setup_admin

__all__ = [
    "ADMIN", "INVESTIGATOR_ENDPOINTS", "AdminCall", "AdminContext", "AdminEndpoint", "RecordAdmin", "Role",
    "TokenVerifier", "admin_routes", "endpoint", "json_reply", "roles_for", "setup_admin",
]
