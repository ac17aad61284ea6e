"""Everyday equivalents of an amount of CO2e, each factor with its published source.

All factors are the U.S. EPA's, from the "Greenhouse Gas Equivalencies Calculator - Calculations and
References" page, in its edition that uses eGRID2022 data (2024). The EPA publishes per mile and per
US gallon; the conversions to kilometres and litres are co2cb's (1 mile = 1.609344 km, 1 US gallon =
3.785411784 L). The EPA revises these figures from time to time: check the page before quoting them.
Equivalents are for scale only; they say nothing about where or when the CO2 was emitted.
"""

from __future__ import annotations

from dataclasses import dataclass

EPA_PAGE = "U.S. EPA, Greenhouse Gas Equivalencies Calculator - Calculations and References"
EPA_URL = "https://www.epa.gov/energy/greenhouse-gases-equivalencies-calculator-calculations-and-references"
EPA_EDITION = 2024
KM_PER_MILE = 1.609344
LITRES_PER_US_GALLON = 3.785411784
KG_PER_METRIC_TON = 1000.0


@dataclass(frozen=True)
class Equivalent:
    """One everyday equivalent.

    Attributes:
        label: What is counted (``"km driven by an average gasoline-powered passenger vehicle"``).
        kg_per_unit: kg CO2e per unit counted (the first of ``units``).
        published: The factor as the source publishes it.
        source: Who publishes it, and where.
        year: Edition of the source.
        url: Where to read it.
        conversion: How co2cb derived ``kg_per_unit`` from the published factor.
        units: ``(template, how many in one unit of kg_per_unit)``, largest unit first: an amount is
            written with the first template in whose unit it reaches 1 (``1.3 mm`` rather than ``1.3e-06 km``).
    """

    label: str
    kg_per_unit: float
    published: str
    source: str
    year: int
    url: str
    conversion: str
    units: tuple[tuple[str, float], ...]

    def amount(self, co2_kg: float) -> float:
        """How many units (the first of ``units``) ``co2_kg`` kg CO2e stands for."""
        return co2_kg / self.kg_per_unit

    def describe(self, co2_kg: float) -> str:
        """What ``co2_kg`` kg CO2e stands for, in words with a readable unit (``"1.3 mm driven by ..."``)."""
        amount = self.amount(co2_kg)
        template, per = next(((t, n) for t, n in self.units if amount * n >= 1), self.units[-1])
        value = amount * per
        return template.format(f"{value:,.0f}" if value >= 1000 else f"{value:.3g}")


CAR_KM = Equivalent(
    label="km driven by an average gasoline-powered passenger vehicle",
    kg_per_unit=3.93e-4 * KG_PER_METRIC_TON / KM_PER_MILE,
    published="3.93 x 10^-4 metric tons CO2e/mile (miles driven by the average gasoline-powered passenger vehicle)",
    source=EPA_PAGE,
    year=EPA_EDITION,
    url=EPA_URL,
    conversion="per mile / 1.609344 km per mile",
    units=tuple(
        (f"{{}} {u} driven by an average gasoline-powered passenger vehicle", n)
        for u, n in (("km", 1.0), ("m", 1e3), ("mm", 1e6), ("µm", 1e9))
    ),
)
SMARTPHONE_CHARGES = Equivalent(
    label="smartphones charged",
    kg_per_unit=1.24e-5 * KG_PER_METRIC_TON,
    published="1.24 x 10^-5 metric tons CO2/smartphone charged",
    source=EPA_PAGE,
    year=EPA_EDITION,
    url=EPA_URL,
    conversion="as published (U.S. grid electricity)",
    units=(
        ("{} smartphones fully charged", 1.0),
        ("{}% of one smartphone charge", 100.0),
        ("{} millionths of one smartphone charge", 1e6),
    ),
)
GASOLINE_LITRES = Equivalent(
    label="litres of gasoline burned",
    kg_per_unit=8.887e-3 * KG_PER_METRIC_TON / LITRES_PER_US_GALLON,
    published="8.887 x 10^-3 metric tons CO2/gallon of gasoline",
    source=EPA_PAGE,
    year=EPA_EDITION,
    url=EPA_URL,
    conversion="per US gallon / 3.785411784 litres per gallon",
    units=(("{} litres of gasoline burned", 1.0), ("{} mL of gasoline burned", 1e3), ("{} µL of gasoline burned", 1e6)),
)
EQUIVALENTS: tuple[Equivalent, ...] = (CAR_KM, SMARTPHONE_CHARGES, GASOLINE_LITRES)


def equivalents(co2_kg: float) -> list[tuple[Equivalent, str]]:
    """Each equivalent of :data:`EQUIVALENTS` with the amount ``co2_kg`` kg CO2e stands for, in words."""
    return [(e, e.describe(co2_kg)) for e in EQUIVALENTS]
