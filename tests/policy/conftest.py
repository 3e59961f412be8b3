from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.policy.fakes import FakeRegistry


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def write(tmp_path: Path):
    """write(name, yaml_text) -> path of a file in a fresh policy directory (text is dedented)."""
    d = tmp_path / "policies"
    d.mkdir()

    def _write(name: str, text: str) -> Path:
        p = d / name
        p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return p

    _write.dir = d  # type: ignore[attr-defined]
    return _write
