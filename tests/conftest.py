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
