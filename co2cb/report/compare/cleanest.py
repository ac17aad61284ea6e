"""What a recorded run would have emitted on the cleanest grids open to it.

The set searched is the run's cloud provider's regions when the record names a cloud region
(``aws:``, ``gcp:``, ``azure:``), else the regions of all three providers: places where the same
compute can actually be rented (the cleanest national grids include small hydro-only systems, such
as the Central African Republic, which tell a user nothing they can act on). Only figures of the run's own
basis are searched (lifecycle or operational: Google's operational region figures against a lifecycle
record would read as several times cleaner than they are). The recomputation itself is
:func:`co2cb.planning.whatif.whatif`: the run's energy x its PUE x each grid's average intensity.
"""

from __future__ import annotations

from dataclasses import dataclass

from co2cb.intensity import database
from co2cb.planning.whatif import WhatIf, WhatIfError, whatif
from co2cb.records.reader import RecordedRun

PROVIDER_NAMES = {"aws": "AWS", "gcp": "Google Cloud", "azure": "Azure"}
HOW_MANY = 5


@dataclass(frozen=True)
class CleanestRegions:
    """The run's CO2 on the cleanest grids of its provider or of all three providers.

    Attributes:
        scope: The set searched, in words (``"AWS regions"``, ``"cloud regions (AWS, Google Cloud, Azure)"``).
        why: Why that set.
        result: The what-if (None when the run has no energy to recompute).
        problem: Why there is no result ("" otherwise).
    """

    scope: str
    why: str
    result: WhatIf | None
    problem: str = ""


def cleanest_codes(provider: str | None, n: int = HOW_MANY, basis: str = "") -> list[str]:
    """Codes of the ``n`` lowest-intensity grids among ``provider``'s regions, or every provider's if None.

    One region per grid: two regions served by the same grid count once. ``basis``: only figures of that
    basis (``"lifecycle"``, ``"operational"``); ``""``: any.
    """
    prefixes = tuple(f"{p}:" for p in ([provider] if provider else PROVIDER_NAMES))
    entries = [
        e
        for e in database.database().entries()
        if e.code.lower().startswith(prefixes) and e.kind == "average" and (not basis or e.basis == basis)
    ]
    codes: list[str] = []
    grids: set[str] = set()
    for entry in sorted(entries, key=lambda e: (e.g_per_kwh, e.code)):
        grid = entry.alias_of or entry.code
        if grid not in grids:
            grids.add(grid)
            codes.append(entry.code)
    return codes[:n]


def cleanest_regions(run: RecordedRun, n: int = HOW_MANY) -> CleanestRegions:
    """The run's CO2 had it drawn the same energy (same PUE) from the ``n`` cleanest grids of its set."""
    cloud = run.provenance.cloud_region
    provider = cloud.split(":", 1)[0] if cloud else None
    basis = str(run.provenance.intensity.get("basis") or "")
    if provider:
        scope = f"{PROVIDER_NAMES[provider]} regions"
        why = f"the run's region {cloud} belongs to {PROVIDER_NAMES[provider]}"
    else:
        region = run.provenance.intensity.get("region", "?")
        scope = "cloud regions (AWS, Google Cloud, Azure)"
        why = (
            f"the run's region ({region}) is not a cloud region, so the regions where the same compute could be "
            "rented are searched"
        )
    if basis:
        why += f"; only {basis} figures, as the run's"
    try:
        result = whatif(run, cleanest_codes(provider, n, basis))
    except WhatIfError as exc:
        return CleanestRegions(scope, why, None, str(exc))
    return CleanestRegions(scope, why, result)
