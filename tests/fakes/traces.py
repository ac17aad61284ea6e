"""Power traces with known integrals, shared by the fake hardware libraries.

A fake device draws power from a function of ``time.perf_counter()`` (watts); its
energy counter is the exact integral of that function (closed form for
:class:`Sine` and :class:`Constant`, Gauss-Legendre quadrature otherwise), so tests
can compute the truth for any time span.
"""

from __future__ import annotations

import math
from collections.abc import Callable


class Constant:
    """A constant power, watts."""

    def __init__(self, watts: float) -> None:
        self.watts = float(watts)

    def __call__(self, t: float) -> float:
        return self.watts

    def integral(self, a: float, b: float) -> float:
        """Joules between perf_counter times ``a`` and ``b``."""
        return self.watts * (b - a)


class Sine:
    """``mean + amplitude * sin(2 pi (t - t0) / period)`` watts, ``t`` in perf_counter seconds."""

    def __init__(self, mean: float, amplitude: float, period: float, t0: float = 0.0) -> None:
        self.mean, self.amplitude, self.period, self.t0 = float(mean), float(amplitude), float(period), float(t0)

    def __call__(self, t: float) -> float:
        return self.mean + self.amplitude * math.sin(2 * math.pi * (t - self.t0) / self.period)

    @property
    def max_slope(self) -> float:
        """The largest ``|P'|``, watts per second."""
        return self.amplitude * 2 * math.pi / self.period

    @property
    def max_curvature(self) -> float:
        """The largest ``|P''|``, watts per second squared."""
        return self.amplitude * (2 * math.pi / self.period) ** 2

    def integral(self, a: float, b: float) -> float:
        """Joules between perf_counter times ``a`` and ``b`` (closed form)."""
        w = 2 * math.pi / self.period
        return self.mean * (b - a) - self.amplitude / w * (math.cos(w * (b - self.t0)) - math.cos(w * (a - self.t0)))


# 5-point Gauss-Legendre nodes and weights on [-1, 1]: exact for polynomials up to degree 9.
_GL_NODES = (-0.9061798459386640, -0.5384693101056831, 0.0, 0.5384693101056831, 0.9061798459386640)
_GL_WEIGHTS = (0.2369268850561891, 0.4786286704993665, 0.5688888888888889, 0.4786286704993665, 0.2369268850561891)


def integrate(fn: Callable[[float], float], a: float, b: float, step: float = 0.005) -> float:
    """Integral of a smooth ``fn`` over ``[a, b]`` by composite Gauss-Legendre (pieces of at most ``step`` s)."""
    if b == a:
        return 0.0
    sign = 1.0
    if b < a:
        a, b, sign = b, a, -1.0
    pieces = max(1, math.ceil((b - a) / step))
    h = (b - a) / pieces
    total = 0.0
    for k in range(pieces):
        mid = a + (k + 0.5) * h
        total += sum(w * fn(mid + x * h / 2) for x, w in zip(_GL_NODES, _GL_WEIGHTS)) * h / 2
    return sign * total
