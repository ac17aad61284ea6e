"""The flags that ``co2cb run`` and ``co2cb monitor`` share: what to measure, and the live export."""

from __future__ import annotations

import argparse
from typing import Any

from co2cb.export import AUTH_ENV, DEFAULT_ADDR


def add_measure_arguments(p: argparse.ArgumentParser, name_default: str) -> None:
    """Add ``--name``, ``--output-dir``, ``--interval``, ``--region`` and ``--pue``."""
    p.add_argument("--name", help=f"run name (default: {name_default})")
    p.add_argument("--output-dir", help="parent folder of run folders (default: CO2CB_OUTPUT_DIR or ./co2cb-runs)")
    p.add_argument(
        "--interval",
        type=float,
        default=None,
        help="seconds between readings (0.05 to 60; default 1, or 0.1 when a meter only gives power)",
    )
    p.add_argument("--region", help="region code for the carbon intensity, e.g. FR or aws:eu-west-3")
    p.add_argument(
        "--pue",
        type=float,
        default=None,
        help="data centre PUE (default: the cloud provider's published figure for a cloud region, else 1.0)",
    )


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--prometheus-port``, ``--prometheus-addr``, ``--pushgateway`` and ``--opentelemetry``."""
    g = p.add_argument_group("live metrics (see the README's 'Live metrics')")
    g.add_argument(
        "--prometheus-port",
        type=int,
        metavar="PORT",
        help="serve the metrics on /metrics at this port for Prometheus (needs co2cb[prometheus])",
    )
    g.add_argument(
        "--prometheus-addr",
        default=DEFAULT_ADDR,
        metavar="ADDR",
        help=f"address the endpoint binds (default {DEFAULT_ADDR}: this machine only; 0.0.0.0: every interface)",
    )
    g.add_argument(
        "--pushgateway",
        metavar="URL",
        help=f"push the metrics to this Prometheus Pushgateway at each window's close and at the end "
        f"(credentials in {AUTH_ENV}; needs co2cb[prometheus])",
    )
    g.add_argument(
        "--opentelemetry",
        action="store_true",
        help="record the metrics through the OpenTelemetry metrics API, e.g. under opentelemetry-instrument "
        "(needs co2cb[otel])",
    )


def export_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`co2cb.Tracker` options of those flags."""
    return {
        "prometheus_port": args.prometheus_port,
        "prometheus_addr": args.prometheus_addr,
        "pushgateway": args.pushgateway,
        "opentelemetry": args.opentelemetry,
    }
