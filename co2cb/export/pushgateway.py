"""Pushing the metrics to a Prometheus Pushgateway, for batch jobs that end before a scrape.

Pushes happen on a thread of their own: a recorded window's close only wakes it (an event set, on
the training thread), and it sends the newest snapshot with a timeout. Closes that come less than
:data:`MIN_SPACING_S` after a push are merged into one push, made when that time is up. A gateway
that fails gives one warning per run; measuring and training go on, and the next close tries
again. :meth:`Pusher.stop` makes the last push at once, waiting at most about two timeouts.

Each run replaces its own group, ``job="co2cb"``, ``instance=<host>``, ``run=<run name>``,
``run_id=<run id>`` (HTTP PUT), so the final values stay on the gateway after the run ends, also when a
later run has the same name.

Credentials never come from the URL (it is written in the run record): they come from
:data:`AUTH_ENV`, either ``user:password`` (HTTP basic auth) or ``Bearer <token>``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from co2cb.export.extras import PROMETHEUS, load

log = logging.getLogger(__name__)

AUTH_ENV = "CO2CB_PUSHGATEWAY_AUTH"
"""Environment variable holding the Pushgateway credentials: ``user:password`` or ``Bearer <token>``."""
JOB = "co2cb"
TIMEOUT_S = 5.0
"""Timeout of one push, seconds."""
MIN_SPACING_S = 1.0
"""Least time between two pushes, seconds (the last push, at stop, never waits)."""


def url_problem(url: object) -> str | None:
    """What is wrong with a Pushgateway URL, in words that say how to fix it; None when it is usable."""
    if not isinstance(url, str) or not url.strip():
        return "give the gateway's URL, e.g. 'http://pushgateway:9091'"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as e:
        return f"it is not a URL ({e}); give e.g. 'http://pushgateway:9091'"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "give an http:// or https:// URL with a host, e.g. 'http://pushgateway:9091'"
    if parts.username is not None or parts.password is not None:
        return f"the URL would put credentials into the run record: remove them and set {AUTH_ENV}='user:password'"
    if parts.query or parts.fragment:
        return "remove the query or fragment: give the gateway's base URL, e.g. 'http://pushgateway:9091'"
    return None


def auth_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """What is wrong with :data:`AUTH_ENV` (never quoting it); None when unset or usable."""
    value = (os.environ if environ is None else environ).get(AUTH_ENV)
    if value is None or _parse_auth(value) is not None:
        return None
    return f"{AUTH_ENV} must be 'user:password' (basic auth) or 'Bearer <token>'"


def _parse_auth(value: str) -> tuple[str, str, str] | None:
    """``("basic", user, password)``, ``("bearer", token, "")``, or None when malformed."""
    if value.startswith("Bearer "):
        token = value[len("Bearer ") :].strip()
        return ("bearer", token, "") if token else None
    user, sep, password = value.partition(":")
    return ("basic", user, password) if sep and user else None


def _handler(environ: Mapping[str, str] | None = None) -> Callable[..., Callable[[], None]]:
    """A ``prometheus_client`` push handler that adds the credentials of :data:`AUTH_ENV`, if any."""
    exposition = load(PROMETHEUS, "exposition")
    value = (os.environ if environ is None else environ).get(AUTH_ENV)
    auth = _parse_auth(value) if value is not None else None
    if auth is None:
        return exposition.default_handler
    kind, first, second = auth

    def handler(url: str, method: str, timeout: float | None, headers: list[Any], data: bytes) -> Callable[[], None]:
        if kind == "basic":
            return exposition.basic_auth_handler(url, method, timeout, headers, data, first, second)
        return exposition.default_handler(url, method, timeout, [*headers, ("Authorization", f"Bearer {first}")], data)

    return handler


class Pusher:
    """Pushes a registry to a Pushgateway from a background thread.

    Args:
        url: The gateway's base URL (checked by :func:`url_problem`).
        registry: What to push (from :func:`co2cb.export.prometheus.registry_of`).
        grouping: Grouping key besides ``job``: ``{"instance": host, "run": run name, "run_id": run id}``.
        timeout_s: Timeout of one push, seconds (default :data:`TIMEOUT_S`).
    """

    def __init__(self, url: str, registry: Any, grouping: Mapping[str, str], timeout_s: float | None = None) -> None:
        self.url, self.grouping = url, dict(grouping)
        self.timeout_s = TIMEOUT_S if timeout_s is None else timeout_s
        self._registry = registry
        self._push = load(PROMETHEUS, "exposition").push_to_gateway
        self._handler = _handler()
        self._wake = threading.Event()
        self._ending = threading.Event()  # cuts the spacing short at stop
        self._stopping = False
        self._failing = False
        self._warned = False
        self._thread: threading.Thread | None = None
        self.pushes = 0  # successful pushes
        self.failures = 0

    def start(self) -> None:
        """Start the pushing thread (it pushes when :meth:`request` or :meth:`stop` wakes it)."""
        self._thread = threading.Thread(target=self._run, name="co2cb-push", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Ask for a push of the newest values (returns at once; safe on the training thread)."""
        if not self._wake.is_set():  # an attribute read; set() takes a lock
            self._wake.set()

    def stop(self) -> None:
        """Make the last push and end the thread, waiting at most about two push timeouts."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping = True
        self._ending.set()
        self._wake.set()
        thread.join(timeout=2 * self.timeout_s + 1.0)
        if thread.is_alive():
            log.warning("co2cb: the last push to the Pushgateway at %s did not finish in time; given up", self.url)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            stopping = self._stopping  # read after clear(): a stop() now either shows here or wakes us again
            self.push_now()
            if stopping:
                return
            self._ending.wait(MIN_SPACING_S)

    def push_now(self) -> bool:
        """Push once, on the calling thread; False when it fails (the first failure of the run warns)."""
        try:
            self._push(
                self.url,
                job=JOB,
                registry=self._registry,
                grouping_key=self.grouping,
                timeout=self.timeout_s,
                handler=self._handler,
            )
        except Exception as e:  # noqa: BLE001 - a failing gateway must never stop training
            self.failures += 1
            self._failing = True
            if not self._warned:
                self._warned = True
                log.warning(
                    "co2cb: could not push metrics to the Pushgateway at %s (%s: %s); measuring goes on, and each "
                    "window close tries again (this warning is given once per run)",
                    self.url,
                    type(e).__name__,
                    e,
                )
            return False
        self.pushes += 1
        if self._failing:
            self._failing = False
            log.info("co2cb: pushing metrics to the Pushgateway at %s works again", self.url)
        return True
