"""Which region's grid the machine draws from, found offline.

:func:`resolve_region` tries, in order:

1. the explicit ``region`` argument;
2. the ``CO2CB_REGION`` environment variable;
3. a cloud region from the environment: ``AWS_REGION`` / ``AWS_DEFAULT_REGION``
   (``aws:<r>``); ``GOOGLE_CLOUD_REGION`` / ``CLOUDSDK_COMPUTE_REGION`` /
   ``FUNCTION_REGION`` (``gcp:<r>``); ``REGION_NAME`` (set by Azure App Service
   and Functions) / ``AZURE_DEFAULTS_LOCATION`` (Azure CLI default location)
   (``azure:<r>``);
4. only when ``metadata=True``: the cloud metadata service (see
   :func:`~co2cb.intensity.metadata.query_cloud_metadata`);
5. the machine's time zone, mapped to its country (a guess);
6. the world average (a guess).

A cloud variable is a strong hint, not a fact (a container image may carry another region's
variables): the reason names the variable, and every other hint that disagreed and lost (another
cloud variable, the time zone's country). The structured form (:meth:`Resolution.as_record`) goes into
the run record, so that what a statement says about the region comes from fields, not from words.
By default no network connection is opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from co2cb.intensity.metadata import DEFAULT_ENDPOINT, query_cloud_metadata
from co2cb.intensity.timezones import (
    ETC_LOCALTIME,
    ETC_TIMEZONE,
    load_zone_countries,
    machine_timezone,
    timezone_country,
)

__all__ = ["CLOUD_ENV_VARS", "ENV_VAR", "WORLD", "Resolution", "query_cloud_metadata", "resolve_region"]

ENV_VAR = "CO2CB_REGION"
WORLD = "WORLD"

#: Environment variable -> cloud provider, in the order they are read.
CLOUD_ENV_VARS: tuple[tuple[str, str], ...] = (
    ("AWS_REGION", "aws"),
    ("AWS_DEFAULT_REGION", "aws"),
    ("GOOGLE_CLOUD_REGION", "gcp"),
    ("CLOUDSDK_COMPUTE_REGION", "gcp"),
    ("FUNCTION_REGION", "gcp"),
    ("REGION_NAME", "azure"),  # Azure App Service / Functions, read-only; may be "West Europe"
    ("AZURE_DEFAULTS_LOCATION", "azure"),  # Azure CLI's [defaults] location as an environment variable
)


#: How sure each step is: given by the user, a strong hint from the environment, reported by the cloud, a guess.
CONFIDENCE = {
    "argument": "given",
    "env": "given",
    "cloud-env": "strong hint",
    "metadata": "reported",
    "timezone": "guess",
    "world": "guess",
}


@dataclass(frozen=True)
class Resolution:
    """The region chosen and why.

    Attributes:
        code: Region code to pass to :func:`co2cb.intensity.database.lookup`.
        reason: Why, in words; a guess or a hint says so and how to set the region.
        guessed: True for the time-zone and world-average steps.
        step: ``"argument"``, ``"env"``, ``"cloud-env"``, ``"metadata"``, ``"timezone"`` or ``"world"``.
        source: What gave it: ``CO2CB_REGION``, the cloud variable (``AWS_REGION``), the metadata
            endpoint, the time zone and its file; ``""`` for an argument or the world average.
        overruled: The other hints that disagreed and lost (``"GOOGLE_CLOUD_REGION=europe-west1 -> gcp:europe-west1"``,
            ``"time zone Europe/Berlin -> DE"``).
    """

    code: str
    reason: str
    guessed: bool
    step: str
    source: str = ""
    overruled: tuple[str, ...] = ()

    @property
    def confidence(self) -> str:
        """``"given"``, ``"strong hint"``, ``"reported"`` or ``"guess"``."""
        return CONFIDENCE.get(self.step, "guess")

    def as_record(self) -> dict[str, Any]:
        """The structured reason, for the run record's header (``region``)."""
        return {
            "code": self.code,
            "step": self.step,
            "confidence": self.confidence,
            "guessed": self.guessed,
            "source": self.source,
            "overruled": list(self.overruled),
            "reason": self.reason,
        }


def _cloud_code(provider: str, value: str) -> str:
    region = value.strip().lower()
    if provider == "azure":
        region = region.replace(" ", "")  # Azure's rule: "West Europe" -> "westeurope"
    return f"{provider}:{region}"


def _how_to_set(country: str | None) -> str:
    if country:
        return (
            f'this is a guess: set {ENV_VAR}={country} or pass region="{country}" to confirm it, or pick a finer '
            f"grid (`co2cb regions {country}` lists them, e.g. US-CA, aws:eu-west-3)"
        )
    return (
        f'this is a guess: give your grid\'s code, e.g. {ENV_VAR}=FR or region="FR" '
        "(`co2cb regions [QUERY]` lists the codes)"
    )


def _default_known(code: str) -> bool:
    from co2cb.intensity.database import is_known

    return is_known(code)


def resolve_region(
    region: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    metadata: bool = False,
    metadata_endpoint: str = DEFAULT_ENDPOINT,
    metadata_timeout_s: float = 1.0,
    timezone_file: Path = ETC_TIMEZONE,
    localtime: Path = ETC_LOCALTIME,
    zoneinfo_dir: Path | Any | None = None,
    known: Callable[[str], bool] | None = None,
) -> Resolution:
    """Find the region whose grid intensity applies, without the network by default.

    Args:
        region: Region code given by the user; wins when set.
        environ: Environment to read (default: ``os.environ``).
        metadata: Also ask the cloud metadata service (opens a connection).
        metadata_endpoint: Base URL of the metadata service.
        metadata_timeout_s: Timeout of each metadata request, in seconds.
        timezone_file: File holding the zone name (``/etc/timezone``).
        localtime: Symlink to the zone file (``/etc/localtime``).
        zoneinfo_dir: Folder(s) with ``zone.tab`` (default: ``tzdata`` package, then
            ``/usr/share/zoneinfo``).
        known: Whether a code is in the database (default:
            :func:`co2cb.intensity.database.is_known`); cloud regions and countries
            it does not know are passed over.

    Returns:
        The region code and the reason. An explicit region or ``CO2CB_REGION`` is
        returned as given: an unknown code fails at lookup, loudly.
    """
    env = os.environ if environ is None else environ
    is_known = known or _default_known
    if region is not None and region.strip():
        return Resolution(region.strip(), f"region {region.strip()!r} given as an argument", False, "argument")
    value = env.get(ENV_VAR, "").strip()
    if value:
        return Resolution(value, f"{ENV_VAR}={value}", False, "env", ENV_VAR)

    zone_found: list[tuple[str, str] | None] = []

    def zone() -> tuple[str, str] | None:  # read once, and only when a step needs it
        if not zone_found:
            zone_found.append(machine_timezone(env, timezone_file=timezone_file, localtime=localtime))
        return zone_found[0]

    passed_over: list[str] = []
    hints: list[tuple[str, str]] = []  # (variable=value, code) of every cloud variable that names a known region
    for var, provider in CLOUD_ENV_VARS:
        value = env.get(var, "").strip()
        if not value:
            continue
        code = _cloud_code(provider, value)
        if is_known(code):
            hints.append((f"{var}={value}", code))
        else:
            passed_over.append(f"{var}={value} is not a region in the database")
    if hints:
        (first, code), var = hints[0], hints[0][0].split("=", 1)[0]
        lost = [f"{hint} -> {other}" for hint, other in hints[1:] if other != code]
        lost += _timezone_disagrees(code, zone(), zoneinfo_dir)
        reason = (
            f"{first} (cloud region from the environment) -> {code}; a strong hint, not a fact: set {ENV_VAR} "
            f'or pass region="{code}" to confirm it'
        )
        if lost:
            reason += f"; other hints disagree and were not used: {'; '.join(lost)}"
        return Resolution(code, reason, False, "cloud-env", var, tuple(lost))

    if metadata:
        reported = query_cloud_metadata(metadata_endpoint, metadata_timeout_s)
        if reported and is_known(reported):
            lost = _timezone_disagrees(reported, zone(), zoneinfo_dir)
            reason = f"the cloud metadata service at {metadata_endpoint} reports {reported}"
            if lost:
                reason += f"; other hints disagree and were not used: {'; '.join(lost)}"
            return Resolution(reported, reason, False, "metadata", metadata_endpoint, tuple(lost))
        passed_over.append(
            f"the metadata service reported {reported}, not in the database"
            if reported
            else "no cloud metadata service answered"
        )

    found = zone()
    if found is None:
        passed_over.append("no time zone found")
    else:
        name, origin = found
        country = timezone_country(name, load_zone_countries(zoneinfo_dir))
        if country and is_known(country):
            note = f" ({'; '.join(passed_over)})" if passed_over else ""
            reason = f"guessed from the machine's time zone {name} (from {origin}) -> {country}{note}; "
            return Resolution(country, reason + _how_to_set(country), True, "timezone", f"time zone {name} ({origin})")
        passed_over.append(f"time zone {name} is not one country's")
    reason = (
        f"no region argument, {ENV_VAR}, cloud region or country time zone ({'; '.join(passed_over)}), "
        f"so the world average ({WORLD}) is used; " + _how_to_set(None)
    )
    return Resolution(WORLD, reason, True, "world")


def _timezone_disagrees(code: str, zone: tuple[str, str] | None, zoneinfo_dir: Path | Any | None) -> list[str]:
    """``["time zone Europe/Berlin -> DE"]`` when the machine's time zone names another country than ``code``'s."""
    if zone is None:
        return []
    country = timezone_country(zone[0], load_zone_countries(zoneinfo_dir))
    where = region_country(code)
    if country is None or where is None or country.upper() == where.upper():
        return []
    return [f"time zone {zone[0]} -> {country}"]


def region_country(code: str) -> str | None:
    """The country (ISO 3166-1 alpha-2) of the grid that serves a region code, or None when not known."""
    from co2cb.intensity.database import UnknownRegionError, database

    try:
        found = database().lookup(code)
    except UnknownRegionError:
        return None
    return database().country_of.get(found.row.code)
