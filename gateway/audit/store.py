"""Object stores for the audit log: one narrow interface, three implementations.

The log is append-only, so the interface is three calls (get, put-if-absent, list by prefix) — the shape of
Tessera's storage drivers. `put_if_absent` is the only write: an identical object already at the key counts as
success (a retried upload is harmless), a *different* one raises `ConflictError`, which is an alarm (two writers
claim the same key, or someone rewrote the log).

Keys are produced by `gateway.audit.layout` and checked by `validate_key` here: `/`-separated segments of
``[A-Za-z0-9._=-]``, no empty segment, no segment starting with ``.`` (FileStore keeps its temp files there).

- `MemoryStore`  — dict + sorted key list; the fake for unit tests (also `memory://`).
- `FileStore`    — `file://<path>`: one file per key, a directory per key segment, atomic create-if-absent.
- `S3Store`      — `s3://bucket/prefix` in `gateway.audit.s3` (conditional PUT with ``If-None-Match: *``).
"""
from __future__ import annotations

import asyncio
import bisect
import os
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

_KEY_RE = re.compile(r"[A-Za-z0-9_=-][A-Za-z0-9._=-]*(/[A-Za-z0-9_=-][A-Za-z0-9._=-]*)*")
_PREFIX_RE = re.compile(r"([A-Za-z0-9_=-][A-Za-z0-9._=-]*/)*([A-Za-z0-9_=-][A-Za-z0-9._=-]*)?")


class StoreError(Exception):
    """The store failed or cannot give the guarantees the log needs (e.g. no conditional writes)."""


class ConflictError(StoreError):
    """A different object already exists at a key we tried to create: an alarm, never retried."""

    def __init__(self, key: str) -> None:
        super().__init__(f"a different object already exists at {key}")
        self.key = key


def validate_key(key: str) -> str:
    """Return `key` if it is a well-formed object key, else raise ValueError."""
    if not _KEY_RE.fullmatch(key):
        raise ValueError(f"bad object key: {key!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """Return `prefix` if it is a well-formed key prefix ('' lists everything), else raise ValueError."""
    if not _PREFIX_RE.fullmatch(prefix) or "//" in prefix:
        raise ValueError(f"bad key prefix: {prefix!r}")
    return prefix


@runtime_checkable
class ObjectStore(Protocol):
    """What the audit log needs from storage. All keys come from `gateway.audit.layout`."""

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is no object at `key`."""
        ...

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create `key` with `data` unless it exists. True when the object is stored (written now, or an identical
        object was already there). A different existing object raises `ConflictError`."""
        ...

    async def list(self, prefix: str, *, start_after: str | None = None, limit: int = 1000) -> list[str]:
        """Up to `limit` keys starting with `prefix` (a plain string prefix, not only whole segments), in
        lexicographic (byte) order, strictly after `start_after` when given. Fewer than `limit` keys means there
        are no more (pagers stop there), so a store that filters keys must keep fetching until it has `limit`.
        Callers must not rely on the relative order of keys from *different* directories (SeaweedFS orders
        ``a/x`` before ``a-b``); within one directory of the layout the order is exact."""
        ...

    async def close(self) -> None:
        """Release clients/threads. Idempotent."""
        ...


# Optional, not part of the protocol: `async get_many(keys: list[str]) -> list[bytes | None]`, a batch read the
# verifier uses when a store offers it (FileStore does: one thread hop instead of one per file).


async def iter_keys(store: ObjectStore, prefix: str, *, page: int = 1000) -> AsyncIterator[str]:
    """Every key under `prefix`, in order, paging through `store.list`."""
    after: str | None = None
    while True:
        keys = await store.list(prefix, start_after=after, limit=page)
        for k in keys:
            yield k
        if len(keys) < page:
            return
        after = keys[-1]


async def list_all(store: ObjectStore, prefix: str, *, page: int = 1000) -> list[str]:
    """Every key under `prefix`, in order."""
    return [k async for k in iter_keys(store, prefix, page=page)]


class MemoryStore:
    """In-process store with the exact semantics of the others; the unit-test fake."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._keys: list[str] = []  # sorted

    async def get(self, key: str) -> bytes | None:
        return self._objects.get(validate_key(key))

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        validate_key(key)
        data = bytes(data)
        old = self._objects.get(key)
        if old is not None:
            if old == data:
                return True
            raise ConflictError(key)
        self._objects[key] = data
        bisect.insort(self._keys, key)
        return True

    async def list(self, prefix: str, *, start_after: str | None = None, limit: int = 1000) -> list[str]:
        validate_prefix(prefix)
        lo = bisect.bisect_left(self._keys, prefix)
        if start_after is not None and start_after >= prefix:
            lo = max(lo, bisect.bisect_right(self._keys, start_after))
        out: list[str] = []
        for k in self._keys[lo:lo + max(limit, 0)]:
            if not k.startswith(prefix):
                break
            out.append(k)
        return out

    async def close(self) -> None:
        pass

    # -- test helpers: bypass the append-only rule to simulate tampering --------------------------------------
    def tamper_set(self, key: str, data: bytes) -> None:
        """Overwrite or create `key` unconditionally (tests only)."""
        if validate_key(key) not in self._objects:
            bisect.insort(self._keys, key)
        self._objects[key] = bytes(data)

    def tamper_delete(self, key: str) -> None:
        """Remove `key` (tests only)."""
        del self._objects[key]
        self._keys.remove(key)

    def __len__(self) -> int:
        return len(self._objects)


class FileStore:
    """`file://` store: `<root>/<key>` with a directory per key segment.

    Create-if-absent is atomic: the data goes to a hidden temp file in the target directory, is fsynced, then
    hard-linked to the final name (`link` fails if the name exists, so a half-written object is never visible
    and a concurrent writer can never overwrite), and the directory is fsynced.
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.fsync = fsync
        os.makedirs(self.root, exist_ok=True)

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *validate_key(key).split("/"))

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, self._path(key))

    @staticmethod
    def _get(path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        return await asyncio.to_thread(self._put, key, self._path(key), bytes(data))

    def _put(self, key: str, path: str, data: bytes) -> bool:
        existing = self._get(path)
        if existing is not None:
            if existing == data:
                return True
            raise ConflictError(key)
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                if self._get(path) == data:  # lost a race to an identical writer: fine
                    return True
                raise ConflictError(key) from None
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if self.fsync:
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return True

    async def list(self, prefix: str, *, start_after: str | None = None, limit: int = 1000) -> list[str]:
        validate_prefix(prefix)
        return await asyncio.to_thread(self._list, prefix, start_after, limit)

    def _list(self, prefix: str, start_after: str | None, limit: int) -> list[str]:
        base = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        keys: list[str] = []
        if limit > 0:
            self._walk(os.path.join(self.root, *base.split("/")), base, prefix, start_after, limit, keys)
        return keys

    def _walk(self, path: str, rel: str, prefix: str, start_after: str | None, limit: int, out: list[str]) -> bool:
        """Depth-first in byte order of the keys (a directory sorts as `name/`); stops at `limit`. True = full."""
        try:
            entries = [(e.name + "/" if e.is_dir() else e.name, e.path) for e in os.scandir(path)
                       if not e.name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            return False
        for name, child in sorted(entries):
            key = rel + name
            if name.endswith("/"):
                if self._may_hold(key, prefix, start_after) and self._walk(child, key, prefix, start_after,
                                                                           limit, out):
                    return True
            elif key.startswith(prefix) and (start_after is None or key > start_after):
                out.append(key)
                if len(out) >= limit:
                    return True
        return False

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """Optional batch read (`verify` uses it when a store has it): one thread hop for many files."""
        paths = [self._path(k) for k in keys]
        return await asyncio.to_thread(lambda: [self._get(p) for p in paths])

    @staticmethod
    def _may_hold(dirkey: str, prefix: str, start_after: str | None) -> bool:
        """Could keys under `dirkey` match `prefix` and sort after `start_after`? (prunes the walk)"""
        if not dirkey.startswith(prefix[:len(dirkey)]):
            return False
        # every key under dirkey sorts before start_after when start_after diverges upward from dirkey
        return start_after is None or start_after.startswith(dirkey) or start_after < dirkey

    async def close(self) -> None:
        pass


def store_from_uri(uri: str, **options: Any) -> ObjectStore:
    """`file:///abs/dir` or `file://rel/dir` → FileStore, `memory://` → MemoryStore, `s3://bucket/prefix` →
    `gateway.audit.s3.S3Store.from_uri(uri, **options)` (imported lazily: boto3 is only needed for S3)."""
    if uri.startswith("file://"):
        path = uri[len("file://"):]
        if not path:
            raise ValueError("file:// store URI needs a path")
        return FileStore(path, **options)
    if uri.startswith("memory://"):
        return MemoryStore()
    if uri.startswith("s3://"):
        from gateway.audit.s3 import S3Store

        return S3Store.from_uri(uri, **options)
    raise ValueError(f"unsupported audit store URI: {uri!r} (use file://, s3:// or memory://)")
