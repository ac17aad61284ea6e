"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.powercap import FakePowercap


@pytest.fixture
def powercap(tmp_path: Path) -> FakePowercap:
    """A one-package fake powercap tree with DRAM."""
    return FakePowercap(tmp_path / "powercap")
