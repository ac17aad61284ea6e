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


@dataclass(frozen=True)
class Resolution:
    """The region chosen and why.

    Attributes:
        code: Region code to pass to :func:`co2cb.intensity.database.lookup`.
        reason: Why; a guess says so and how to set the region.
        guessed: True for the time-zone and world-average steps.
        step: ``"argument"``, ``"env"``, ``"cloud-env"``, ``"metadata"``, ``"timezone"`` or ``"world"``.
    """

    code: str
    reason: str
    guessed: bool
    step: str


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
        return Resolution(value, f"{ENV_VAR}={value}", False, "env")

    passed_over: list[str] = []
    for var, provider in CLOUD_ENV_VARS:
        value = env.get(var, "").strip()
        if not value:
            continue
        code = _cloud_code(provider, value)
        if is_known(code):
            return Resolution(code, f"{var}={value} (cloud region from the environment) -> {code}", False, "cloud-env")
        passed_over.append(f"{var}={value} is not a region in the database")

    if metadata:
        reported = query_cloud_metadata(metadata_endpoint, metadata_timeout_s)
        if reported and is_known(reported):
            return Resolution(
                reported, f"the cloud metadata service at {metadata_endpoint} reports {reported}", False, "metadata"
            )
        passed_over.append(
            f"the metadata service reported {reported}, not in the database"
            if reported
            else "no cloud metadata service answered"
        )

    found = machine_timezone(env, timezone_file=timezone_file, localtime=localtime)
    if found is None:
        passed_over.append("no time zone found")
    else:
        zone, origin = found
        country = timezone_country(zone, load_zone_countries(zoneinfo_dir))
        if country and is_known(country):
            note = f" ({'; '.join(passed_over)})" if passed_over else ""
            reason = f"guessed from the machine's time zone {zone} (from {origin}) -> {country}{note}; "
            return Resolution(country, reason + _how_to_set(country), True, "timezone")
        passed_over.append(f"time zone {zone} is not one country's")
    reason = (
        f"no region argument, {ENV_VAR}, cloud region or country time zone ({'; '.join(passed_over)}), "
        f"so the world average ({WORLD}) is used; " + _how_to_set(None)
    )
    return Resolution(WORLD, reason, True, "world")
