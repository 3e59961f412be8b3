"""The revocation record: validation, token id hashing, wire round trip, settings checks."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.auth.claims import principal_from
from gateway.config import AuthSettings
from gateway.revocation import InvalidRevocation, Revocation, RevocationSettings, jti_hash, principal_keys
from gateway.revocation.model import new_revocation
from tests.revocation.conftest import alice


def test_jti_hash_is_the_principals_token_id_hash():
    settings = AuthSettings(issuer="https://idp.example", audience=["gw"])
    principal = principal_from({"sub": "alice", "jti": "0f1e-raw-token-id", "iss": "https://idp.example"}, settings)
    assert principal.token_id_hash == jti_hash("0f1e-raw-token-id")


def test_jti_is_stored_only_as_its_hash():
    rev = new_revocation("jti", "raw-jti-123", reason="leaked in a ticket", created_by="admin", ttl_s=60, now=1000.0)
    assert rev.value == jti_hash("raw-jti-123")
    assert "raw-jti-123" not in repr(rev.to_dict()) + repr(rev.public())
    assert (rev.created_at, rev.expires_at) == (1000.0, 1060.0)


def test_wire_round_trip_and_public_form():
    rev = new_revocation("subject", "alice", reason="offboarded", created_by="admin", ttl_s=90, now=1700000000.0)
    assert Revocation.from_dict(rev.to_dict()) == rev
    assert rev.public()["created_at"] == "2023-11-14T22:13:20.000Z"
    with pytest.raises(InvalidRevocation):
        Revocation.from_dict({**rev.to_dict(), "kind": "email"})
    with pytest.raises(InvalidRevocation):
        Revocation.from_dict({"id": rev.id})


@pytest.mark.parametrize("kind, value, reason, ttl", [
    ("email", "a@b", "r", 10), ("subject", "", "r", 10), ("subject", "   ", "r", 10), ("subject", "x" * 2000, "r", 10),
    ("subject", "alice", "", 10), ("subject", "alice", "r", 0), ("subject", "alice", "r", -5),
])
def test_invalid_requests_are_refused(kind, value, reason, ttl):
    with pytest.raises(InvalidRevocation):
        new_revocation(kind, value, reason=reason, created_by="admin", ttl_s=ttl)


def test_principal_keys_cover_subject_client_and_token():
    assert principal_keys(alice()) == [("subject", "alice"), ("client_id", "app-1"), ("jti", jti_hash("jti-alice-1"))]
    assert principal_keys(alice(client_id=None, token_id_hash=None)) == [("subject", "alice")]


@pytest.mark.parametrize("fields", [
    {"default_ttl_s": 100, "max_ttl_s": 50},
    {"heartbeat_s": 5, "max_staleness_s": 5},
    {"reconnect_initial_s": 3, "reconnect_max_s": 1},
    {"backend": "redis", "redis_url": "http://localhost"},
    {"unknown": 1},
])
def test_settings_refuse_inconsistent_values(fields):
    with pytest.raises(ValidationError):
        RevocationSettings(**fields)
