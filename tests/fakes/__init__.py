"""Fakes of hardware libraries, for testing co2cb's real code paths without the hardware.

Tests use the ``nvml`` fixture of ``tests/conftest.py``: ``nvml(FakeGpu(...), ...)`` installs a fake
pynvml (see :func:`install_fake_pynvml`) and returns it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from .fake_pynvml import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    Call,
    Constant,
    FakeGpu,
    FakePynvml,
    Fault,
    Sine,
    integrate,
    make_gpus,
)

__all__ = [
    "NVML_ERROR_DRIVER_NOT_LOADED",
    "NVML_ERROR_GPU_IS_LOST",
    "NVML_ERROR_LIBRARY_NOT_FOUND",
    "NVML_ERROR_NOT_SUPPORTED",
    "Call",
    "Constant",
    "FakeGpu",
    "FakePynvml",
    "Fault",
    "Sine",
    "MakeFake",
    "install_fake_pynvml",
    "integrate",
    "make_gpus",
    "perf_bounds",
]


def install_fake_pynvml(
    monkeypatch: pytest.MonkeyPatch,
    gpus: Sequence[FakeGpu] = (),
    *,
    init_error: int | None = None,
    cuda_visible_devices: str | None = None,
) -> FakePynvml:
    """Put a :class:`FakePynvml` in ``sys.modules["pynvml"]`` for one test.

    ``CUDA_VISIBLE_DEVICES`` is set to ``cuda_visible_devices``, or removed when None,
    so the machine's own setting never leaks into a test.
    """
    fake = FakePynvml(gpus, init_error=init_error)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    if cuda_visible_devices is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", cuda_visible_devices)
    return fake


MakeFake = Callable[..., FakePynvml]
"""The ``nvml`` fixture's type: ``nvml(gpu0, gpu1, init_error=..., cuda_visible_devices=...)``."""


def perf_bounds(tracker: Any, result: Any) -> tuple[float, float]:
    """A window result's start and end as ``time.perf_counter()`` seconds.

    Results carry wall-clock bounds, ``_wall0 + (t_ns - _perf0) * 1e-9``; this undoes
    that mapping with the tracker's own anchors (exact to well under a microsecond).
    """
    perf0_s = tracker._perf0 * 1e-9
    return (
        perf0_s + (result.start_unix_s - tracker._wall0),
        perf0_s + (result.end_unix_s - tracker._wall0),
    )
