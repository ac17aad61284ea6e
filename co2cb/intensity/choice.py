"""Pick the tracker's carbon-intensity sources and PUE from its options and the environment.

The choice is printed once per process to stderr when a tracker starts
(:func:`announce`); ``CO2CB_QUIET=1`` silences it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, Union

from co2cb.intensity.base import FixedIntensity, IntensityInfo, IntensitySource, plausibility
from co2cb.intensity.pue import PueInfo, resolve_pue

if TYPE_CHECKING:
    from co2cb.intensity.region import Resolution

log = logging.getLogger(__name__)

QUIET_ENV = "CO2CB_QUIET"
LIVE_PROVIDERS = ("electricitymaps",)
MARGINAL_TABLE = "table"

IntensityOption = Union[float, IntensitySource, str, "os.PathLike[str]", None]


@dataclass(frozen=True)
class IntensityChoice:
    """Everything a run needs to turn energy into CO2, with provenance.

    Attributes:
        source: The intensity behind ``co2_kg`` (its ``info.kind`` says average or marginal).
        marginal: A marginal source recorded next to an average ``source`` (``co2_kg_marginal``), or None.
        pue: The PUE and where it comes from.
        region: The resolved region code, or None when no resolution was needed.
        region_reason: Why that region ("" when not resolved).
        resolution: How the region was found, structured (step, confidence, source, hints that lost),
            or None when no resolution was needed.
    """

    source: IntensitySource
    marginal: IntensitySource | None
    pue: PueInfo
    region: str | None = None
    region_reason: str = ""
    resolution: Resolution | None = None

    def region_record(self) -> dict[str, Any] | None:
        """The structured region choice for the run record's header (None when no region was resolved)."""
        return self.resolution.as_record() if self.resolution is not None else None

    @property
    def sources(self) -> list[IntensitySource]:
        """The sources in use."""
        return [self.source] + ([self.marginal] if self.marginal is not None else [])

    def close(self) -> None:
        """Release what the sources hold (a live provider's session); a failure is a warning, never an error."""
        for source in self.sources:
            close = getattr(source, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as e:  # noqa: BLE001 - a source that fails to close must not fail the run
                    log.warning("co2cb: could not close the intensity source %r (%s)", source, e)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _user_value(value: float, kind: str, region: str | None, option: str) -> FixedIntensity:
    return FixedIntensity(
        IntensityInfo(
            g_per_kwh=float(value),
            region=region or "user",
            region_name=region or "given by the user",
            source="given by the user",
            year=None,
            kind=kind,
            reason=f"{option}= argument",
            caveat=plausibility(float(value)),
        )
    )


def choose(
    intensity: IntensityOption = None,
    region: str | None = None,
    *,
    marginal_intensity: IntensityOption = None,
    pue: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> IntensityChoice:
    """The intensity sources and PUE for a run.

    Args:
        intensity: What ``co2_kg`` uses: gCO2e/kWh; an :class:`IntensitySource`;
            ``"electricitymaps"`` (live, see :mod:`co2cb.intensity.electricitymaps`); the
            path of a CSV series (average; see :mod:`co2cb.intensity.series`); or None for
            the region's value in the embedded database.
        region: Region code given by the user (else resolved: ``CO2CB_REGION``, cloud
            variables, time zone, world average; see :mod:`co2cb.intensity.region`).
        marginal_intensity: A marginal figure recorded next to an average one
            (``co2_kg_marginal``): gCO2e/kWh, a marginal :class:`IntensitySource`, the path
            of a CSV series, or ``"table"`` for the region's UNFCCC/IFI combined-margin factor.
        pue: The user's PUE; None picks the cloud provider's published figure for a cloud
            region, else 1.0 (see :mod:`co2cb.intensity.pue`).
        environ: Environment to read (default ``os.environ``).

    Raises:
        ValueError: An option is invalid, a region is unknown (the message names the
            nearest), or a series file is bad (:class:`~co2cb.intensity.series_file.SeriesError`).
    """
    resolved: list[Resolution] = []

    def resolution() -> Resolution:
        if not resolved:
            from co2cb.intensity.region import resolve_region

            resolved.append(resolve_region(region, environ=environ))
        return resolved[0]

    source = _primary(intensity, region, resolution, environ)
    marginal = None
    if marginal_intensity is not None:
        if source.info.kind == "marginal":
            raise ValueError(
                "marginal_intensity= is for a marginal figure next to an average one, but intensity= is already "
                "marginal: give one of them"
            )
        marginal = _marginal(marginal_intensity, region, resolution)
    res = resolved[0] if resolved else None
    pue_info = resolve_pue(pue, None if pue is not None else res.code if res else _region_for_pue(region, environ))
    return IntensityChoice(source, marginal, pue_info, res.code if res else None, res.reason if res else "", res)


def _region_for_pue(region: str | None, environ: Mapping[str, str] | None) -> str | None:
    """The region that decides the PUE when the intensity needs none resolved (no database, no time zone).

    The argument, ``CO2CB_REGION``, or a cloud region from the environment; the later
    resolution steps (time zone, world average) never land in a cloud.
    """
    from co2cb.intensity.region import CLOUD_ENV_VARS, ENV_VAR

    if region is not None and region.strip():
        return region.strip()
    env = os.environ if environ is None else environ
    if env.get(ENV_VAR, "").strip():
        return env[ENV_VAR].strip()
    for var, provider in CLOUD_ENV_VARS:
        value = env.get(var, "").strip().lower()
        if value:
            return f"{provider}:{value.replace(' ', '') if provider == 'azure' else value}"
    return None


def _table(resolution: Resolution, *, marginal: bool = False) -> FixedIntensity | None:
    from co2cb.intensity.database import UnknownRegionError, lookup, to_intensity_info

    try:
        found = lookup(resolution.code, marginal=marginal)
    except UnknownRegionError as e:  # say where the code came from (CO2CB_REGION=XX, a cloud variable...)
        hint = "; ".join(x for x in (e.hint, f"it came from {resolution.reason}") if x)
        raise UnknownRegionError(e.query, e.suggestions, hint) from None
    if marginal and found.row.kind != "marginal":
        return None
    return FixedIntensity(to_intensity_info(found, resolution.reason))


def _series_path(value: Any, option: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise ValueError(
            f"{option}={str(value)!r} is not a file: give gCO2e/kWh as a number, the path of a CSV series "
            "'timestamp, gCO2e/kWh', "
            + ("'electricitymaps', " if option == "intensity" else "'table', ")
            + "or an IntensitySource"
            + (" (for a region, pass region=)" if option == "intensity" else "")
        )
    return path


def _primary(intensity: IntensityOption, region: str | None, resolution: Any, environ: Any) -> IntensitySource:
    if isinstance(intensity, IntensitySource):
        return intensity
    if _is_number(intensity):
        return _user_value(intensity, "average", region, "intensity")  # type: ignore[arg-type]
    if intensity is None:
        table = _table(resolution())
        assert table is not None
        return table
    if isinstance(intensity, str) and intensity.strip().lower() in LIVE_PROVIDERS:
        from co2cb.intensity.electricitymaps import ElectricityMapsIntensity

        r = resolution()
        return ElectricityMapsIntensity(r.code, fallback=_table(r), reason=r.reason, environ=environ)
    if isinstance(intensity, (str, os.PathLike)):
        from co2cb.intensity.series import SeriesIntensity

        path = _series_path(intensity, "intensity")
        r = resolution()
        return SeriesIntensity(path, kind="average", fallback=_table(r), reason=f"intensity={str(path)!r}")
    raise ValueError(
        f"intensity={intensity!r} is not valid: give gCO2e/kWh as a number, the path of a CSV series, "
        "'electricitymaps', or an IntensitySource"
    )


def _marginal(value: IntensityOption, region: str | None, resolution: Any) -> IntensitySource:
    if isinstance(value, IntensitySource):
        if value.info.kind != "marginal":
            raise ValueError(
                f"marginal_intensity= got a source of kind {value.info.kind!r}: give a marginal one "
                "(e.g. SeriesIntensity(path, kind='marginal'))"
            )
        return value
    if _is_number(value):
        return _user_value(value, "marginal", region, "marginal_intensity")  # type: ignore[arg-type]
    if isinstance(value, str) and value.strip().lower() == MARGINAL_TABLE:
        r = resolution()
        table = _table(r, marginal=True)
        if table is None:
            raise ValueError(
                f"no marginal factor for region {r.code} in the embedded table: give marginal_intensity= "
                "a number or a series file"
            )
        return table
    if isinstance(value, (str, os.PathLike)):
        from co2cb.intensity.series import SeriesIntensity

        path = _series_path(value, "marginal_intensity")
        r = resolution()
        return SeriesIntensity(
            path, kind="marginal", fallback=_table(r, marginal=True), reason=f"marginal_intensity={str(path)!r}"
        )
    raise ValueError(
        f"marginal_intensity={value!r} is not valid: give gCO2e/kWh as a number, the path of a CSV series, "
        "'table', or a marginal IntensitySource"
    )


# ---------------------------------------------------------------------- printed once
_announced: set[str] = set()
_announce_lock = threading.Lock()


def is_quiet(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``CO2CB_QUIET`` asks for silence (any value but empty, 0, false, no, off)."""
    value = (os.environ if environ is None else environ).get(QUIET_ENV, "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def _line(label: str, info: IntensityInfo) -> str:
    year = f", {info.year}" if info.year else ""
    return (
        f"co2cb: {label} {info.g_per_kwh:.4g} gCO2e/kWh ({info.kind}) for {info.region} ({info.region_name}); "
        f"source: {info.source}{year}; why: {info.reason}"
    )


def announcement(choice: IntensityChoice) -> str:
    """The lines :func:`announce` prints."""
    lines = [_line("carbon intensity", choice.source.info)]
    if choice.marginal is not None:
        lines.append(_line("marginal intensity (co2_kg_marginal)", choice.marginal.info))
    p = choice.pue
    year = f", {p.year}" if p.year else ""
    lines.append(f"co2cb: PUE {p.value:g}; source: {p.source}{year}; why: {p.reason}")
    lines.append(f"co2cb: set {QUIET_ENV}=1 to silence these lines")
    return "\n".join(lines)


_disagreements: set[str] = set()


def _warn_disagreement(choice: IntensityChoice) -> None:
    """Warn once per process when region hints disagree, or a figure is doubtful (not silenced by ``CO2CB_QUIET``)."""
    res = choice.resolution
    texts = [
        f"co2cb: the {label} for {s.info.region} is doubtful: {s.info.caveat}"
        for label, s in (("carbon intensity", choice.source), ("marginal intensity", choice.marginal))
        if s is not None and s.info.caveat
    ]
    if res is not None and res.overruled:
        texts.append(
            f"co2cb: region {res.code} taken from {res.source}, but other hints disagree "
            f"({'; '.join(res.overruled)}); set CO2CB_REGION or pass region= to say which is right"
        )
    for text in texts:
        with _announce_lock:
            if text in _disagreements:
                continue
            _disagreements.add(text)
        log.warning(text)


def announce(
    choice: IntensityChoice, *, stream: TextIO | None = None, environ: Mapping[str, str] | None = None
) -> bool:
    """Print the region, intensity, source, year, reason and PUE once per process to stderr.

    A second tracker with the same choice prints nothing; one with another choice prints
    its own lines. ``CO2CB_QUIET=1`` silences it.

    Returns:
        True when the lines were printed.
    """
    _warn_disagreement(choice)
    if is_quiet(environ):
        return False
    text = announcement(choice)
    with _announce_lock:
        if text in _announced:
            return False
        _announced.add(text)
    try:
        print(text, file=stream if stream is not None else sys.stderr, flush=True)
    except (OSError, ValueError):  # a closed or broken stderr must not stop training
        return False
    return True
