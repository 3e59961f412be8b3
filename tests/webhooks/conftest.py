import pytest

from tests.webhooks.receiver import make_secret


@pytest.fixture
def secret() -> str:
    return make_secret()


class DeadLetters:
    """The dead-letter callback as the app would pass it, recording its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, str, str, int]] = []

    async def __call__(self, event, endpoint_url: str, reason: str, attempts: int) -> None:
        self.calls.append((event, endpoint_url, reason, attempts))


@pytest.fixture
def dead_letters() -> DeadLetters:
    return DeadLetters()
