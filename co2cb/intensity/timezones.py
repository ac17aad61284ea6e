"""The machine's time zone, and the country it belongs to (offline).

The zone name comes from ``TZ``, else ``/etc/timezone``, else the target of the
``/etc/localtime`` symlink. The zone -> country mapping is read from the IANA
tables ``zone.tab`` / ``zone1970.tab`` (and the links in ``tzdata.zi`` for old
names such as ``Asia/Calcutta``), taken from the ``tzdata`` package when it is
installed, else from ``/usr/share/zoneinfo``. ``UTC`` and ``Etc/*`` zones belong
to no country.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

ETC_TIMEZONE = Path("/etc/timezone")
ETC_LOCALTIME = Path("/etc/localtime")
SYSTEM_ZONEINFO = Path("/usr/share/zoneinfo")

#: Zone names that are not in any country (UTC, fixed offsets, POSIX rules).
_NOT_A_COUNTRY = re.compile(
    r"^(Etc/.*|UTC|UCT|GMT([+-]?\d+)?|Universal|Zulu|Greenwich|Factory|localtime|posixrules"
    r"|[A-Z]{3,5}[+-]?\d.*|CET|EET|MET|WET|EST|HST|MST)$"
)


def machine_timezone(
    environ: Mapping[str, str] | None = None,
    *,
    timezone_file: Path = ETC_TIMEZONE,
    localtime: Path = ETC_LOCALTIME,
) -> tuple[str, str] | None:
    """The machine's IANA time zone name and where it was found.

    Args:
        environ: Environment to read ``TZ`` from (default: ``os.environ``).
        timezone_file: Debian-style file holding the zone name.
        localtime: Symlink into a zoneinfo tree (``.../zoneinfo/Europe/Paris``).

    Returns:
        ``(zone, origin)``, e.g. ``("Europe/Paris", "TZ")``, or None when nothing says.
    """
    env = os.environ if environ is None else environ
    tz = env.get("TZ", "").strip()
    if tz:
        return _zone_name(tz), "the TZ variable"
    try:
        text = timezone_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    if text:
        return _zone_name(text.splitlines()[0]), str(timezone_file)
    try:
        target = os.readlink(localtime)
    except (OSError, ValueError):
        return None
    if "zoneinfo/" in target:
        return _zone_name(target), f"the {localtime} link"
    return None


def _zone_name(text: str) -> str:
    """``":Europe/Paris"`` or ``"/usr/share/zoneinfo/Europe/Paris"`` -> ``"Europe/Paris"``."""
    name = text.strip().lstrip(":")
    if "zoneinfo/" in name:
        name = name.split("zoneinfo/", 1)[1]
    return name.strip("/")


def default_zoneinfo_dirs() -> list[Any]:
    """Folders that may hold ``zone.tab``: the ``tzdata`` package's, then the system's."""
    dirs: list[Any] = []
    with contextlib.suppress(ImportError, TypeError):  # tzdata is optional
        dirs.append(resources.files("tzdata") / "zoneinfo")
    dirs.append(SYSTEM_ZONEINFO)
    return dirs


def _read_lines(folder: Any, name: str) -> list[str] | None:
    try:
        entry = folder.joinpath(name)
        if not entry.is_file():
            return None
        return entry.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, ValueError):
        return None


_DEFAULT_TABLE: dict[str, str] = {}
"""The default folders' mapping, read once per process (parsing the tables takes about 1.5 ms, and every tracker
without a region looks its time zone up)."""


def load_zone_countries(zoneinfo_dir: Path | Iterable[Any] | None = None) -> dict[str, str]:
    """Zone name -> ISO 3166-1 alpha-2 code of the country it is in.

    Args:
        zoneinfo_dir: Folder with ``zone.tab`` / ``zone1970.tab`` / ``tzdata.zi``,
            or several folders tried in order (default: :func:`default_zoneinfo_dirs`, read once per process).

    Returns:
        The mapping; empty when no table is found.
    """
    if zoneinfo_dir is None:
        if not _DEFAULT_TABLE:
            _DEFAULT_TABLE.update(_load(default_zoneinfo_dirs()))
        return dict(_DEFAULT_TABLE)
    return _load([Path(zoneinfo_dir)] if isinstance(zoneinfo_dir, (str, Path)) else list(zoneinfo_dir))


def _load(folders: list[Any]) -> dict[str, str]:
    """The mapping from the first of ``folders`` that has a table (see :func:`load_zone_countries`)."""
    for folder in folders:
        zone_tab = _read_lines(folder, "zone.tab")
        zone1970 = _read_lines(folder, "zone1970.tab")
        if zone_tab is None and zone1970 is None:
            continue
        mapping: dict[str, str] = {}
        for line in zone_tab or []:  # one country per line
            fields = line.split("\t")
            if len(fields) >= 3 and not line.startswith("#"):
                mapping[fields[2].strip()] = fields[0].strip().upper()
        for line in zone1970 or []:  # several countries; the first is the zone's own
            fields = line.split("\t")
            if len(fields) >= 3 and not line.startswith("#"):
                mapping.setdefault(fields[2].strip(), fields[0].split(",")[0].strip().upper())
        for line in _read_lines(folder, "tzdata.zi") or []:  # links: "L Asia/Kolkata Asia/Calcutta"
            fields = line.split()
            if len(fields) == 3 and fields[0] == "L" and fields[1] in mapping:
                mapping.setdefault(fields[2], mapping[fields[1]])
        return mapping
    return {}


def timezone_country(zone: str, table: Mapping[str, str] | None = None) -> str | None:
    """The ISO 3166-1 alpha-2 code of the country of a time zone, or None.

    Args:
        zone: IANA zone name (``"Europe/Paris"``).
        table: Mapping from :func:`load_zone_countries` (default: loaded now).
    """
    name = _zone_name(zone)
    if not name or _NOT_A_COUNTRY.match(name):
        return None
    mapping = load_zone_countries() if table is None else table
    return mapping.get(name)
