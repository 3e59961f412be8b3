"""`gateway audit verify` / `gateway audit export` (functions in `gateway.audit.cli`) on FileStore logs and bundles."""
import asyncio
import io
import shutil
import tarfile

import orjson
import pytest

from gateway.audit import cli, layout
from gateway.audit.bundle import BundleStore
from gateway.audit.digest import generate_key, public_key_pem
from gateway.audit.store import FileStore
from gateway.audit.verify_checks import _ranges
from tests.audit.logbuilder import (
    STREAM_A,
    Log,
    build_log,
    raw_delete,
    raw_get,
    raw_set,
)

N = 40


@pytest.fixture
def log(tmp_path) -> Log:
    return asyncio.run(build_log(FileStore(tmp_path / "audit", fsync=False), n=N))


@pytest.fixture
def uri(log) -> str:
    return f"file://{log.store.root}"


@pytest.fixture
def keyfile(log, tmp_path) -> str:
    path = tmp_path / "audit.pub.pem"
    path.write_bytes(public_key_pem(log.key.public_key()))
    return str(path)


def run_verify(store_uri, **kw) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.verify(store_uri, out=out, err=err, **kw)
    return code, out.getvalue().splitlines(), err.getvalue()


def of_session(log: Log, session: str):
    return [r for r in log.records if r.session_id == session]


def flip_masked(log: Log, rec) -> None:
    """Change one byte of `rec`'s content in its segment."""
    raw = asyncio.run(log.read_record(rec))
    i = raw.index(b"MASKED")
    asyncio.run(log.set_record(rec, raw[:i] + b"N" + raw[i + 1:]))


def delete_segment(log: Log, rec, *, index: bool = True) -> list:
    """Delete the segment holding `rec` (and, with `index`, its pointers and catalog object); returns its records."""
    key, _ = log.segment_of(rec)
    if index:
        for okey, _ in log.index_objects(key):
            raw_delete(log.store, okey)
    raw_delete(log.store, key)
    return log.segments[key]


# -- whole store --------------------------------------------------------------------------------------------------
def test_verify_ok(uri, keyfile):
    code, lines, _ = run_verify(uri, public_key_files=[keyfile])
    assert (code, lines) == (0, [f"{N}/{N} valid"])


def test_verify_with_anchor_file(log, uri, keyfile, tmp_path):
    anchors = tmp_path / "anchors.jsonl"
    anchors.write_bytes(b"\n".join(orjson.dumps(a) for a in log.anchors) + b"\n")
    assert run_verify(uri, public_key_files=[keyfile], anchor_file=str(anchors))[:2] == (0, [f"{N}/{N} valid"])
    # truncate stream A's tail (its last segment, that segment's index objects and the last digest): only the
    # anchor can tell
    delete_segment(log, log.of(STREAM_A)[-1])
    raw_delete(log.store, layout.digest_key(STREAM_A, log.writers[0].digest_seq))
    code, lines, _ = run_verify(uri, public_key_files=[keyfile], anchor_file=str(anchors))
    assert code == 1 and any(line.startswith("INVALID: truncated_digests") for line in lines)


def test_verify_one_modified_byte(log, uri, keyfile):
    victim = log.records[7]
    flip_masked(log, victim)
    code, lines, _ = run_verify(uri, public_key_files=[keyfile])
    assert code == 1
    assert lines[:-1] == [f"INVALID: hash_mismatch {log.where(victim)} (content does not match its hash)"]
    assert lines[-1] == f"{N - 1}/{N} valid"


def test_verify_without_key_fails(uri):
    code, lines, err = run_verify(uri)
    assert code == 1 and any(line.startswith("INVALID: unknown_key") for line in lines) and "no --public-key" in err


def test_verify_usage_errors(uri, tmp_path):
    assert run_verify(uri, public_key_files=[str(tmp_path / "nope.pem")])[0] == 2
    assert run_verify("gopher://x")[0] == 2
    (tmp_path / "junk.tar").write_bytes(b"not a tar")
    assert run_verify(str(tmp_path / "junk.tar"))[0] == 2


# -- one session --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("session", ["s-alpha", "bob@corp:7", "s-gamma"])
def test_verify_session_ok(log, uri, keyfile, session):
    n = len(of_session(log, session))
    assert n >= 5
    code, lines, _ = run_verify(uri, session=session, public_key_files=[keyfile])
    assert (code, lines) == (0, [f"{n}/{n} valid"])


def test_verify_session_ignores_other_sessions(log, uri, keyfile):
    # a record of s-delta sharing a segment with s-alpha: context when s-alpha is verified, not its problem
    victim = next(r for r in of_session(log, "s-delta")
                  if "s-alpha" in {o.session_id for o in log.segments[log.segment_of(r)[0]]})
    flip_masked(log, victim)
    n = len(of_session(log, "s-alpha"))
    assert run_verify(uri, session="s-alpha", public_key_files=[keyfile])[:2] == (0, [f"{n}/{n} valid"])
    code, lines, _ = run_verify(uri, session="s-delta", public_key_files=[keyfile])
    m = len(of_session(log, "s-delta"))
    assert code == 1 and lines[-1] == f"{m - 1}/{m} valid"
    assert lines[:-1] == [f"INVALID: hash_mismatch {log.where(victim)} (content does not match its hash)"]


def test_verify_session_detects_deleted_record(log, uri, keyfile):
    # the segment holding the session's 3rd record is deleted with its index objects (a careful attacker)
    recs = of_session(log, "s-alpha")
    gone = [r.session_seq for r in delete_segment(log, recs[2]) if r.session_id == "s-alpha"]
    code, lines, _ = run_verify(uri, session="s-alpha", public_key_files=[keyfile])
    assert code == 1
    assert [line for line in lines if "session_gap" in line] == [
        f"INVALID: session_gap session s-alpha seq {span} (no record with this session_seq)" for span in _ranges(gone)]
    assert lines[-1] == f"{len(recs) - len(gone)}/{len(recs)} valid"


def test_verify_session_detects_segment_deleted_under_its_pointer(log, uri, keyfile):
    recs = of_session(log, "bob@corp:7")
    key, _ = log.segment_of(recs[1])
    delete_segment(log, recs[1], index=False)
    code, lines, _ = run_verify(uri, session="bob@corp:7", public_key_files=[keyfile])
    assert code == 1
    assert f"INVALID: missing_record {key} (the session index names this segment, the store lacks it)" in lines
    assert not any("index_" in line for line in lines)  # the pointer is not reported a second time


def test_verify_session_detects_truncated_tail(log, uri, keyfile):
    last = of_session(log, "s-gamma")[-1]  # named by stream A's final digest
    delete_segment(log, last)
    code, lines, _ = run_verify(uri, session="s-gamma", public_key_files=[keyfile])
    assert code == 1 and any(line.startswith(f"INVALID: truncated_session session s-gamma seq {last.session_seq}")
                             for line in lines)


def test_verify_session_detects_forged_digest(log, uri, keyfile):
    key = layout.digest_key(STREAM_A, 1)
    raw = asyncio.run(raw_get(log.store, key))
    i = raw.index(b'"created_at":"') + 14
    raw_set(log.store, key, raw[:i] + b"1" + raw[i + 1:])
    code, lines, _ = run_verify(uri, session="s-alpha", public_key_files=[keyfile])
    assert code == 1 and f"INVALID: bad_signature {key}" in " ".join(lines)


def test_verify_session_unanchored_is_a_warning(log, uri, keyfile):
    rec = asyncio.run(log.append(1, "s-alpha"))
    code, lines, _ = run_verify(uri, session="s-alpha", public_key_files=[keyfile])
    assert code == 0
    assert lines[0].startswith(f"INVALID: unanchored session s-alpha seq {rec.session_seq}")


def test_verify_unknown_session(uri, keyfile):
    code, lines, _ = run_verify(uri, session="nobody", public_key_files=[keyfile])
    assert code == 1 and lines == [
        "INVALID: session_not_found session nobody (the store holds no record of this session)", "0/0 valid"]


# -- evidence bundles ---------------------------------------------------------------------------------------------
def export(uri, session, path, keyfile) -> int:
    err = io.StringIO()
    code = cli.export(uri, session, str(path), public_key_files=[keyfile] if keyfile else [], err=err)
    return code


@pytest.mark.parametrize("session", ["s-alpha", "bob@corp:7"])
def test_export_then_verify_offline(log, uri, keyfile, tmp_path, session):
    bundle = tmp_path / "evidence.tar"
    assert export(uri, session, bundle, keyfile) == 0
    shutil.rmtree(log.store.root)  # no access to the original store
    n = len(of_session(log, session))
    for target in (str(bundle), f"bundle://{bundle}"):
        code, lines, err = run_verify(target)
        assert (code, lines) == (0, [f"{n}/{n} valid"]), err
        assert "inside the bundle" in err
    assert run_verify(str(bundle), public_key_files=[keyfile])[:2] == (0, [f"{n}/{n} valid"])
    b = BundleStore(str(bundle))
    assert b.session_id == session and not b.anomalies
    assert [(r["segment"], r["stream_seq"]) for r in b.manifest["records"]] == [
        (log.segment_of(r)[0], r.stream_seq) for r in of_session(log, session)]


def test_bundle_contents(log, uri, keyfile, tmp_path):
    bundle = tmp_path / "e.tar"
    assert export(uri, "s-delta", bundle, keyfile) == 0
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    streams = {r.stream_id for r in of_session(log, "s-delta")}
    digests = {n for n in names if "/digests/" in n}
    assert digests == {f"objects/{layout.digest_key(s, i)}" for s in streams
                       for i in range(1, log.writers[0 if s == STREAM_A else 1].digest_seq + 1)}
    assert names[0] == "manifest.json" and sum(n.startswith("keys/") for n in names) == 1
    segments = {n for n in names if "/segments/" in n}
    assert segments == {f"objects/{log.segment_of(r)[0]}" for r in of_session(log, "s-delta")}


def test_tampered_bundle_is_invalid(log, uri, keyfile, tmp_path):
    bundle = tmp_path / "evidence.tar"
    assert export(uri, "s-alpha", bundle, keyfile) == 0
    victim = of_session(log, "s-alpha")[1]
    data = bundle.read_bytes()
    i = data.index(victim.to_bytes()) + victim.to_bytes().index(b"MASKED")
    bundle.write_bytes(data[:i] + b"N" + data[i + 1:])
    code, lines, _ = run_verify(str(bundle), public_key_files=[keyfile])
    assert code == 1 and f"INVALID: hash_mismatch {log.where(victim)} (content does not match its hash)" in lines


def test_bundle_with_a_member_removed_is_invalid(log, uri, keyfile, tmp_path):
    bundle, cut = tmp_path / "evidence.tar", tmp_path / "cut.tar"
    assert export(uri, "s-alpha", bundle, keyfile) == 0
    middle = of_session(log, "s-alpha")[3]
    key, _ = log.segment_of(middle)
    with tarfile.open(bundle) as src, tarfile.open(cut, "w:") as dst:
        for m in src.getmembers():
            if m.name != f"objects/{key}":
                dst.addfile(m, src.extractfile(m))
    code, lines, _ = run_verify(str(cut), public_key_files=[keyfile])
    assert code == 1 and any(line.startswith(f"INVALID: missing_record {key}") for line in lines)


def test_bundle_checked_against_another_key(uri, keyfile, tmp_path):
    bundle = tmp_path / "evidence.tar"
    assert export(uri, "s-alpha", bundle, keyfile) == 0
    other = tmp_path / "other.pem"
    other.write_bytes(public_key_pem(generate_key().public_key()))
    code, lines, _ = run_verify(str(bundle), public_key_files=[str(other)])
    assert code == 1 and any(line.startswith("INVALID: unknown_key") for line in lines)


def test_export_unknown_session(uri, keyfile, tmp_path):
    assert export(uri, "nobody", tmp_path / "x.tar", keyfile) == 1
    assert not (tmp_path / "x.tar").exists()


def test_tampered_manifest(uri, keyfile, tmp_path):
    bundle = tmp_path / "evidence.tar"
    assert export(uri, "s-alpha", bundle, keyfile) == 0
    data = bundle.read_bytes()
    renamed = tmp_path / "renamed.tar"
    renamed.write_bytes(data.replace(b'"session_id": "s-alpha"', b'"session_id": "s-alphX"'))
    code, lines, _ = run_verify(str(renamed), public_key_files=[keyfile])
    assert code == 1 and lines[0].startswith("INVALID: session_not_found session s-alphX")
    broken = tmp_path / "broken.tar"
    broken.write_bytes(data.replace(b'"format"', b'"format\x00', 1))
    code, lines, _ = run_verify(str(broken), public_key_files=[keyfile])
    assert code == 1 and lines[0].startswith("INVALID: manifest_unreadable")
    # the objects still verify when the session is named
    assert run_verify(str(broken), session="s-alpha", public_key_files=[keyfile])[0] == 1  # manifest problem stays


def test_verify_session_detects_rewritten_index_pointer(log, uri, keyfile):
    a, b = of_session(log, "s-gamma")[1:3]
    key = log.pointer_key(a)
    body = orjson.loads(asyncio.run(raw_get(log.store, key)))
    body[0][2] = b.hash
    raw_set(log.store, key, orjson.dumps(body))
    code, lines, _ = run_verify(uri, session="s-gamma", public_key_files=[keyfile])
    n = len(of_session(log, "s-gamma"))
    assert (code, lines) == (1, [f"INVALID: index_mismatch {key} (differs from what {log.segment_of(a)[0]} implies)",
                                 f"{n}/{n} valid"])


def test_the_gateway_command_verifies_exports_and_replays(log, uri, keyfile, tmp_path):
    """The real console entry point (a separate process), as an investigator runs it."""
    import subprocess
    import sys

    def gateway(*args):
        return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, timeout=60,
                              check=False)

    ok = gateway("audit", "verify", "--store", uri, "--public-key", keyfile)
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1] == f"{N}/{N} valid"
    session = log.records[0].session_id
    bundle = tmp_path / "evidence.tar"
    assert gateway("audit", "export", "--store", uri, session, "-o", str(bundle), "--public-key", keyfile).returncode == 0
    replayed = gateway("replay", "--store", uri, session, "--speed", "0", "--format", "json")
    assert replayed.returncode == 0 and replayed.stdout.strip()
    flip_masked(log, log.records[0])
    bad = gateway("audit", "verify", "--store", uri, "--public-key", keyfile)
    assert bad.returncode == 1 and any(line.startswith("INVALID: ") for line in bad.stdout.splitlines())
    assert gateway("audit", "verify", "--store", str(bundle), "--public-key", keyfile).returncode == 0
