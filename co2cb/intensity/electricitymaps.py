"""Live carbon intensity from the Electricity Maps API, with the embedded table as fallback.

Used only when asked for (``Tracker(intensity="electricitymaps")``, or an
:class:`ElectricityMapsIntensity` passed as ``intensity=``); co2cb opens no
connection otherwise.

* **Request**: ``GET {base}/v3/carbon-intensity/latest?zone=ZONE`` with the header
  ``auth-token``. The token comes from the ``token`` argument or
  ``ELECTRICITYMAPS_API_TOKEN``; the base URL from ``base_url``,
  ``CO2CB_ELECTRICITYMAPS_URL`` or :data:`DEFAULT_BASE_URL`. Redirects are not followed
  (they would carry the token elsewhere); proxies from the environment are honoured
  except for loopback addresses.
* **Zone**: the resolved region looked up in the embedded database must land on an
  Electricity Maps zone (``US-CAL-CISO``, ``DK-DK1``...) or a country (``FR``); cloud
  regions map to the grid that serves them. eGRID subregions and the world average
  have no zone: the table value is used and the reason says how to fix it.
* **When the network is used**: once at construction (waiting at most ``timeout_s``,
  default 2 s), then every ``ttl_s`` (default 15 min) from a background daemon thread.
  Never on the training thread after construction, never when a window closes: a
  window's CO2 reads the values already fetched. A process-wide cache keyed by base
  URL and zone lets trackers started within ``ttl_s`` of each other share one answer.
* **Time**: each fetched value holds from the moment it arrived until the next fetch.
* **Failures** (no token, no zone, timeout, HTTP error, an answer that is not JSON,
  is for another zone or has no valid ``carbonIntensity``): the region's table value
  holds until the next fetch, and the reason is recorded in the intensity info and in
  the notes of the windows it covers. The token never appears in a record, a log line
  or an exception message.
"""

from __future__ import annotations

import bisect
import csv
import functools
import http.client
import io
import ipaddress
import json
import logging
import math
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from co2cb._version import __version__
from co2cb.intensity.base import MAX_G_PER_KWH, FixedIntensity, IntensityInfo, IntensitySource
from co2cb.intensity.series_file import human_seconds, iso_utc

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.electricitymaps.com"
TOKEN_ENV = "ELECTRICITYMAPS_API_TOKEN"
URL_ENV = "CO2CB_ELECTRICITYMAPS_URL"
DEFAULT_TIMEOUT_S = 2.0
DEFAULT_TTL_S = 900.0
_MAX_BYTES = 65_536
_ZONE_KEY = re.compile(r"^[A-Za-z]{2}(-[A-Za-z0-9]{1,10}){0,3}$")  # shown in reasons only if it looks like a zone

_cache: dict[tuple[str, str], tuple[float, float, str]] = {}  # (base, zone) -> (monotonic s, g/kWh, detail)
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every cached answer (tests, or to force a fetch)."""
    with _cache_lock:
        _cache.clear()


class LiveError(Exception):
    """A fetch that gave no usable value; the message is safe to record (no token)."""


@functools.lru_cache(maxsize=1)
def _gcp_grids() -> dict[str, str]:
    text = (resources.files("co2cb.intensity") / "data" / "cloud_gcp_google.csv").read_text(encoding="utf-8")
    return {row["code"].upper(): row.get("grid", "") for row in csv.DictReader(io.StringIO(text))}


def zone_for(region: str) -> tuple[str | None, str]:
    """The Electricity Maps zone for a region code, and how it was found (or why there is none).

    Raises:
        UnknownRegionError: The region is in no table.
    """
    from co2cb.intensity.database import database, lookup

    db = database()
    found = lookup(region)
    row = found.row
    key = row.code.upper()

    def is_zone(code: str) -> bool:
        k = code.upper()
        return k in db.rows["zones"] or (k in db.rows["countries"] and k != "WORLD")

    via = f" ({found.via})" if found.via else ""
    if is_zone(key):
        return row.code, f"Electricity Maps zone {row.code}{via}"
    if key in db.rows["gcp"]:
        grid = _gcp_grids().get(key, "")
        if grid and is_zone(grid):
            return grid, f"Electricity Maps zone {grid}, the grid serving {row.code}"
    if key == "WORLD":
        return None, (
            "the world average has no Electricity Maps zone: set the region (CO2CB_REGION or region=) "
            "to a zone or country, e.g. FR or US-CAL-CISO"
        )
    if key in db.rows["egrid"]:
        return None, (
            f"eGRID subregion {row.code} is not an Electricity Maps zone: give region= a balancing-authority "
            "zone such as US-CAL-CISO (`co2cb regions US-` lists them)"
        )
    return None, f"{row.code} has no Electricity Maps zone: give region= a zone or a country code"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: a followed redirect would send the token to another address."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _opener(base_url: str) -> urllib.request.OpenerDirector:
    host = urllib.parse.urlsplit(base_url).hostname
    proxies = urllib.request.ProxyHandler({}) if _is_loopback(host) else urllib.request.ProxyHandler()
    return urllib.request.build_opener(proxies, _NoRedirect())


def check_base_url(url: str) -> str:
    """A base URL, checked and without its trailing slash.

    Raises:
        ValueError: Not an ``http://`` or ``https://`` URL with a host.
    """
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Electricity Maps base URL {url!r} is not valid: give http(s)://host[:port][/path]")
    return url.strip().rstrip("/")


def fetch_latest(base_url: str, zone: str, token: str, timeout_s: float) -> tuple[float, str]:
    """One request for a zone's latest carbon intensity.

    Args:
        base_url: API base, without the trailing slash.
        zone: Electricity Maps zone key.
        token: API token, sent in the ``auth-token`` header only.
        timeout_s: Socket timeout, seconds.

    Returns:
        ``(gCO2e/kWh, detail)``: the detail says which hour the value is for and how it was made.

    Raises:
        LiveError: No usable value; the message holds no token.
    """
    url = f"{base_url}/v3/carbon-intensity/latest?{urllib.parse.urlencode({'zone': zone})}"
    request = urllib.request.Request(
        url, headers={"auth-token": token, "Accept": "application/json", "User-Agent": f"co2cb/{__version__}"}
    )
    try:
        with _opener(base_url).open(request, timeout=timeout_s) as response:
            body = response.read(_MAX_BYTES + 1)
    except urllib.error.HTTPError as e:
        e.close()
        hint = {
            401: "the token was refused",
            403: "the token may not read this zone",
            404: "unknown zone or endpoint",
            429: "rate limited",
        }.get(e.code, "redirects are not followed" if 300 <= e.code < 400 else "")
        raise LiveError(f"HTTP {e.code}" + (f" ({hint})" if hint else "")) from None
    except TimeoutError:
        raise LiveError(f"no answer within {timeout_s:g} s") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise LiveError(f"no answer within {timeout_s:g} s") from None
        raise LiveError(f"cannot connect ({type(e.reason).__name__}: {e.reason})") from None
    except (http.client.HTTPException, OSError, ValueError) as e:
        raise LiveError(f"the connection failed ({type(e).__name__})") from None
    if len(body) > _MAX_BYTES:
        raise LiveError(f"the answer is larger than {_MAX_BYTES} bytes")
    try:
        answer = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise LiveError("the answer is not JSON") from None
    if not isinstance(answer, dict):
        raise LiveError("the answer is not a JSON object")
    got = answer.get("zone")
    if not isinstance(got, str) or got.upper() != zone.upper():
        shown = repr(got) if isinstance(got, str) and _ZONE_KEY.match(got) else "another zone"
        raise LiveError(f"the answer is for {shown}, not {zone!r}")
    value = answer.get("carbonIntensity")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LiveError("the answer has no numeric carbonIntensity")
    if not 0 <= value <= MAX_G_PER_KWH:
        raise LiveError(f"carbonIntensity {value!r} is outside 0..{MAX_G_PER_KWH:g} gCO2e/kWh")
    parts = [f"for {str(answer['datetime'])[:40]}" if answer.get("datetime") else "latest"]
    for key in ("emissionFactorType", "isEstimated"):
        if key in answer and isinstance(answer[key], (str, bool)):
            parts.append(f"{key}={answer[key]}")
    return float(value), ", ".join(parts)


@dataclass(frozen=True)
class Reading:
    """One value of the live source and the time from which it holds.

    Attributes:
        unix_s: When it arrived (or when the fetch failed), seconds since the epoch.
        g_per_kwh: The value, gCO2e/kWh (the table value after a failure).
        live: True for an Electricity Maps value, False for the table fallback.
        detail: For a live value, which hour it is for; for a fallback, why.
    """

    unix_s: float
    g_per_kwh: float
    live: bool
    detail: str


class ElectricityMapsIntensity(IntensitySource):
    """Latest carbon intensity of a zone from Electricity Maps, refreshed in the background.

    See the module docstring for when the network is used and what happens on failure.

    Args:
        region: Region code (default: resolved as a run would, see
            :func:`co2cb.intensity.region.resolve_region`).
        token: API token (default ``ELECTRICITYMAPS_API_TOKEN``). Never recorded.
        base_url: API base (default ``CO2CB_ELECTRICITYMAPS_URL`` or :data:`DEFAULT_BASE_URL`).
        timeout_s: Timeout of a request, seconds (0.1 to 30).
        ttl_s: Seconds between refreshes, and how long a cached answer is reused (at least 0.1).
        fallback: Table value used on failure (default: the region's row in the embedded database).
        reason: Why this region (default: the region resolution's reason).
        environ: Environment to read (default ``os.environ``).

    Raises:
        ValueError: A bad option, or an unknown region.
    """

    def __init__(
        self,
        region: str | None = None,
        *,
        token: str | None = None,
        base_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        ttl_s: float = DEFAULT_TTL_S,
        fallback: IntensitySource | None = None,
        reason: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        for name, value, low, high in (("timeout_s", timeout_s, 0.1, 30.0), ("ttl_s", ttl_s, 0.1, math.inf)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"{name}={value!r} is not valid: give seconds from {low:g} to {high:g}")
        self.timeout_s = float(timeout_s)
        self.ttl_s = float(ttl_s)
        self.base_url = check_base_url(base_url or env.get(URL_ENV) or DEFAULT_BASE_URL)
        self.host = urllib.parse.urlsplit(self.base_url).netloc.rpartition("@")[2]
        self.__token = (token if token is not None else env.get(TOKEN_ENV, "")).strip()
        if fallback is None:
            from co2cb.intensity.database import lookup, to_intensity_info
            from co2cb.intensity.region import resolve_region

            resolution = resolve_region(region, environ=env)
            code = resolution.code
            fallback = FixedIntensity(to_intensity_info(lookup(code), reason or resolution.reason))
        else:
            code = region or fallback.info.region
        self.fallback = fallback
        self.zone, self.zone_reason = zone_for(code)
        self._lock = threading.Lock()
        self._readings: list[Reading] = []
        self._times: list[float] = []
        self._stop = threading.Event()
        self._first = threading.Event()
        self._warned: set[str] = set()
        self._thread: threading.Thread | None = None
        if not self.__token:
            self._fail(f"{TOKEN_ENV} is not set")
        elif self.zone is None:
            self._fail(self.zone_reason)
        else:
            self._thread = threading.Thread(target=self._run, name="co2cb-electricitymaps", daemon=True)
            self._thread.start()
            if not self._first.wait(self.timeout_s + 0.5):
                with self._lock:
                    answered = bool(self._readings)
                if not answered:
                    self._fail(f"no answer within {self.timeout_s:g} s")

    def __repr__(self) -> str:
        return f"ElectricityMapsIntensity(zone={self.zone!r}, base_url={self.base_url!r})"

    # ------------------------------------------------------------------ background
    def _run(self) -> None:
        self._refresh()
        self._first.set()
        while not self._stop.wait(self.ttl_s):
            self._refresh()

    def _refresh(self) -> None:
        assert self.zone is not None
        key = (self.base_url, self.zone)
        with _cache_lock:
            cached = _cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.ttl_s:
            self._add(Reading(time.time(), cached[1], True, f"{cached[2]}; cached"))
            return
        try:
            value, detail = fetch_latest(self.base_url, self.zone, self.__token, self.timeout_s)
        except LiveError as e:
            self._fail(str(e))
            return
        except Exception as e:  # noqa: BLE001 - a background fetch must never raise
            self._fail(f"unexpected error ({type(e).__name__})")
            return
        with _cache_lock:
            _cache[key] = (time.monotonic(), value, detail)
        self._add(Reading(time.time(), value, True, detail))

    def _scrub(self, text: str) -> str:
        return text.replace(self.__token, "***") if self.__token else text

    def _fail(self, why: str) -> None:
        why = self._scrub(why)
        fb = self.fallback.info
        self._add(Reading(time.time(), self.fallback.g_per_kwh_at(time.time()), False, why))
        if why not in self._warned:
            self._warned.add(why)
            log.warning(
                "co2cb: Electricity Maps live intensity unavailable (%s); using the %s table value %g gCO2e/kWh",
                why,
                fb.region,
                fb.g_per_kwh,
            )

    def _add(self, reading: Reading) -> None:
        with self._lock:
            if self._readings:
                last = self._readings[-1]
                if (last.live, last.g_per_kwh) == (reading.live, reading.g_per_kwh) and (
                    last.live or last.detail == reading.detail
                ):
                    return
                reading = Reading(max(reading.unix_s, last.unix_s), reading.g_per_kwh, reading.live, reading.detail)
            self._readings.append(reading)
            self._times.append(reading.unix_s)

    def close(self) -> None:
        """Stop the background refresh (the values fetched so far stay)."""
        self._stop.set()

    # ------------------------------------------------------------------ IntensitySource
    @property
    def readings(self) -> list[Reading]:
        """Every value so far, oldest first."""
        with self._lock:
            return list(self._readings)

    @property
    def live(self) -> bool:
        """Whether the newest value came from Electricity Maps."""
        with self._lock:
            return bool(self._readings) and self._readings[-1].live

    @property
    def info(self) -> IntensityInfo:
        """Provenance of the figures this source gives."""
        with self._lock:
            last = self._readings[-1] if self._readings else None
        fb = self.fallback.info
        table = f"{fb.region} table value {fb.g_per_kwh:g} gCO2e/kWh ({fb.source}{f' {fb.year}' if fb.year else ''})"
        if last is None or not last.live:
            why = last.detail if last is not None else "no answer yet"
            until = f" until a refresh (every {human_seconds(self.ttl_s)}) succeeds" if self._thread is not None else ""
            return replace(
                fb, reason=f"{fb.reason}; Electricity Maps live intensity not used: {why}; the {table} is used{until}"
            )
        same = fb.region.upper() == (self.zone or "").upper()
        return IntensityInfo(
            g_per_kwh=last.g_per_kwh,
            region=self.zone or fb.region,
            region_name=fb.region_name if same else f"Electricity Maps zone {self.zone}",
            source=f"Electricity Maps live API ({self.host}, carbon-intensity/latest)",
            year=None,
            kind="average",
            basis="lifecycle",  # the API's default emission factors (co2cb asks for no other)
            reason=f"{fb.reason}; {self.zone_reason}; live value {last.g_per_kwh:g} gCO2e/kWh {last.detail}, "
            f"fetched {iso_utc(last.unix_s)}, refreshed every {human_seconds(self.ttl_s)} in the background; "
            f"on failure the {table} is used",
        )

    def g_per_kwh_at(self, unix_s: float) -> float:
        """Intensity in gCO2e/kWh at ``unix_s`` (seconds since the epoch)."""
        with self._lock:
            if not self._readings:
                return self.fallback.g_per_kwh_at(unix_s)
            i = max(0, bisect.bisect_right(self._times, unix_s) - 1)
            return self._readings[i].g_per_kwh

    def breakpoints(self, start_unix_s: float, end_unix_s: float) -> list[float]:
        """Times strictly inside ``(start, end)`` where a new value took over."""
        with self._lock:
            lo = bisect.bisect_right(self._times, start_unix_s)
            hi = bisect.bisect_left(self._times, end_unix_s)
            return self._times[lo:hi]

    def notes(self, start_unix_s: float, end_unix_s: float) -> list[str]:
        """The table fallbacks that cover part of a window ``[start, end]``."""
        with self._lock:
            readings = list(self._readings)
        out = []
        for i, r in enumerate(readings):
            until = readings[i + 1].unix_s if i + 1 < len(readings) else math.inf
            starts = r.unix_s if i > 0 else -math.inf
            if not r.live and starts < end_unix_s and start_unix_s < until:
                out.append(
                    f"Electricity Maps live intensity unavailable from {iso_utc(r.unix_s)} ({r.detail}): "
                    f"the {self.fallback.info.region} table value {r.g_per_kwh:g} gCO2e/kWh was used"
                )
        return out
