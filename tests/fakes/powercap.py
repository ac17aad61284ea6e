"""A fake powercap tree, read through co2cb's real RAPL file code."""

from __future__ import annotations

import os
from pathlib import Path


class FakePowercap:
    """A powercap folder laid out as Linux lays it out, with counters a test can move.

    Zones: ``intel-rapl`` (the control type, no counter), ``intel-rapl:N`` package
    zones, ``intel-rapl:N:0`` core and ``intel-rapl:N:1`` dram subzones, and an
    ``intel-rapl-mmio:0`` twin of package 0 (as on recent Intel laptops).
    """

    def __init__(self, root: Path, packages: int = 1, dram: bool = True, max_range_uj: int = 262_143_328_850):
        self.root = root
        self.max_range_uj = max_range_uj
        (root / "intel-rapl").mkdir(parents=True)
        (root / "intel-rapl" / "enabled").write_text("1\n")
        self.zones: dict[str, Path] = {}
        for p in range(packages):
            self._zone(f"intel-rapl:{p}", f"package-{p}", f"package-{p}")
            self._zone(f"intel-rapl:{p}:0", "core", f"core-{p}")
            if dram:
                self._zone(f"intel-rapl:{p}:1", "dram", f"dram-{p}")
        self._zone("intel-rapl-mmio:0", "package-0", "mmio-package-0")

    def _zone(self, folder: str, name: str, key: str) -> None:
        path = self.root / folder
        path.mkdir()
        (path / "name").write_text(name + "\n")
        (path / "max_energy_range_uj").write_text(f"{self.max_range_uj}\n")
        (path / "energy_uj").write_text("1000000\n")
        self.zones[key] = path

    def set_uj(self, key: str, value: int) -> None:
        """Set a zone's counter (microjoules; wraps like the hardware), whole: a reader never sees it half-written."""
        write_whole(self.zones[key] / "energy_uj", f"{value % self.max_range_uj}\n")

    def get_uj(self, key: str) -> int:
        """A zone's counter now, microjoules."""
        return int((self.zones[key] / "energy_uj").read_text())

    def add_j(self, key: str, joules: float) -> None:
        """Advance a zone's counter by ``joules``."""
        self.set_uj(key, self.get_uj(key) + round(joules * 1e6))


def write_whole(path: Path, text: str) -> None:
    """Replace a file's text at once, as sysfs shows a value: a reader sees the old text or the new, never a part."""
    spare = path.with_name(path.name + ".next")
    spare.write_text(text)
    os.replace(spare, path)


class TickingCounter:
    """A RAPL package counter at a constant power that moves in ticks, as the hardware's does.

    A thread writes the counter every ``tick_s`` with the energy of the whole ticks since
    :meth:`start` (``watts * tick_s`` each); a reader between two writes sees the last one, so a
    short span between two reads holds zero or one tick, never the mean power. The thread's own
    lateness (a loaded machine) is kept: :attr:`max_lag_s` is the longest the counter stayed behind
    its schedule, so a test can tell the counter's error from co2cb's.

    Args:
        powercap: The tree whose zone ticks.
        watts: The constant power, watts.
        tick_s: Seconds between updates of the counter.
        zone: The zone that ticks (``package-0``: the CPU; ``dram-0``: RAM).
    """

    def __init__(self, powercap: FakePowercap, watts: float = 60.0, tick_s: float = 0.01, zone: str = "package-0"):
        import threading

        self.powercap, self.watts, self.tick_s, self.zone = powercap, float(watts), float(tick_s), zone
        self.max_lag_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-rapl-ticks", daemon=True)
        self._base_uj = powercap.get_uj(zone)
        self.t0 = 0.0

    def start(self) -> TickingCounter:
        """Start ticking from now (``time.perf_counter()``)."""
        import time

        self.t0 = time.perf_counter()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop ticking (the counter keeps its last value)."""
        self._stop.set()
        self._thread.join(5)

    def __enter__(self) -> TickingCounter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def energy_between(self, a: float, b: float) -> float:
        """The true energy between perf_counter times ``a`` and ``b``, joules (constant power)."""
        return self.watts * (max(b, self.t0) - max(a, self.t0))

    def _run(self) -> None:
        import time

        written = -1
        while not self._stop.wait(self.tick_s - (time.perf_counter() - self.t0) % self.tick_s):
            now = time.perf_counter() - self.t0
            ticks = int(now / self.tick_s)
            if ticks == written:
                continue
            if written >= 0:
                self.max_lag_s = max(self.max_lag_s, now - (written + 1) * self.tick_s)
            uj = (self._base_uj + round(ticks * self.tick_s * self.watts * 1e6)) % self.powercap.max_range_uj
            write_whole(self.powercap.zones[self.zone] / "energy_uj", f"{uj}\n")
            written = ticks
