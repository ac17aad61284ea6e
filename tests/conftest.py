"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes import (
    FakeAmdGpu,
    FakeAmdSmi,
    FakeGpu,
    FakePynvml,
    FakeSoc,
    MakeFake,
    install_fake_amdsmi,
    install_fake_apple,
    install_fake_pynvml,
)
from tests.fakes.powercap import FakePowercap


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> MakeFake:
    """``nvml(gpu, ..., init_error=None, cuda_visible_devices=None)`` installs a fake pynvml."""

    def make(*gpus: FakeGpu, **kwargs: Any) -> FakePynvml:
        return install_fake_pynvml(monkeypatch, gpus, **kwargs)

    return make


@pytest.fixture
def amd(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``amd(gpu, ..., version="7.0.2", init_error=None, hip_visible_devices=...)`` installs a fake amdsmi."""

    def make(*gpus: FakeAmdGpu, **kwargs: Any) -> FakeAmdSmi:
        return install_fake_amdsmi(monkeypatch, gpus, **kwargs)

    return make


@pytest.fixture
def apple(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """``apple(FakeSoc(...), chip="Apple M2 Max")`` makes this a Mac with a fake zeus_apple_silicon."""

    def make(soc: FakeSoc | None = None, chip: str | None = "Apple M2 Max") -> FakeSoc:
        return install_fake_apple(monkeypatch, soc or FakeSoc(), tmp_path / "apple-bin", chip)

    return make


@pytest.fixture
def powercap(tmp_path: Path) -> FakePowercap:
    """A one-package fake powercap tree with DRAM."""
    return FakePowercap(tmp_path / "powercap")


@pytest.fixture(scope="session")
def recorded_runs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Real runs of every kind (Lightning, Hugging Face, `co2cb run`, Tracker, a killed one), made once per session;
    see :mod:`tests.recorded_runs`."""
    from tests.recorded_runs import make_runs

    return make_runs(tmp_path_factory.mktemp("recorded"))
