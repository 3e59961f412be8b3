"""Evidence bundles: one session's records plus everything needed to check them offline, in one plain tar file.

Layout of the (uncompressed, stdlib `tarfile`) archive::

    manifest.json                      what the bundle holds (informative; not trusted by the verifier)
    keys/<key_id>.pem                  public key(s) the digests are signed with (SubjectPublicKeyInfo PEM)
    objects/<store key>                the store objects, byte for byte, under their `layout` keys:
        sessions/<session>/...             the session's index pointers
        streams/<stream>/records/...       the session's records
        streams/<stream>/digests/...       every digest of every stream that holds a record of the session

A bundle opens as a read-only `ObjectStore` (`BundleStore`), so the verifier and replay run on it unchanged,
without any access to the original store. Tar (not zip/gzip) is deliberate: it has no checksum over member data,
so a modified byte reaches the verifier, which names the exact record or digest (`hash_mismatch`, ...), instead of
the archive reader failing with an anonymous CRC error.
"""
from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Iterable
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import layout
from gateway.audit.digest import key_id, load_public_key, public_key_pem
from gateway.audit.record import utc_now
from gateway.audit.store import (
    MemoryStore,
    ObjectStore,
    StoreError,
    list_all,
    validate_key,
)

FORMAT = "reasoning-gateway/evidence-bundle"
VERSION = 1
MANIFEST = "manifest.json"
OBJECTS = "objects/"
KEYS = "keys/"
SCHEME = "bundle://"


class BundleError(StoreError):
    """The file is not a readable evidence bundle."""


class BundleStore(MemoryStore):
    """A bundle opened as a read-only object store (all objects are loaded into memory; a bundle is one session)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.manifest: dict[str, Any] = {}
        self.public_keys: list[Ed25519PublicKey] = []
        self.anomalies: list[tuple[str, str, str]] = []
        """(what, where, detail) found while reading the archive: duplicate or unexpected members."""
        self._load()

    def _load(self) -> None:
        try:
            with tarfile.open(self.path, mode="r:") as tar:
                self._read(tar)
        except (OSError, tarfile.TarError) as e:
            raise BundleError(f"{self.path}: not a readable evidence bundle ({e})") from None
        if not self.manifest and not self._objects:
            raise BundleError(f"{self.path}: not an evidence bundle (no manifest, no objects)")
        if self.manifest and self.manifest.get("format") != FORMAT:
            self.anomalies.append(("manifest_unreadable", f"bundle {MANIFEST}", f"format is not {FORMAT}"))

    def _read(self, tar: tarfile.TarFile) -> None:
        seen: set[str] = set()
        for m in tar.getmembers():
            if not m.isfile():
                continue
            if m.name in seen:
                self.anomalies.append(("duplicate_member", f"bundle {m.name}", "the archive holds it twice"))
                continue
            seen.add(m.name)
            f = tar.extractfile(m)
            data = f.read() if f is not None else b""
            if m.name == MANIFEST:
                try:
                    manifest = orjson.loads(data)
                except orjson.JSONDecodeError:
                    manifest = None
                if isinstance(manifest, dict):
                    self.manifest = manifest
                else:
                    self.anomalies.append(("manifest_unreadable", f"bundle {MANIFEST}", "not a JSON object"))
            elif m.name.startswith(KEYS) and m.name.endswith(".pem"):
                try:
                    self.public_keys.append(load_public_key(data))
                except (ValueError, TypeError):
                    self.anomalies.append(("key_unreadable", f"bundle {m.name}", "not an Ed25519 key"))
            elif m.name.startswith(OBJECTS):
                key = m.name[len(OBJECTS):]
                try:
                    validate_key(key)
                except ValueError:
                    self.anomalies.append(("unexpected_object", f"bundle {m.name}", "not an object key"))
                    continue
                self.tamper_set(key, data)
            else:
                self.anomalies.append(("unexpected_object", f"bundle {m.name}", ""))

    @property
    def session_id(self) -> str | None:
        sid = self.manifest.get("session_id")
        return sid if isinstance(sid, str) else None

    def manifest_problems(self) -> list[tuple[str, str, str]]:
        """Objects the manifest lists that the archive lacks or holds with other bytes."""
        out = []
        for entry in self.manifest.get("records") or []:
            if not isinstance(entry, dict):
                continue
            key, h = entry.get("key"), entry.get("hash")
            data = self._objects.get(key) if isinstance(key, str) else None
            if data is None:
                out.append(("bundle_missing_object", str(key), "listed in the manifest, absent from the bundle"))
            elif isinstance(h, str) and h.encode("ascii") not in data:
                out.append(("manifest_mismatch", str(key), "the manifest names another hash"))
        return out

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        raise StoreError("an evidence bundle is read-only")


def is_bundle_uri(uri: str) -> bool:
    """`bundle://path`, or a plain path ending in `.tar` (a bundle file)."""
    return uri.startswith(SCHEME) or ("://" not in uri and uri.endswith(".tar"))


def bundle_path(uri: str) -> str:
    return uri.removeprefix(SCHEME)


def open_bundle(uri: str) -> BundleStore:
    return BundleStore(bundle_path(uri))


async def collect(store: ObjectStore, session_id: str) -> tuple[dict[str, bytes], list[dict[str, Any]], list[str]]:
    """The objects of a session's bundle: (objects by key, manifest record entries, stream ids)."""
    objects: dict[str, bytes] = {}
    records: list[dict[str, Any]] = []
    streams: list[str] = []
    for key in await list_all(store, layout.session_prefix(session_id)):
        parsed = layout.parse_session_index_key(key)
        pointer = await store.get(key)
        if parsed is None or pointer is None:
            continue
        objects[key] = pointer
        _, session_seq, stream_id, stream_seq = parsed
        rkey = layout.record_key(stream_id, stream_seq)
        raw = await store.get(rkey)
        if raw is not None:
            objects[rkey] = raw
        records.append({"key": rkey, "hash": pointer.decode("ascii", "replace"), "session_seq": session_seq})
        if stream_id not in streams:
            streams.append(stream_id)
    for stream_id in streams:
        for dkey in await list_all(store, layout.digest_prefix(stream_id)):
            raw = await store.get(dkey)
            if raw is not None:
                objects[dkey] = raw
    return objects, records, streams


def write_bundle(path: str, session_id: str, objects: dict[str, bytes], records: list[dict[str, Any]],
                 streams: list[str], public_keys: Iterable[Ed25519PublicKey], *, source: str = "") -> dict[str, Any]:
    """Write the tar file atomically (temp file + rename); returns the manifest."""
    keys = {key_id(k): k for k in public_keys}
    manifest = {
        "format": FORMAT, "v": VERSION, "session_id": session_id, "created_at": utc_now(), "source": source,
        "streams": streams, "records": records,
        "digests": sorted(k for k in objects if layout.parse_digest_key(k)),
        "public_keys": {kid: f"{KEYS}{kid}.pem" for kid in sorted(keys)},
    }
    now = int(time.time())

    def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), now, 0o644
        tar.addfile(info, io.BytesIO(data))

    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with tarfile.open(tmp, mode="w:", format=tarfile.PAX_FORMAT) as tar:
            add(tar, MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
            for kid, k in sorted(keys.items()):
                add(tar, f"{KEYS}{kid}.pem", public_key_pem(k))
            for key in sorted(objects):
                add(tar, OBJECTS + key, objects[key])
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return manifest
