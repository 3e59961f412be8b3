"""Evidence bundles: one session's records plus everything needed to check them offline, in one plain tar file.

Layout of the (uncompressed, stdlib `tarfile`) archive::

    manifest.json                      what the bundle holds (informative; not trusted by the verifier)
    keys/<key_id>.pem                  public key(s) the digests are signed with (SubjectPublicKeyInfo PEM)
    objects/<store key>                the store objects, byte for byte, under their `layout` keys:
        sessions/<session>/...             every object under the session's index prefix (its pointers)
        streams/<stream>/segments/...      every segment a pointer names, WHOLE
        catalog/...                        the catalog object listing the session's start, when found
        streams/<stream>/digests/...       every digest of every stream that holds a record of the session

Segments are copied whole and unchanged, as stored: a segment's records are what the digests and the stream
chain commit to, so only the stored bytes let an offline verifier check them without trusting the exporter (a
segment cut down to this session's records would match nothing). The consequence: **a bundle also holds the
masked records of other sessions that share a segment with this one** (their redacted requests and responses,
principals, times). The log never holds anything unmasked, but hand a bundle only to whoever may read those.
The other sessions' pointers and catalog entries are not included (the verifier of one session derives what it
needs from the segments).

Manifest record entries: ``{"segment": <segment key>, "stream_seq", "hash", "session_seq"}`` per record the
session's pointers name, in session order.

A bundle opens as a read-only `ObjectStore` (`BundleStore`), so the verifier and replay run on it unchanged,
without any access to the original store. Tar (not zip/gzip) is deliberate: it has no checksum over member data,
so a modified byte reaches the verifier, which names the exact record or digest (`hash_mismatch`, ...), instead of
the archive reader failing with an anonymous CRC error.
"""
from __future__ import annotations

import asyncio
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
from gateway.audit.segment import (
    catalog_pointers,
    index_objects,
    meta_of,
    parse_pointer_body,
    unpack,
)
from gateway.audit.store import (
    MemoryStore,
    ObjectStore,
    StoreError,
    list_all,
    validate_key,
)

FORMAT = "reasoning-gateway/evidence-bundle"
VERSION = 2
MANIFEST = "manifest.json"
OBJECTS = "objects/"
KEYS = "keys/"
SCHEME = "bundle://"
READS_IN_FLIGHT = 16


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
        """Records the manifest lists that the archive lacks or holds with another hash."""
        out = []
        for entry in self.manifest.get("records") or []:
            if not isinstance(entry, dict):
                continue
            seg, seq, h = entry.get("segment"), entry.get("stream_seq"), entry.get("hash")
            where = f"{seg} #{seq}"
            parsed = layout.parse_segment_key(seg) if isinstance(seg, str) else None
            data = self._objects.get(seg) if parsed is not None else None
            if parsed is None or data is None or type(seq) is not int or not parsed[1] <= seq <= parsed[2]:
                out.append(("bundle_missing_object", where, "listed in the manifest, absent from the bundle"))
                continue
            try:
                raw: bytes | None = unpack(data)[seq - parsed[1]]
            except (ValueError, IndexError):
                raw = None
            if raw is None:
                out.append(("bundle_missing_object", where, "listed in the manifest, absent from the bundle"))
            elif isinstance(h, str) and h.encode("utf-8") not in raw:
                out.append(("manifest_mismatch", where, "the manifest names another hash"))
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


async def _read_all(store: ObjectStore, keys: Iterable[str]) -> dict[str, bytes | None]:
    gate = asyncio.Semaphore(READS_IN_FLIGHT)
    keys = list(keys)

    async def one(key: str) -> bytes | None:
        async with gate:
            return await store.get(key)

    return dict(zip(keys, await asyncio.gather(*(one(k) for k in keys))))


async def _catalog_object(store: ObjectStore, segment: bytes, session_id: str) -> tuple[str, bytes] | None:
    """The stored catalog object listing the session's start, in the segment holding its first record: its key is
    derived from the segment (`index_objects`), then read as stored (None if the segment cannot say or the store
    lacks it)."""
    try:
        metas = [meta_of(raw) for raw in unpack(segment)]
        objects = index_objects(metas)
    except ValueError:
        return None
    start = next((m for m in metas if m.session_id == session_id and m.session_seq == 1), None)
    if start is None:
        return None
    wanted = layout.catalog_bucket(start.time)
    for key, _ in objects:
        parsed = layout.parse_catalog_key(key)
        if parsed is not None and parsed[0][:15] == wanted:
            data = await store.get(key)
            return (key, data) if data is not None else None
    return None


async def collect(store: ObjectStore, session_id: str) -> tuple[dict[str, bytes], list[dict[str, Any]], list[str]]:
    """The objects of a session's bundle (see the module docstring): (objects by key, manifest record entries in
    session order, stream ids in order of first appearance). All empty for a session the store knows nothing of;
    a session whose pointers are all unreadable has objects but no record entries (still evidence)."""
    pointers = await _read_all(store, await list_all(store, layout.session_prefix(session_id)))
    objects = {k: v for k, v in pointers.items() if v is not None}
    # ((stream_id, first, last) or None, entries): a gateway-assigned session's first segment comes from its
    # catalog entry (the catalog object goes in the bundle), the rest from the pointers
    items: list[tuple[tuple[str, int, int] | None, list[tuple[int, int, str]]]] = []
    starts = await catalog_pointers(store, session_id)
    for entry in starts:
        objects[entry.key] = entry.body  # type: ignore[assignment] - a catalog pointer always has its body
        items.append(((entry.stream_id, entry.first, entry.last), entry.entries or []))
    for key, body in pointers.items():
        parsed = layout.parse_session_index_key(key)
        # an unparsable key stays in `objects`: the verifier reports it, offline as online
        items.append((parsed[2:] if parsed is not None else None, parse_pointer_body(body) or []))
    records: list[dict[str, Any]] = []
    streams: list[str] = []
    segments: list[str] = []
    first_segment: str | None = None
    for where, entries in items:
        if where is None:
            continue
        stream_id, first, last = where
        seg = layout.segment_key(stream_id, first, last)
        segments.append(seg)
        if stream_id not in streams:
            streams.append(stream_id)
        for session_seq, stream_seq, h in entries:
            records.append({"segment": seg, "stream_seq": stream_seq, "hash": h, "session_seq": session_seq})
            if session_seq == 1:
                first_segment = seg
    stored = await _read_all(store, dict.fromkeys(segments))
    objects.update((k, v) for k, v in stored.items() if v is not None)
    # the catalog object listing the session's start (already in hand when it stands in for a pointer)
    if not starts and first_segment is not None and stored.get(first_segment) is not None:
        found = await _catalog_object(store, stored[first_segment], session_id)  # type: ignore[arg-type]
        if found is not None:
            objects[found[0]] = found[1]
    digest_keys = [k for stream_id in streams for k in await list_all(store, layout.digest_prefix(stream_id))]
    objects.update((k, v) for k, v in (await _read_all(store, digest_keys)).items() if v is not None)
    records.sort(key=lambda e: (e["session_seq"], e["segment"], e["stream_seq"]))
    return objects, records, streams


def write_bundle(path: str, session_id: str, objects: dict[str, bytes], records: list[dict[str, Any]],
                 streams: list[str], public_keys: Iterable[Ed25519PublicKey], *, source: str = "") -> dict[str, Any]:
    """Write the tar file atomically (temp file + rename); returns the manifest."""
    keys = {key_id(k): k for k in public_keys}
    manifest = {
        "format": FORMAT, "v": VERSION, "session_id": session_id, "created_at": utc_now(), "source": source,
        "streams": streams, "records": records,
        "segments": sorted(k for k in objects if layout.parse_segment_key(k)),
        "catalog": sorted(k for k in objects if layout.parse_catalog_key(k)),
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
