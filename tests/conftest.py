import pytest

from tests.support import ThreadedIssuer, gateway_config, start_backend, start_gateway


@pytest.fixture(scope="session")
def issuer():
    iss = ThreadedIssuer()
    yield iss
    iss.close()


@pytest.fixture(scope="session")
def backend():
    proc, url = start_backend()
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def gateway(issuer, backend):
    """A gateway process with default settings in front of the test backend."""
    proc, url = start_gateway(gateway_config(issuer.url, backend))
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def redis_server():
    """A private redis-server on a free loopback port for the whole test session (see tests/redis_server.py).
    Tests that stop or kill it must start it again before they finish."""
    from tests.redis_server import running_redis

    with running_redis() as server:
        yield server


@pytest.fixture
async def redis_url(redis_server):
    """URL of the session's private Redis, flushed before each test."""
    import redis.asyncio as aioredis

    redis_server.start()  # a previous test may have stopped it
    client = aioredis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()
    return redis_server.url
