"""Signed digests: each writer stream periodically signs where it stands, chained to its previous digest.

A digest (stored at `layout.digest_key(stream_id, digest_seq)`, canonical JSON bytes)::

    {"v": 1, "stream_id", "digest_seq": 1.., "last_seq": 0.., "last_hash": hex | null,
     "sessions_touched": {session_id: [session_seq, hash]},   # our latest record per session since the last digest
     "prev_digest_signature": hex | null, "created_at": RFC 3339, "public_key_id": 16 hex, "signature": 128 hex}

`signature` is Ed25519 over the canonical bytes of every other field. `prev_digest_signature` chains the digests,
so deleting or rewriting one breaks the next. The key id is the first 16 hex chars of sha256(raw public key).
Holding the latest digest outside the store (an anchor) lets the verifier detect a truncated tail.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gateway.audit import layout
from gateway.audit.canonical import canonical_bytes, encode
from gateway.audit.chain import StreamChain
from gateway.audit.record import utc_now
from gateway.audit.store import ObjectStore

DIGEST_FIELDS = frozenset(("v", "stream_id", "digest_seq", "last_seq", "last_hash", "sessions_touched",
                           "prev_digest_signature", "created_at", "public_key_id", "signature"))


# -- keys ---------------------------------------------------------------------------------------------------------
def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex chars of sha256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def save_private_key(key: Ed25519PrivateKey, path: str) -> None:
    """Write a PKCS#8 PEM file readable by the owner only (fails if the file exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_key_pem(key))


def load_private_key(path: str) -> Ed25519PrivateKey:
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError(f"{path}: not an Ed25519 private key")
    return key


def load_or_generate_private_key(path: str) -> Ed25519PrivateKey:
    """The signing key at `path`, created on first use (`--workers N` may race to create it: the loser loads the
    winner's key; a half-written file is waited for briefly)."""
    if not os.path.exists(path):
        key = generate_key()
        try:
            save_private_key(key, path)
            return key
        except FileExistsError:
            pass
    for _ in range(50):
        try:
            return load_private_key(path)
        except ValueError:  # the other process is still writing it
            time.sleep(0.02)
    return load_private_key(path)


def load_public_key(data: bytes | str) -> Ed25519PublicKey:
    """A public key from PEM bytes, or from a PEM file path (str). A private-key PEM yields its public half."""
    if isinstance(data, str):
        with open(data, "rb") as f:
            data = f.read()
    if b"PRIVATE KEY" in data:
        key: Any = serialization.load_pem_private_key(data, password=None).public_key()
    else:
        key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise TypeError("not an Ed25519 public key")
    return key


def key_ring(keys: Iterable[Ed25519PublicKey] | Mapping[str, Ed25519PublicKey]) -> dict[str, Ed25519PublicKey]:
    """Public keys by key id."""
    if isinstance(keys, Mapping):
        return dict(keys)
    return {key_id(k): k for k in keys}


# -- signing and checking -----------------------------------------------------------------------------------------
def sign_digest(fields: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """`fields` (everything but `public_key_id`/`signature`) plus the key id and the signature."""
    d = {k: v for k, v in fields.items() if k not in ("signature", "public_key_id")}
    d["public_key_id"] = key_id(key.public_key())
    d["signature"] = key.sign(canonical_bytes(d)).hex()
    return d


def check_signature(digest: dict[str, Any], keys: Mapping[str, Ed25519PublicKey]) -> str | None:
    """None if the signature is valid under the key the digest names, else the problem (`unknown_key`,
    `bad_signature`)."""
    pub = keys.get(digest.get("public_key_id"))  # type: ignore[arg-type]
    if pub is None:
        return "unknown_key"
    try:
        signature = bytes.fromhex(digest["signature"])
        pub.verify(signature, encode({k: v for k, v in digest.items() if k != "signature"}))
    except (InvalidSignature, ValueError, TypeError, KeyError):
        return "bad_signature"
    return None


class DigestWriter:
    """Signs and stores the digests of one stream (call `publish` every ≤ 60 s and at shutdown)."""

    def __init__(self, chain: StreamChain, key: Ed25519PrivateKey) -> None:
        self.chain = chain
        self.key = key
        self.digest_seq = 0
        """Sequence of the latest published digest (0 before the first)."""
        self.last_signature: str | None = None
        self.latest: dict[str, Any] | None = None
        """The latest published digest (hand it to an external anchor)."""

    def build(self, touched: dict[str, tuple[int, str]], last_seq: int | None = None,
              last_hash: str | None = None) -> dict[str, Any]:
        if last_seq is None:
            last_seq, last_hash = self.chain.last_seq, self.chain.last_hash
        return sign_digest({
            "v": 1,
            "stream_id": self.chain.stream_id,
            "digest_seq": self.digest_seq + 1,
            "last_seq": last_seq,
            "last_hash": last_hash,
            "sessions_touched": {sid: [seq, h] for sid, (seq, h) in touched.items()},
            "prev_digest_signature": self.last_signature,
            "created_at": utc_now(),
        }, self.key)

    def snapshot(self) -> tuple[int, str | None, dict[str, tuple[int, str]]]:
        """The stream's position and the sessions touched up to it (and reset those), taken in one step so a
        digest published later — once those records are stored — names exactly them."""
        return self.chain.last_seq, self.chain.last_hash, self.chain.take_touched()

    async def publish(self, store: ObjectStore,
                      snapshot: tuple[int, str | None, dict[str, tuple[int, str]]] | None = None) -> dict[str, Any]:
        """Sign the stream's position (now, or `snapshot`) and store it. Records up to that `last_seq` must already
        be stored. On failure the touched sessions are kept for the next attempt."""
        last_seq, last_hash, touched = snapshot if snapshot is not None else self.snapshot()
        digest = self.build(touched, last_seq, last_hash)
        try:
            await store.put_if_absent(layout.digest_key(digest["stream_id"], digest["digest_seq"]),
                                      canonical_bytes(digest))
        except BaseException:
            for sid, head in touched.items():  # a newer head of the same session wins
                self.chain.touched.setdefault(sid, head)
            raise
        self.digest_seq, self.last_signature, self.latest = digest["digest_seq"], digest["signature"], digest
        return digest
