"""`gateway audit verify`, `gateway audit export`, `gateway replay`: functions returning exit codes.

Exit codes: 0 = fine; 1 = the log (or bundle) has a problem, or the session does not exist; 2 = usage error
(unreadable key/anchor file, bad store URI, unreadable bundle).

`verify_session` is the per-session verifier (also used for bundles, which hold one session): it reads the session's
index pointers `sessions/<id>/`, fetches each segment they name once, and checks the session's records in them:
segment framing, bytes and hashes, place in the segment, the session chain (no gap, fork or broken `session_prev`),
the pointers (byte for byte what `segment.index_objects` of each segment says for this session), and the digest
chains of every stream holding one of them (signatures, `prev_digest_signature` links). Records of other sessions
in those segments are context: read for the index, never reported. A record is anchored when a valid digest (or
anchor) names it or a later record of the session in `sessions_touched` (the session chain commits to everything
before). Records after the last such record are `unanchored` (warning), a digest naming a session record the
store lacks is `truncated_session`, a segment a pointer names that the store lacks is `missing_record` (at the
segment's key). Limitation: digests are read only for streams that hold a record of the session or that an anchor
names, so a session tail deleted *together with its index pointers* from a stream holding no other record of the
session is caught only with an anchor of that stream (or by the full-store verifier).
"""
from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import layout
from gateway.audit.bundle import (
    BundleError,
    BundleStore,
    collect,
    is_bundle_uri,
    open_bundle,
    write_bundle,
)
from gateway.audit.canonical import decode
from gateway.audit.digest import (
    key_id,
    key_ring,
    load_public_key,
)
from gateway.audit.replay import SessionNotFound, render
from gateway.audit.segment import catalog_pointers
from gateway.audit.store import ObjectStore, list_all, store_from_uri
from gateway.audit.verify import VerifyResult, _as_digest, _fetch, verify_store
from gateway.audit.verify_checks import Checker, Problem, _gaps, _ranges

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


# -- per-session verification -------------------------------------------------------------------------------------
async def verify_session(
    store: ObjectStore,
    session_id: str,
    *,
    public_keys: Iterable[Ed25519PublicKey] | Mapping[str, Ed25519PublicKey] = (),
    anchors: Iterable[Mapping[str, Any] | bytes | str] = (),
    concurrency: int = 32,
) -> VerifyResult:
    """Verify one session's records (see the module docstring); results name that session's objects only."""
    c = Checker(key_ring(public_keys))
    prefix = layout.session_prefix(session_id)
    pointers: dict[str, tuple[str, int, int]] = {}  # pointer key -> the segment it names (stream_id, first, last)
    for key in await list_all(store, prefix):
        parsed = layout.parse_session_index_key(key)
        if parsed is None or parsed[0] != session_id:
            c.problem("unexpected_object", key)
        else:
            pointers[key] = parsed[2:]
    # a gateway-assigned session's first segment is indexed by its catalog entry, not by a pointer
    entries = await catalog_pointers(store, session_id)
    firsts = [(e.stream_id, e.first, e.last) for e in entries]
    segment_keys = sorted({layout.segment_key(*seg) for seg in [*pointers.values(), *firsts]})
    blobs = await _fetch(store, segment_keys, concurrency)
    loaded = 0
    for skey in segment_keys:
        sid, first, last = layout.parse_segment_key(skey)  # type: ignore[misc]
        if blobs[skey] is None:
            c.mark_unsound(sid, first, last)  # its pointers are not compared: the segment's absence is reported
            c.problem("missing_record", skey, "the session index names this segment, the store lacks it")
            continue
        loaded += c.check_segment(skey, sid, first, last, blobs.pop(skey), session=session_id)
    # the pointers: exactly those the segments imply for this session
    c.expected_index = {k: v for k, v in c.expected_index.items() if k.startswith(prefix)}
    pointer_bodies = await _fetch(store, list(pointers), concurrency)
    for key in pointers:
        c.check_index_object(key, pointer_bodies[key])
    c.check_index_complete(set(pointers))
    for key, body in sorted({e.key: e.body for e in entries}.items()):  # catalog objects standing in for
        c.check_catalog_object(key, body)                                  # pointers: as their segments say
    c.check_sessions()

    # digests of the streams the session lives in (and of anchored streams)
    anchor_list = [_as_digest(a) for a in anchors]
    candidates = {*c.streams, *(seg[0] for seg in pointers.values()), *(a.get("stream_id") for a in anchor_list),
                  *(seg[0] for seg in firsts)}
    streams = sorted(s for s in candidates if isinstance(s, str) and layout._STREAM_ID.fullmatch(s))
    digest_keys: list[str] = []
    for sid in streams:
        digest_keys += await list_all(store, layout.digest_prefix(sid))
    dblobs = await _fetch(store, digest_keys, concurrency)
    for key in digest_keys:
        parsed = layout.parse_digest_key(key)
        if parsed is None:
            c.problem("unexpected_object", key)
            continue
        c.check_digest_object(key, parsed[0], parsed[1], dblobs[key])

    anchored = 0  # highest session_seq a valid digest or anchor vouches for
    claimed = 0

    def claim(d: dict[str, Any], where: str, stored: bool) -> bool:
        nonlocal claimed
        entry = (d.get("sessions_touched") or {}).get(session_id)
        if entry is None:
            return False
        if isinstance(entry, list) and len(entry) == 2 and type(entry[0]) is int:
            claimed = max(claimed, entry[0])
        return c._check_claims({"stream_id": d.get("stream_id"), "last_seq": 0,
                                "sessions_touched": {session_id: entry}}, where, stored=stored)

    for _, key, d, trusted in c.walk_digest_chains():
        if claim(d, key, True) and trusted:
            anchored = max(anchored, d["sessions_touched"][session_id][0])
    for a in anchor_list:
        where = c.compare_anchor(a)
        if where is not None and claim(a, where, False):
            anchored = max(anchored, a["sessions_touched"][session_id][0])

    present = c.sessions.get(session_id, {})
    missing = sum(b - a + 1 for a, b in _gaps([*present, claimed]))
    loose = sorted(n for n in present if n > anchored)
    for span in _ranges(loose):
        c.problem("unanchored", f"session {session_id} seq {span}", "not covered by any valid digest", warning=True)
    if not pointers and not entries:
        c.problem("session_not_found", f"session {session_id}", "the store holds no record of this session")

    result = VerifyResult(problems=c.problems)
    result.checked = loaded + missing
    result.valid = loaded - len(c.bad_records)
    result.digests_checked = len(digest_keys)
    result.digests_valid = len(digest_keys) - len(c.bad_digests)
    return result


# -- helpers ------------------------------------------------------------------------------------------------------
S3_OPTIONS: dict[str, Any] = {}
"""`--s3-endpoint` / `--s3-region` of the command line (credentials: the standard AWS environment/files)."""


def _open(store_uri: str) -> tuple[ObjectStore, BundleStore | None]:
    if is_bundle_uri(store_uri):
        b = open_bundle(store_uri)
        return b, b
    options = {k: v for k, v in S3_OPTIONS.items() if v} if store_uri.startswith("s3://") else {}
    return store_from_uri(store_uri, **options), None


def _load_keys(files: Iterable[str]) -> list[Ed25519PublicKey]:
    return [load_public_key(str(f)) for f in files]


def load_anchors(path: str) -> list[dict[str, Any]]:
    """Anchor file: one digest (JSON object), a JSON array of digests, or JSON lines (one digest per line)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        obj = decode(data)
    except ValueError:
        return [dict(decode(line)) for line in data.splitlines() if line.strip()]
    if isinstance(obj, list):
        return [dict(x) for x in obj]
    if isinstance(obj, dict):
        return [obj]
    raise ValueError("an anchor file holds a digest object, an array of them, or JSON lines")


async def _close(store: ObjectStore) -> None:
    with contextlib.suppress(Exception):
        await store.close()


# -- commands -----------------------------------------------------------------------------------------------------
def verify(store_uri: str, *, session: str | None = None, public_key_files: Iterable[str] = (),
           anchor_file: str | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`gateway audit verify`: one `INVALID: …` line per problem, then `N/N valid`. A bundle (``bundle://path`` or
    ``*.tar``) is checked offline for its session; without `--public-key` the bundle's own keys are used (and
    named on stderr: pass the key you trust to rule out a re-signed bundle)."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        keys = _load_keys(public_key_files)
        anchors = load_anchors(anchor_file) if anchor_file else []
        store, bundle = _open(store_uri)
    except (OSError, ValueError, TypeError, BundleError) as e:
        print(f"error: {e}", file=err)
        return EXIT_USAGE
    if bundle is not None:
        session = session or bundle.session_id
        if session is None:
            for what, where, detail in bundle.anomalies:
                print(Problem(what, where, detail), file=out)
            print(Problem("bundle_no_session", f"bundle {bundle.path}", "the manifest names no session; pass "
                          "--session"), file=out)
            return EXIT_INVALID
        if not keys:
            keys = bundle.public_keys
            ids = ", ".join(key_id(k) for k in keys) or "none"
            print(f"note: using the public key(s) inside the bundle ({ids}); pass --public-key to check against a "
                  "key you trust", file=err)
    elif not keys:
        print("note: no --public-key given: every digest will be reported as unknown_key", file=err)

    async def run() -> VerifyResult:
        try:
            if session is not None:
                return await verify_session(store, session, public_keys=keys, anchors=anchors)
            return await verify_store(store, public_keys=keys, anchors=anchors)
        finally:
            await _close(store)

    result = asyncio.run(run())
    if bundle is not None:
        for what, where, detail in bundle.anomalies + bundle.manifest_problems():
            result.problems.append(Problem(what, where, detail))
    for line in result.lines():
        print(line, file=out)
    return EXIT_OK if result.ok else EXIT_INVALID


def export(store_uri: str, session: str, output_path: str, *, public_key_files: Iterable[str] = (),
           err: TextIO | None = None) -> int:
    """`gateway audit export`: write the session's evidence bundle (see `bundle.py`) to `output_path`."""
    err = err or sys.stderr
    try:
        keys = _load_keys(public_key_files)
        store, _ = _open(store_uri)
    except (OSError, ValueError, TypeError, BundleError) as e:
        print(f"error: {e}", file=err)
        return EXIT_USAGE

    async def run() -> tuple[dict[str, bytes], list[dict[str, Any]], list[str]]:
        try:
            return await collect(store, session)
        finally:
            await _close(store)

    objects, records, streams = asyncio.run(run())
    if not records:
        print(f"error: no records for session {session!r} in {store_uri}", file=err)
        return EXIT_INVALID
    signed_by = {d.get("public_key_id") for k, raw in objects.items() if layout.parse_digest_key(k)
                 for d in [_safe_decode(raw)]}
    given = {key_id(k) for k in keys}
    if not keys:
        print("warning: no --public-key given: the bundle holds no key; its verifier must supply one", file=err)
    elif signed_by - given - {None}:
        print(f"warning: digests are signed with key(s) {', '.join(sorted(map(str, signed_by - given)))} "
              "that were not given", file=err)
    try:
        manifest = write_bundle(output_path, session, objects, records, streams, keys,
                                source=store_uri.split("?", 1)[0])
    except OSError as e:
        print(f"error: {e}", file=err)
        return EXIT_USAGE
    print(f"wrote {output_path}: session {session}, {len(records)} records, {len(manifest['digests'])} digests, "
          f"{len(keys)} key(s)", file=err)
    return EXIT_OK


def _safe_decode(raw: bytes) -> dict[str, Any]:
    try:
        d = decode(raw)
        return d if isinstance(d, dict) else {}
    except ValueError:
        return {}


def replay(store_uri: str, session: str, *, speed: float = 1.0, fmt: str = "sse", out: Any = None,
           err: TextIO | None = None) -> int:
    """`gateway replay`: write the session's masked responses to `out` (a binary stream, or a text stream with a
    `.buffer`), flushing after each chunk. Exit 1 if the session is missing or a record fails its hash check."""
    err = err or sys.stderr
    sink = _binary(out if out is not None else sys.stdout)
    try:
        store, _ = _open(store_uri)
    except (OSError, ValueError, BundleError) as e:
        print(f"error: {e}", file=err)
        return EXIT_USAGE
    problems: list[str] = []

    def on_problem(msg: str) -> None:
        problems.append(msg)
        print(f"INVALID: {msg}", file=err)

    async def run() -> int:
        try:
            async for chunk in render(store, session, fmt=fmt, speed=speed, on_problem=on_problem):
                sink.write(chunk)
                sink.flush()
        except SessionNotFound:
            print(f"error: no records for session {session!r}", file=err)
            return EXIT_INVALID
        except ValueError as e:
            print(f"error: {e}", file=err)
            return EXIT_USAGE
        finally:
            await _close(store)
        return EXIT_INVALID if problems else EXIT_OK

    return asyncio.run(run())


class _TextSink:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, data: bytes) -> None:
        self.stream.write(data.decode("utf-8"))

    def flush(self) -> None:
        self.stream.flush()


def _binary(out: Any) -> Any:
    import io

    if isinstance(out, io.TextIOBase):
        buf = getattr(out, "buffer", None)
        if buf is not None:
            out.flush()
            return buf
        return _TextSink(out)
    return out
