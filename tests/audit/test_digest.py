import pytest

from gateway.audit import layout
from gateway.audit.canonical import decode
from gateway.audit.chain import MemorySessionHeads, StreamChain, write_records
from gateway.audit.digest import (
    DIGEST_FIELDS,
    DigestWriter,
    check_signature,
    generate_key,
    key_id,
    key_ring,
    load_or_generate_private_key,
    load_private_key,
    load_public_key,
    public_key_pem,
    save_private_key,
)
from gateway.audit.store import MemoryStore
from tests.audit.logbuilder import body


def test_key_files(tmp_path):
    path = str(tmp_path / "audit.pem")
    key = load_or_generate_private_key(path)
    assert (tmp_path / "audit.pem").stat().st_mode & 0o777 == 0o600
    assert key_id(load_or_generate_private_key(path).public_key()) == key_id(key.public_key())
    assert len(key_id(key.public_key())) == 16
    (tmp_path / "audit.pub").write_bytes(public_key_pem(key.public_key()))
    assert key_id(load_public_key(str(tmp_path / "audit.pub"))) == key_id(key.public_key())
    assert key_id(load_public_key((tmp_path / "audit.pem").read_bytes())) == key_id(key.public_key())
    with pytest.raises(FileExistsError):
        save_private_key(generate_key(), path)
    assert key_id(load_private_key(path).public_key()) == key_id(key.public_key())


async def test_digests_chain_and_verify():
    store, key = MemoryStore(), generate_key()
    chain = StreamChain(MemorySessionHeads())
    writer = DigestWriter(chain, key)
    empty = await writer.publish(store)
    assert (empty["digest_seq"], empty["last_seq"], empty["last_hash"]) == (1, 0, None)
    await write_records(store, [await chain.append(body(i, f"s{i % 2}")) for i in range(3)])  # one segment
    assert await store.list(layout.segment_prefix(chain.stream_id)) == [layout.segment_key(chain.stream_id, 1, 3)]
    d2 = await writer.publish(store)
    assert d2.keys() == DIGEST_FIELDS
    assert (d2["digest_seq"], d2["last_seq"], d2["last_hash"]) == (2, 3, chain.last_hash)
    assert d2["prev_digest_signature"] == empty["signature"]
    assert d2["sessions_touched"] == {"s0": [2, chain.last_hash], "s1": [1, d2["sessions_touched"]["s1"][1]]}
    assert decode(await store.get(layout.digest_key(chain.stream_id, 2))) == d2
    ring = key_ring([key.public_key()])
    assert check_signature(d2, ring) is None
    assert check_signature({**d2, "last_seq": 4}, ring) == "bad_signature"
    assert check_signature(d2, key_ring([generate_key().public_key()])) == "unknown_key"
    assert (await writer.publish(store))["sessions_touched"] == {}


async def test_failed_publish_keeps_touched_sessions():
    class Down(MemoryStore):
        async def put_if_absent(self, key, data):
            raise OSError("down")

    chain = StreamChain(MemorySessionHeads())
    writer = DigestWriter(chain, generate_key())
    await chain.append(body(1, "s"))
    with pytest.raises(OSError):
        await writer.publish(Down())
    assert writer.digest_seq == 0 and "s" in chain.touched
    assert (await writer.publish(MemoryStore()))["sessions_touched"]["s"][0] == 1
