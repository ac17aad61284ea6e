"""The optional packages behind the exporters, imported only when an export option is used."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

PROMETHEUS = ("prometheus_client", "prometheus")
"""(module, co2cb extra) for the Prometheus endpoint and the Pushgateway."""
OTEL = ("opentelemetry.metrics", "otel")
"""(module, co2cb extra) for OpenTelemetry."""


class MissingExtra(ValueError):
    """An export option needs a package that is not installed; the message names the extra to install."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def require(needed: tuple[str, str], option: str) -> None:
    """Check, without importing it, that the package an option needs is installed.

    Args:
        needed: :data:`PROMETHEUS` or :data:`OTEL`.
        option: The option that needs it, for the message (``"prometheus_port"``).

    Raises:
        MissingExtra: The package is not installed.
    """
    module, extra = needed
    if not _installed(module):
        raise MissingExtra(
            f"{option} needs the {module.split('.')[0]} package, which is not installed: pip install 'co2cb[{extra}]'"
        )


def load(needed: tuple[str, str], submodule: str = "") -> ModuleType:
    """Import the package an exporter needs, or one of its modules (``submodule="core"``).

    Raises:
        MissingExtra: It cannot be imported.
    """
    module, extra = needed
    module = f"{module}.{submodule}" if submodule else module
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(f"cannot import {module} ({e}): pip install 'co2cb[{extra}]'") from e
