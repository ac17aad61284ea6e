"""A fake powercap tree, read through co2cb's real RAPL file code."""

from __future__ import annotations

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
        """Set a zone's counter (microjoules; wraps like the hardware)."""
        (self.zones[key] / "energy_uj").write_text(f"{value % self.max_range_uj}\n")

    def get_uj(self, key: str) -> int:
        """A zone's counter now, microjoules."""
        return int((self.zones[key] / "energy_uj").read_text())

    def add_j(self, key: str, joules: float) -> None:
        """Advance a zone's counter by ``joules``."""
        self.set_uj(key, self.get_uj(key) + round(joules * 1e6))
