"""`/verify` (session and store), `/export` (bundle verified offline by the CLI) and `/admin/audit/digest`."""
from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

import pytest

from gateway.audit import cli, layout
from gateway.audit.bundle import BundleStore
from gateway.audit.canonical import canonical_bytes, decode
from gateway.audit.digest import generate_key, key_id, load_public_key, public_key_pem
from gateway.audit.record import hash_of
from gateway.audit.replay import iter_records
from gateway.audit.segment import pack, unpack
from tests.admin.conftest import INVESTIGATOR, flip, segment_of
from tests.audit.logbuilder import STREAM_A, raw_delete

N = 40


def rkey(store, rec) -> str:
    """How the verifier names a record: its segment's key and stream_seq."""
    return f"{segment_of(store, rec)}#{rec.stream_seq}"


async def get_json(client, path: str, status: int = 200) -> dict:
    resp = await client.get(path, headers=INVESTIGATOR)
    assert resp.status == status, await resp.text()
    return await resp.json()


# -- whole store --------------------------------------------------------------------------------------------------
async def test_store_verify_ok(client):
    got = await get_json(client, "/admin/audit/verify")
    assert got == {"ok": True, "clean": True, "summary": f"{N}/{N} valid", "problems": [],
                   "records": {"checked": N, "valid": N}, "digests": got["digests"]}
    assert got["digests"]["checked"] == got["digests"]["valid"] > 0


async def test_store_verify_catches_a_modified_byte(client, log):
    rec = log.records[17]
    flip(log.store, rec)
    got = await get_json(client, "/admin/audit/verify")
    assert got["ok"] is False and got["summary"] == f"{N - 1}/{N} valid"
    assert any(p.startswith(f"INVALID: hash_mismatch {rkey(log.store, rec)}") for p in got["problems"])


async def test_store_verify_uses_the_latest_digests_as_anchors(make_client, make_ctx, log):
    """The tail of stream A (its last segment, the pointers naming it and the digest covering it) deleted: only the
    digest held outside the store reveals it."""
    segment = segment_of(log.store, log.of(STREAM_A)[-1])
    _, first, last = layout.parse_segment_key(segment)
    previous = decode(log.store._objects[layout.digest_key(STREAM_A, log.writers[0].digest_seq - 1)])
    assert previous["last_seq"] < first  # no digest left in the store covers the deleted records
    pointers = [k for k in log.store._objects if k.startswith(layout.SESSIONS)
                and k.endswith(f"-{STREAM_A}-{first:020d}-{last:020d}")]
    for key in (segment, *pointers, layout.digest_key(STREAM_A, log.writers[0].digest_seq)):
        raw_delete(log.store, key)
    unanchored = await make_client(make_ctx(log, latest_digests=list))
    assert not any("truncated" in p for p in (await get_json(unanchored, "/admin/audit/verify"))["problems"])
    anchored = await make_client(make_ctx(log))
    got = await get_json(anchored, "/admin/audit/verify")
    assert got["ok"] is False and any(p.startswith("INVALID: truncated_digests") for p in got["problems"])


async def test_store_verify_refuses_digests_under_an_unknown_key(make_client, make_ctx, log):
    client = await make_client(make_ctx(log, public_keys=[generate_key().public_key()]))
    got = await get_json(client, "/admin/audit/verify")
    assert got["ok"] is False and any(p.startswith("INVALID: unknown_key") for p in got["problems"])


# -- one session --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("session", ["s-alpha", "bob@corp:7"])
async def test_session_verify_ok(client, log, session):
    n = sum(r.session_id == session for r in log.records)
    got = await get_json(client, f"/admin/sessions/{session}/verify")
    assert (got["id"], got["ok"], got["summary"], got["problems"]) == (session, True, f"{n}/{n} valid", [])


async def test_session_verify_catches_a_modified_byte_and_ignores_other_segments(client, log):
    alpha = {segment_of(log.store, r) for r in log.records if r.session_id == "s-alpha"}
    rec = next(r for r in log.records if segment_of(log.store, r) not in alpha)  # in a segment without s-alpha
    flip(log.store, rec)
    got = await get_json(client, f"/admin/sessions/{rec.session_id}/verify")
    assert got["ok"] is False
    assert any(p.startswith(f"INVALID: hash_mismatch {rkey(log.store, rec)}") for p in got["problems"])
    assert (await get_json(client, "/admin/sessions/s-alpha/verify"))["ok"] is True


async def test_session_verify_catches_a_rehashed_record(client, log):
    rec = next(r for r in log.records if r.session_id == "s-delta")
    segment = segment_of(log.store, rec)
    lines = unpack(log.store._objects[segment])
    n = rec.stream_seq - layout.parse_segment_key(segment)[1]
    obj = decode(lines[n])
    obj["response_status"] = 500
    obj["hash"] = hash_of(obj)  # as a forger without the signing key would
    lines[n] = canonical_bytes(obj)
    log.store.tamper_set(segment, pack(lines))
    got = await get_json(client, "/admin/sessions/s-delta/verify")
    assert got["ok"] is False and got["problems"]


# -- export -------------------------------------------------------------------------------------------------------
async def export(client, session: str, tmp_path) -> str:
    resp = await client.get(f"/admin/sessions/{session}/export", headers=INVESTIGATOR)
    assert resp.status == 200 and resp.content_type == "application/x-tar"
    filename = f"session-{layout.encode_segment(session)}.tar"
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{filename}"'
    path = tmp_path / filename
    path.write_bytes(await resp.read())
    return str(path)


def offline_verify(path: str, *keys: str) -> tuple[int, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.verify(path, public_key_files=keys, out=out, err=err)
    return code, out.getvalue().splitlines()


@pytest.mark.parametrize("session", ["s-alpha", "bob@corp:7", "s-gamma"])
async def test_export_bundle_contents(client, log, tmp_path, session):
    """The session's pointers, the whole segments they name byte for byte (other sessions' records included), the
    catalog object of its start, every digest of its streams; the manifest lists its records."""
    path = await export(client, session, tmp_path)
    mine = [r for r in log.records if r.session_id == session]
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert f"keys/{key_id(log.key.public_key())}.pem" in names
    objects = {n.removeprefix("objects/") for n in names if n.startswith("objects/")}
    segments = {segment_of(log.store, r) for r in mine}
    streams = {r.stream_id for r in mine}
    assert {k for k in objects if layout.parse_segment_key(k)} == segments
    assert {k for k in objects if k.startswith(layout.SESSIONS)} == \
        {k for k in log.store._objects if k.startswith(layout.session_prefix(session))}
    assert {k for k in objects if layout.parse_digest_key(k)} == \
        {k for k in log.store._objects if layout.parse_digest_key(k) and layout.parse_digest_key(k)[0] in streams}
    [catalog] = [k for k in objects if k.startswith(layout.CATALOG)]
    assert session in [e["session_id"] for e in decode(log.store._objects[catalog])]
    bundle = BundleStore(path)
    assert all(bundle._objects[k] == log.store._objects[k] for k in objects)  # byte for byte
    assert any(decode(line)["session_id"] != session for k in segments for line in unpack(bundle._objects[k]))
    manifest = bundle.manifest
    assert manifest["session_id"] == session and set(manifest["streams"]) == streams
    assert sorted((e["session_seq"], e["segment"], e["stream_seq"], e["hash"]) for e in manifest["records"]) == \
        [(r.session_seq, segment_of(log.store, r), r.stream_seq, r.hash) for r in mine]
    assert bundle.manifest_problems() == [] and bundle.anomalies == []
    # the bundle replays the session offline, exactly
    assert [r.hash async for r in iter_records(bundle, session)] == [r.hash for r in mine]


@pytest.mark.parametrize("session", ["s-alpha", "bob@corp:7"])
async def test_export_bundle_verifies_offline(client, log, tmp_path, session):
    path = await export(client, session, tmp_path)
    n = sum(r.session_id == session for r in log.records)
    assert await asyncio.to_thread(offline_verify, path) == (0, [f"{n}/{n} valid"])


async def test_export_of_a_session_whose_pointers_are_unreadable_is_still_evidence(client, log, tmp_path):
    keys = [k for k in log.store._objects if k.startswith(layout.session_prefix("s-delta"))]
    for key in keys:
        log.store.tamper_set(key, b"garbage")
    path = await export(client, "s-delta", tmp_path)
    bundle = BundleStore(path)
    assert all(bundle._objects[k] == b"garbage" for k in keys) and bundle.manifest["records"] == []
    code, lines = await asyncio.to_thread(offline_verify, path)
    assert code == 1 and any(keys[0] in line for line in lines), lines


async def test_export_bundle_detects_tampering(client, log, tmp_path):
    path = await export(client, "s-alpha", tmp_path)
    data = await asyncio.to_thread(Path(path).read_bytes)
    i = data.index(b"MASKED")  # inside a segment's record (tar keeps no checksum over member data)
    await asyncio.to_thread(Path(path).write_bytes, data[:i] + b"N" + data[i + 1:])
    code, lines = await asyncio.to_thread(offline_verify, path)
    assert code == 1 and any(line.startswith("INVALID: hash_mismatch streams/") for line in lines), lines
    bundle = BundleStore(path)
    assert [k for k in bundle._objects if bundle._objects[k] != log.store._objects.get(k)] == \
        [next(k for k in sorted(bundle._objects) if layout.parse_segment_key(k))]


async def test_export_bundle_checked_against_a_trusted_key(client, log, tmp_path):
    path = await export(client, "s-gamma", tmp_path)
    other = tmp_path / "other.pem"
    other.write_bytes(public_key_pem(generate_key().public_key()))
    code, lines = await asyncio.to_thread(offline_verify, path, str(other))
    assert code == 1 and any(line.startswith("INVALID: unknown_key") for line in lines)


# -- digest -------------------------------------------------------------------------------------------------------
async def test_digest_endpoint(client, log, tmp_path):
    got = await get_json(client, "/admin/audit/digest")
    assert got["digests"] == log.anchors and len(got["digests"]) == 2
    [key] = got["public_keys"]
    assert key["id"] == key_id(log.key.public_key()) == got["digests"][0]["public_key_id"]
    assert key_id(load_public_key(key["pem"].encode())) == key["id"]


async def test_digest_endpoint_before_the_first_digest(make_client, make_ctx, log):
    client = await make_client(make_ctx(log, latest_digests=list))
    got = await get_json(client, "/admin/audit/digest")
    assert got["digests"] == [] and len(got["public_keys"]) == 1
