"""The audit service's side of the record spool: what `commit` spools, what start-up reads back from the spool
(session heads, record ids) and how journal recovery finds a record that was already stored in a segment."""
from __future__ import annotations

from gateway.audit import layout
from gateway.audit.chain import MemorySessionHeads, StreamChain, write_records
from gateway.audit.journal import OpenExchange
from gateway.audit.service import AuditLog
from gateway.audit.spool import Spool
from gateway.audit.store import MemoryStore
from gateway.config import AuditSettings
from tests.audit.logbuilder import STREAM_A, body
from tests.audit.test_uploader import make_records, spool_all


def audit_log(tmp_path, store=None) -> AuditLog:
    settings = AuditSettings(store=f"file://{tmp_path / 'unused'}", spool_dir=str(tmp_path / "spool"))
    return AuditLog(settings, store=store if store is not None else MemoryStore())


async def test_commit_spools_the_record_under_its_spool_name(tmp_path):
    log = audit_log(tmp_path)
    log.chain = StreamChain(MemorySessionHeads(), STREAM_A)
    log.spool = Spool(tmp_path / "spool" / "records", max_bytes=1 << 24, fsync=False)
    first = await log.commit(body(1, "s-alpha"), new_session=True)
    second = await log.commit(body(2, "s-alpha"))
    assert [e.objects for e in log.spool.pending()] == [
        [(layout.spool_record_name(STREAM_A, 1), first.to_bytes())],
        [(layout.spool_record_name(STREAM_A, 2), second.to_bytes())]]
    assert second.session_prev == first.hash
    await log.spool.close()


async def test_start_up_scan_finds_session_heads_and_record_ids_in_the_spool(tmp_path):
    records = await make_records(30)
    log = audit_log(tmp_path)
    log.spool = Spool(tmp_path / "spool" / "records", max_bytes=1 << 24, fsync=False)
    await spool_all(log.spool, records[:20])
    await log.spool.append([("not/a/record", b"{}")])  # the uploader alarms on it; the scan skips it
    await log.spool.append([(layout.spool_record_name(STREAM_A, 21), b"not json")])
    await spool_all(log.spool, records[20:])
    await log.spool.ack(5)  # shipped already: not part of what the scan reports
    found = log._scan_spool({records[3].record_id, records[12].record_id, records[29].record_id, "rec-absent"})
    assert found == {records[12].record_id, records[29].record_id}
    newest = {}
    for r in records[5:]:
        newest[r.session_id] = (r.session_seq, r.hash)
    assert log._spooled_heads == newest
    await log.spool.close()


async def test_recovery_finds_a_record_stored_in_a_segment(tmp_path):
    records = await make_records(40)
    store = MemoryStore()
    for lo in range(0, 40, 7):  # segments of 7 records, each holding several records of every session
        await write_records(store, records[lo:lo + 7])
    log = audit_log(tmp_path, store)

    def open_exchange(record_id: str, session_id: str | None) -> OpenExchange:
        return OpenExchange(request_id="req", begin={"record_id": record_id, "session_id": session_id})

    latest = records[-1]
    assert await log._already_recorded(open_exchange(latest.record_id, latest.session_id), set())
    in_older_segment = records[-9]  # in the segment before the newest: still among the session's newest pointers
    assert await log._already_recorded(open_exchange(in_older_segment.record_id, in_older_segment.session_id), set())
    assert not await log._already_recorded(open_exchange("rec-absent", latest.session_id), set())
    assert not await log._already_recorded(open_exchange(latest.record_id, "other-session"), set())
    assert not await log._already_recorded(open_exchange(latest.record_id, None), set())
    assert await log._already_recorded(open_exchange("rec-spooled", None), {"rec-spooled"})
