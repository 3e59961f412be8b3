import pytest

from gateway.masking.triggers import hyperscan_available

ENGINES = ["pure", "python", pytest.param("hyperscan", marks=pytest.mark.skipif(
    not hyperscan_available(), reason="hyperscan not installed"))]


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    """Every test taking `engine` runs once per scanning engine (the prefilters must not change results)."""
    return request.param
