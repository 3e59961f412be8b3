"""Fixtures: the fake backend on a real loopback port, started in the test's event loop."""
from __future__ import annotations

import pytest

from gateway.devtools.backend import BackendOptions, run_backend


@pytest.fixture
async def backend_url():
    runner, url = await run_backend(options=BackendOptions(chunks=12, test_controls=True))
    try:
        yield url
    finally:
        await runner.cleanup()
