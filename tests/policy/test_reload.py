"""Hot reload: new content is picked up, an invalid edit keeps the last good policy and marks the store stale."""
from __future__ import annotations

import asyncio

import pytest
import structlog

from gateway.policy import PolicyError, PolicyStore

GOOD_1 = "rules:\n  - name: first\n    action: deny\n"
GOOD_2 = "rules:\n  - name: second\n    action: allow\n"
BAD = "rules:\n  - name: broken\n    action: explode\n"


@pytest.fixture
def store(write, registry):
    write("10-rules.yaml", GOOD_1)
    errors: list[PolicyError] = []
    reloads: list = []
    s = PolicyStore(write.dir, registry, interval_s=0.02, on_error=errors.append, on_reload=reloads.append)
    s.errors, s.reloads = errors, reloads  # type: ignore[attr-defined]
    s.load()
    return s


def names(store) -> list[str]:
    return [r.name for r in store.policy.rules]


def test_initial_status(store, write):
    st = store.status()
    assert st["loaded"] and not st["stale"] and st["error"] is None
    assert st["files"] == [str(write.dir / "10-rules.yaml")]
    assert st["version"] == store.policy.version and st["loaded_at"] > 0


def test_unchanged_files_do_not_reload(store):
    before = store.policy
    assert store.check() is False and store.policy is before and store.reloads == []


def test_valid_change_swaps_the_policy(store, write):
    old = store.policy
    write("10-rules.yaml", GOOD_2)
    assert store.check() is True
    assert names(store) == ["second"] and store.policy is not old and store.reloads == [store.policy]
    assert names_of(old) == ["first"]  # a reference taken earlier never changes under its holder


def names_of(policy) -> list[str]:
    return [r.name for r in policy.rules]


def test_new_and_removed_files_count_as_changes(store, write):
    extra = write("20-more.yaml", "rules:\n  - name: more\n")
    assert store.check() and names(store) == ["first", "more"]
    extra.unlink()
    assert store.check() and names(store) == ["first"]


def test_invalid_edit_keeps_last_good_then_fix_clears(store, write):
    good = store.policy
    path = write("10-rules.yaml", BAD)
    with structlog.testing.capture_logs() as logs:
        assert store.check() is False
    assert store.policy is good and names(store) == ["first"]
    st = store.status()
    assert st["stale"] and st["version"] == good.version
    assert st["error"].startswith(f"{path}:3: rules[0].action: Input should be")
    assert len(store.errors) == 1 and store.errors[0].problems[0].line == 3
    (entry,) = [e for e in logs if e["event"] == "policy_reload_failed"]
    assert entry["log_level"] == "error" and entry["problems"][0].startswith(f"{path}:3:")
    assert entry["kept_version"] == good.version

    assert store.check() is False and len(store.errors) == 1  # the same broken content is not retried

    write("10-rules.yaml", GOOD_2)
    assert store.check() is True
    assert names(store) == ["second"] and not store.status()["stale"] and store.status()["error"] is None


def test_reverting_a_bad_edit_clears_stale(store, write):
    write("10-rules.yaml", BAD)
    store.check()
    assert store.stale
    write("10-rules.yaml", GOOD_1)
    assert store.check() is False and not store.stale and names(store) == ["first"]


def test_deleted_directory_keeps_policy_and_reports(store, write):
    for f in write.dir.iterdir():
        f.unlink()
    store.check()
    assert store.stale and "no policy files" in store.status()["error"] and names(store) == ["first"]
    store.check()
    assert len(store.errors) == 1  # not counted again while nothing changes
    write("10-rules.yaml", GOOD_1)
    store.check()
    assert not store.stale and names(store) == ["first"]


def test_initial_load_raises_on_invalid_policy(write, registry):
    write("10-rules.yaml", BAD)
    store = PolicyStore(write.dir, registry)
    with pytest.raises(PolicyError):
        store.load()
    assert store.status()["loaded"] is False
    with pytest.raises(RuntimeError):
        store.policy


async def test_watcher_task_reloads(store, write):
    store.start()
    try:
        write("10-rules.yaml", GOOD_2)
        await wait_for(lambda: names(store) == ["second"])
        write("10-rules.yaml", BAD)
        await wait_for(lambda: store.stale)
        assert names(store) == ["second"]
        write("10-rules.yaml", GOOD_1)
        await wait_for(lambda: not store.stale and names(store) == ["first"])
    finally:
        await store.stop()
    assert store._task is None


async def wait_for(cond, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.01)
