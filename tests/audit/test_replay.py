"""`gateway replay` (`gateway.audit.cli.replay`, `gateway.audit.replay`): formats, exact bytes, pacing, start time;
sessions spread over multi-record segments of two streams, and the problems replay reports."""
import asyncio
import io
import itertools
import time

import orjson
import pytest

from gateway.audit import cli, layout, replay
from gateway.audit.canonical import canonical_bytes, decode
from gateway.audit.chain import (
    MemorySessionHeads,
    StreamChain,
    write_record,
    write_records,
)
from gateway.audit.digest import DigestWriter, generate_key
from gateway.audit.record import MaskedEvent, Record, RecordBody
from gateway.audit.segment import SegmentCache, pack, unpack
from gateway.audit.store import FileStore, MemoryStore, list_all
from tests.audit.logbuilder import STREAM_A, STREAM_B, build_log, raw_get, raw_set


class Sink(io.RawIOBase):
    """A binary stream that records when each write happened."""

    def __init__(self) -> None:
        self.chunks: list[tuple[float, bytes]] = []

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.chunks.append((time.perf_counter(), bytes(b)))
        return len(b)

    @property
    def data(self) -> bytes:
        return b"".join(c for _, c in self.chunks)


def chat_event(text: str) -> str:
    return "data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}).decode() + "\n\n"


def exchange(i: int, session: str, events: list[MaskedEvent], route="/v1/chat/completions") -> RecordBody:
    return RecordBody(record_id=f"r{i}", session_id=session, time=f"2025-01-01T00:00:{i % 60:02d}.000Z",
                      route=route, method="POST", response_status=200,
                      response_content_type="text/event-stream", masked_response=events)


async def write_session(store, session: str, responses: list[list[MaskedEvent]], **kw) -> list:
    chain = StreamChain(MemorySessionHeads(), "20250101T000000Z-cccccccccccc")
    recs = []
    for i, events in enumerate(responses):
        rec = await chain.append(exchange(i, session, events, **kw))
        await write_record(store, rec)
        recs.append(rec)
    await DigestWriter(chain, generate_key()).publish(store)
    return recs


@pytest.fixture
def store(tmp_path) -> FileStore:
    return FileStore(tmp_path / "audit", fsync=False)


def uri_of(store) -> str:
    return f"file://{store.root}"


def run(store_uri, session, **kw) -> tuple[int, Sink, str]:
    sink, err = Sink(), io.StringIO()
    code = cli.replay(store_uri, session, out=sink, err=err, **kw)
    return code, sink, err.getvalue()


CHAT = [[MaskedEvent(t_ms=0, data=chat_event("Hel")), MaskedEvent(t_ms=40, data=chat_event("lo [MASKED:email]")),
         MaskedEvent(t_ms=80, data="data: [DONE]\n\n")],
        [MaskedEvent(t_ms=0, data=chat_event("é ✓")), MaskedEvent(t_ms=5, data=chat_event("!"))]]


def test_sse_speed_zero_exact_bytes_and_boundaries(store):
    asyncio.run(write_session(store, "s1", CHAT))
    code, sink, err = run(uri_of(store), "s1", speed=0, fmt="sse")
    assert code == 0, err
    assert [c for _, c in sink.chunks] == [e["data"].encode() for resp in CHAT for e in resp]


def test_sse_exact_bytes_of_a_built_log(tmp_path):
    log = asyncio.run(build_log(FileStore(tmp_path / "a", fsync=False), n=40))
    code, sink, _ = run(f"file://{log.store.root}", "bob@corp:7", speed=0)
    expected = b"".join(e["data"].encode() for r in log.records if r.session_id == "bob@corp:7"
                        for e in r.masked_response)
    assert code == 0 and sink.data == expected and expected


def test_sse_pacing_scaled_by_speed(store):
    asyncio.run(write_session(store, "s1", [[MaskedEvent(t_ms=0, data="data: a\n\n"),
                                             MaskedEvent(t_ms=200, data="data: b\n\n"),
                                             MaskedEvent(t_ms=400, data="data: c\n\n")]]))
    _, sink, _ = run(uri_of(store), "s1", speed=2)
    t = [ts for ts, _ in sink.chunks]
    assert 0.18 <= t[2] - t[0] < 0.35  # 400 ms at 2x
    assert 0.08 <= t[1] - t[0] < 0.2
    _, sink, _ = run(uri_of(store), "s1", speed=0)
    assert sink.chunks[-1][0] - sink.chunks[0][0] < 0.05


def test_json_format(store):
    recs = asyncio.run(write_session(store, "s1", CHAT))
    code, sink, _ = run(uri_of(store), "s1", fmt="json")
    lines = [orjson.loads(line) for line in sink.data.splitlines()]
    assert code == 0 and [x["type"] for x in lines] == ["record", "event", "event", "event", "record", "event", "event"]
    assert lines[0]["hash"] == recs[0].hash and lines[0]["events"] == 3 and "masked_response" not in lines[0]
    assert [x["data"] for x in lines if x["type"] == "event"] == [e["data"] for resp in CHAT for e in resp]
    assert lines[2] == {"type": "event", "session_seq": 1, "record_id": "r0", "i": 1, "t_ms": 40,
                        "data": CHAT[0][1]["data"]}


def test_text_format(store):
    asyncio.run(write_session(store, "s1", CHAT))
    asyncio.run(write_session(FileStore(store.root + "-2", fsync=False), "s2",
                              [[MaskedEvent(t_ms=0, data="plain "), MaskedEvent(t_ms=1, data="body")]],
                              route="/v1/other"))
    code, sink, _ = run(uri_of(store), "s1", fmt="text")
    text = sink.data.decode()
    assert code == 0
    assert text.splitlines() == ["--- #1 2025-01-01T00:00:00.000Z exchange POST /v1/chat/completions 200 ---",
                                 "Hello [MASKED:email]",
                                 "--- #2 2025-01-01T00:00:01.000Z exchange POST /v1/chat/completions 200 ---",
                                 "é ✓!"]
    code, sink, _ = run(f"file://{store.root}-2", "s2", fmt="text")
    assert sink.data.decode().splitlines()[1] == "plain body"


def test_text_stream_output(store):
    asyncio.run(write_session(store, "s1", CHAT))
    out = io.StringIO()
    assert cli.replay(uri_of(store), "s1", speed=0, out=out, err=io.StringIO()) == 0
    assert out.getvalue() == "".join(e["data"] for resp in CHAT for e in resp)


def test_unknown_session_and_bad_args(store):
    asyncio.run(write_session(store, "s1", CHAT))
    code, sink, err = run(uri_of(store), "nobody")
    assert code == 1 and not sink.chunks and "no records" in err
    assert run(uri_of(store), "s1", fmt="xml")[0] == 2
    assert run(uri_of(store), "s1", speed=-1)[0] == 2


def test_tampered_record_is_reported(store):
    recs = asyncio.run(write_session(store, "s1", CHAT))
    key = layout.segment_key(recs[0].stream_id, recs[0].stream_seq, recs[0].stream_seq)
    raw = asyncio.run(raw_get(store, key))
    raw_set(store, key, raw.replace(b"Hel", b"Hal"))
    code, sink, err = run(uri_of(store), "s1", speed=0)
    assert code == 1 and "fails its hash check" in err and b"Hal" in sink.data


def test_replay_from_bundle(store, tmp_path):
    asyncio.run(write_session(store, "s1", CHAT))
    bundle = tmp_path / "b.tar"
    assert cli.export(uri_of(store), "s1", str(bundle), err=io.StringIO()) == 0
    code, sink, _ = run(str(bundle), "s1", speed=0)
    assert code == 0 and sink.data == b"".join(e["data"].encode() for resp in CHAT for e in resp)


async def write_interleaved(store, responses: list[list[MaskedEvent]], *, batch: int = 4) -> list[Record]:
    """Session "s" (every other record; the rest: three other sessions) over two writer streams taking turns in
    runs of three records, each stream storing its records in segments of `batch` (the last one shorter)."""
    heads = MemorySessionHeads()
    chains = [StreamChain(heads, STREAM_A), StreamChain(heads, STREAM_B)]
    pending: list[list[Record]] = [[], []]
    recs: list[Record] = []
    i = 0
    for events in responses:
        for session, evs in (("s", events), (f"o{i % 3}", [MaskedEvent(t_ms=0, data="data: other\n\n")])):
            k = (i // 3) % 2
            rec = await chains[k].append(exchange(i, session, evs))
            recs.append(rec)
            pending[k].append(rec)
            if len(pending[k]) == batch:
                await write_records(store, pending[k])
                pending[k] = []
            i += 1
    for k in (0, 1):
        if pending[k]:
            await write_records(store, pending[k])
    return recs


def one_event(i: int) -> list[MaskedEvent]:
    return [MaskedEvent(t_ms=0, data=chat_event(f"t{i} "))]


async def replayed(store, session: str = "s", **kw) -> tuple[list[Record], list[str]]:
    problems: list[str] = []
    recs = [r async for r in replay.iter_records(store, session, on_problem=problems.append, **kw)]
    return recs, problems


@pytest.mark.parametrize("read_ahead", [0, 1, 8])
@pytest.mark.parametrize("batch", [1, 4, 7])
async def test_session_over_segments_of_two_streams_replays_in_session_order(read_ahead, batch):
    store = MemoryStore()
    recs = await write_interleaved(store, [one_event(i) for i in range(20)], batch=batch)
    mine = [r for r in recs if r.session_id == "s"]
    pointers = await list_all(store, layout.session_prefix("s"))
    assert {layout.parse_session_index_key(k)[2] for k in pointers} == {STREAM_A, STREAM_B}
    if batch > 1:  # the merge matters: some pointer holds a record that comes after the next pointer's first
        bodies = [decode(store._objects[k]) for k in pointers]
        assert any(b[-1][0] > nxt[0][0] for b, nxt in itertools.pairwise(bodies))
    got, problems = await replayed(store, read_ahead=read_ahead)
    assert problems == []
    assert [r.session_seq for r in got] == list(range(1, 21))
    assert [r.model_dump() for r in got] == [r.model_dump() for r in mine]
    others, problems = await replayed(store, "o1")
    assert problems == [] and [r.hash for r in others] == [r.hash for r in recs if r.session_id == "o1"]


async def test_sse_replay_of_a_segmented_session_is_the_original_events(tmp_path):
    store = FileStore(tmp_path / "a", fsync=False)
    responses = [[MaskedEvent(t_ms=0, data=chat_event(f"a{i}")), MaskedEvent(t_ms=3, data=chat_event(f"b{i}"))]
                 for i in range(12)]
    await write_interleaved(store, responses, batch=5)
    chunks = [c async for c in replay.render(store, "s", speed=0)]
    assert chunks == [e["data"].encode() for resp in responses for e in resp]


class CountingStore(MemoryStore):
    """Records the keys read, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    async def get(self, key: str) -> bytes | None:
        self.reads.append(key)
        await asyncio.sleep(0)  # let the reads in flight interleave as they would on a real store
        return await super().get(key)


async def test_first_record_comes_before_the_whole_session_is_read():
    store = CountingStore()
    await write_interleaved(store, [one_event(i) for i in range(150)], batch=2)
    pointers = await list_all(store, layout.session_prefix("s"))
    records = replay.iter_records(store, "s", read_ahead=4)
    first = await anext(records)
    assert first.session_seq == 1
    read = [k for k in store.reads if k.startswith(layout.SESSIONS)]
    assert len(pointers) > 100 and len(read) <= 6
    await records.aclose()


async def test_each_segment_is_read_once_and_dropped_once_passed(monkeypatch):
    peak = 0

    class Watched(SegmentCache):
        async def records(self, segment_key: str):
            nonlocal peak
            peak = max(peak, len(self._segments) + 1)
            return await super().records(segment_key)

    monkeypatch.setattr(replay, "SegmentCache", Watched)
    store = CountingStore()
    await write_interleaved(store, [one_event(i) for i in range(200)], batch=3)
    got, problems = await replayed(store, read_ahead=2)
    assert problems == [] and len(got) == 200
    segments = [k for k in store.reads if layout.parse_segment_key(k)]
    assert len(segments) == len(set(segments)) > 100  # each fetched once
    assert peak <= 6  # the segments in flight, not the session's 130-odd


# -- problems -----------------------------------------------------------------------------------------------------
@pytest.fixture
async def spread() -> tuple[MemoryStore, list[Record]]:
    store = MemoryStore()
    recs = await write_interleaved(store, [one_event(i) for i in range(10)], batch=4)
    return store, [r for r in recs if r.session_id == "s"]


def segment_of(store, rec: Record) -> str:
    [key] = [k for k in store._objects if (p := layout.parse_segment_key(k)) and p[0] == rec.stream_id
             and p[1] <= rec.stream_seq <= p[2]]
    return key


def pointer_of(store, rec: Record) -> str:
    [key] = [k for k in store._objects if k.startswith(layout.session_prefix(rec.session_id))
             and [rec.session_seq, rec.stream_seq, rec.hash] in decode(store._objects[k])]
    return key


async def test_tampered_record_in_a_segment_is_shown_and_reported(spread):
    store, mine = spread
    rec = mine[3]
    seg = segment_of(store, rec)
    lines = unpack(store._objects[seg])
    i = rec.stream_seq - layout.parse_segment_key(seg)[1]
    lines[i] = lines[i].replace(b"t3 ", b"t4 ")
    store.tamper_set(seg, pack(lines))
    got, problems = await replayed(store)
    assert [r.session_seq for r in got] == list(range(1, 11)) and "t4 " in got[3].masked_response[0]["data"]
    assert problems == [f"record {rec.stream_id}/{rec.stream_seq} (session seq 4) fails its hash check"]


async def test_missing_segment_is_reported_and_the_rest_replayed(spread):
    store, mine = spread
    seg = segment_of(store, mine[2])
    store.tamper_delete(seg)
    _, first, last = layout.parse_segment_key(seg)
    lost = {r.session_seq for r in mine if r.stream_id == mine[2].stream_id and first <= r.stream_seq <= last}
    got, problems = await replayed(store)
    assert [r.session_seq for r in got] == [n for n in range(1, 11) if n not in lost] and 3 in lost
    assert problems == [(f"missing segment {seg} (named by {pointer_of(store, mine[2])}), or it does not hold the "
                         "records its key names")]


async def test_segment_not_holding_what_its_key_names_is_reported(spread):
    store, mine = spread
    seg = segment_of(store, mine[0])
    store.tamper_set(seg, pack(unpack(store._objects[seg])[:-1]))
    got, problems = await replayed(store)
    assert 1 not in [r.session_seq for r in got] and len(problems) == 1 and f"missing segment {seg} " in problems[0]


async def test_malformed_pointer_body_is_reported(spread):
    store, mine = spread
    key = pointer_of(store, mine[4])
    n = len(decode(store._objects[key]))
    for body in (b"not json", b"[]", b'[["1", 2, "h"]]'):
        store.tamper_set(key, body)
        got, problems = await replayed(store)
        assert len(got) == 10 - n and problems == [f"index pointer {key} is missing or malformed"]


async def test_record_differing_from_its_pointer_entry_is_reported(spread):
    store, mine = spread
    rec = mine[5]
    key = pointer_of(store, rec)
    body = [e if e[0] != rec.session_seq else [e[0], e[1], "0" * 64] for e in decode(store._objects[key])]
    store.tamper_set(key, canonical_bytes(body))
    got, problems = await replayed(store)
    assert [r.session_seq for r in got] == list(range(1, 11))
    assert problems == [(f"record {rec.stream_id}/{rec.stream_seq} (session seq 6) does not match its index "
                         f"pointer entry in {key}")]


async def test_pointer_naming_another_sessions_record_does_not_show_it(spread):
    store, mine = spread
    rec = mine[1]
    key = pointer_of(store, rec)
    seg = layout.parse_session_index_key(key)
    other = next(n for n in range(seg[3], seg[4] + 1) if decode(unpack(store._objects[segment_of(store, rec)])
                                                               [n - seg[3]])["session_id"] != "s")
    body = [e if e[0] != rec.session_seq else [e[0], other, e[2]] for e in decode(store._objects[key])]
    store.tamper_set(key, canonical_bytes(body))
    got, problems = await replayed(store)
    assert 2 not in [r.session_seq for r in got] and len(got) == 9
    assert len(problems) == 1 and problems[0].endswith("belongs to another session")


async def test_stray_key_under_the_session_prefix_is_reported(spread):
    store, _ = spread
    store.tamper_set(layout.session_prefix("s") + "junk", b"[]")
    got, problems = await replayed(store)
    assert len(got) == 10 and problems == [f"unexpected object {layout.session_prefix('s')}junk in the session index"]


# -- start time ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["one_record", "many_records", "segments"])
def test_1000_event_session_starts_within_100ms(store, shape):
    """Time from the call to the first byte written, with a FileStore: 1,000 events in one streamed response,
    1,000 one-event responses in one-record segments (1,000 index pointers), or 1,000 one-event responses
    interleaved with another session's over two streams in segments of 200 records."""
    if shape == "one_record":
        responses = [[MaskedEvent(t_ms=k // 4, data=chat_event(f"token {k} ")) for k in range(1000)]]
    else:
        responses = [[MaskedEvent(t_ms=0, data=chat_event(f"token {k} "))] for k in range(1000)]
    if shape == "segments":
        asyncio.run(write_interleaved(store, responses, batch=200))
        session = "s"
    else:
        asyncio.run(write_session(store, "big", responses))
        session = "big"
    firsts = []
    for _ in range(3):
        sink, err = Sink(), io.StringIO()
        t0 = time.perf_counter()
        assert cli.replay(uri_of(store), session, speed=50, out=sink, err=err) == 0, err.getvalue()
        assert len(sink.chunks) == 1000
        firsts.append(sink.chunks[0][0] - t0)
    print(f"\n{shape}: time to first byte {min(firsts) * 1000:.1f} ms (runs: "
          f"{', '.join(f'{f * 1000:.1f}' for f in firsts)})")
    # Typically a few ms; the best of three keeps a loaded machine from failing a wide margin.
    assert min(firsts) < 0.100
