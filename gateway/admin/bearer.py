"""The bearer token of an admin request: the same rules as the proxy path (see `gateway.auth.bearer`)."""
from gateway.auth.bearer import MISSING_MESSAGE, bearer_token

__all__ = ["MISSING_MESSAGE", "bearer_token"]
