"""The `seaweed` fixture: one real SeaweedFS (`weed mini`) for the whole test session.

Load it with ``pytest_plugins = ["tests.audit.conftest_s3"]`` at the top of a test module (registered once, so
every module that names it shares the same server). Tests that stop the server must `start()` it again before
they finish (use `try/finally`), since later tests share it.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.audit.seaweed import SeaweedInfo, WeedUnavailable, running_seaweed


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedInfo]:
    """A running SeaweedFS on loopback: `.endpoint`, `.access_key`, `.secret_key`, `.bucket`, `.stop()`,
    `.start()`, `.client()`. Skips the test only when the `weed` binary cannot run here."""
    try:
        cm = running_seaweed()
        info = cm.__enter__()
    except WeedUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield info
    finally:
        cm.__exit__(None, None, None)
