"""Power usage effectiveness (PUE): the data centre's total energy over its IT energy.

co2cb multiplies the measured (IT) energy by the PUE before applying the carbon
intensity. The PUE used is, in order:

1. the user's value (``Tracker(pue=...)``, 1.0 to 3.0);
2. when the resolved region is a cloud region (``aws:``, ``gcp:``, ``azure:``, or an
   unprefixed name only one provider uses), that provider's published fleet-wide
   figure (:data:`CLOUD_PUE`, with its source and year);
3. 1.0 otherwise (on premises, or a machine whose facility overhead is unknown:
   co2cb then counts the IT energy only, and says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIN_PUE = 1.0
MAX_PUE = 3.0


@dataclass(frozen=True)
class PueInfo:
    """Which PUE is used, where it comes from and why.

    Attributes:
        value: The PUE (dimensionless, >= 1.0).
        source: Publisher of the figure, or ``"given by the user"`` / ``"co2cb default"``.
        year: Year the figure stands for, or None.
        reason: Why this figure was chosen.
        url: Where the published figure can be read, or None.
    """

    value: float
    source: str
    year: int | None
    reason: str
    url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (every field is a plain value)."""
        return dict(vars(self))


@dataclass(frozen=True)
class CloudPue:
    """A cloud provider's published PUE.

    Attributes:
        provider: ``"aws"``, ``"gcp"`` or ``"azure"``.
        value: The PUE.
        year: Year the figure stands for.
        source: Publisher and document.
        url: Where it is published.
        note: What the figure is (fleet average, design target...).
    """

    provider: str
    value: float
    year: int
    source: str
    url: str
    note: str


#: Published PUE per cloud provider (the latest fleet-wide figure found; checked 2026).
CLOUD_PUE: dict[str, CloudPue] = {
    "gcp": CloudPue(
        "gcp",
        1.09,
        2024,
        "Google 2025 Environmental Report",
        "https://www.google.com/about/datacenters/efficiency/",
        "fleet-wide average annual (trailing twelve-month) PUE of Google-owned data centres in 2024",
    ),
    "aws": CloudPue(
        "aws",
        1.15,
        2024,
        "Amazon 2024 Sustainability Report (AWS)",
        "https://aws.amazon.com/sustainability/data-centers/",
        "global PUE of AWS data centres in 2024 (Amazon later gave 1.14 for 2025)",
    ),
    "azure": CloudPue(
        "azure",
        1.18,
        2024,
        "Microsoft datacenter efficiency disclosures (datacenters.microsoft.com), as reported December 2024",
        "https://datacenters.microsoft.com/sustainability/efficiency/",
        "global operating average of Microsoft's datacenter portfolio; its newest generation's design PUE is 1.12",
    ),
}

PROVIDER_NAMES = {"aws": "AWS", "gcp": "Google Cloud", "azure": "Azure"}


def cloud_provider(region: str | None) -> str | None:
    """The cloud provider of a region code, or None.

    ``aws:``/``gcp:``/``azure:`` prefixes count, and an unprefixed name that exactly one
    provider's regions use (``eu-west-3`` -> AWS) when it is in the database.
    """
    if not region:
        return None
    code = region.strip()
    prefix, sep, rest = code.partition(":")
    if sep:
        p = prefix.strip().lower()
        return p if p in CLOUD_PUE and rest.strip() else None
    key = code.upper()
    if len(key) <= 3 or key == "WORLD":  # a country code, never a cloud region name
        return None
    from co2cb.intensity.database import database

    db = database()
    hits = [p for p in CLOUD_PUE if f"{p.upper()}:{key}" in db.rows["gcp"] or f"{p.upper()}:{key}" in db.aliases]
    return hits[0] if len(hits) == 1 else None


def check_pue(value: object) -> float:
    """A user's PUE, checked.

    Raises:
        ValueError: Not a number from 1.0 to 3.0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not MIN_PUE <= value <= MAX_PUE:
        raise ValueError(f"pue={value!r} is not valid: give the data centre's PUE, between 1.0 and 3.0")
    return float(value)


def resolve_pue(pue: float | None, region: str | None) -> PueInfo:
    """The PUE for a run.

    Args:
        pue: The user's value; wins when given.
        region: The resolved region code (``"aws:eu-west-3"``, ``"FR"``...), or None.

    Raises:
        ValueError: ``pue`` is out of range.
    """
    if pue is not None:
        return PueInfo(check_pue(pue), "given by the user", None, "pue= argument")
    provider = cloud_provider(region)
    if provider is not None:
        c = CLOUD_PUE[provider]
        return PueInfo(
            c.value,
            c.source,
            c.year,
            f"{region} is a {PROVIDER_NAMES[provider]} region: {c.note}; pass pue= to override",
            c.url,
        )
    where = f"{region} is not a cloud region" if region else "no region"
    return PueInfo(
        1.0,
        "co2cb default",
        None,
        f"{where} (aws:, gcp:, azure:), so on-premises 1.0 is used (IT energy only); pass pue= for your facility",
    )
