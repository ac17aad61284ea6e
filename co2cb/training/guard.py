"""Adapter hooks that cannot raise: co2cb must never stop a training run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

log = logging.getLogger("co2cb.training")

T = TypeVar("T")


def guarded(fn: Callable[..., T]) -> Callable[..., T | None]:
    """Make a method unable to raise: a failure gives one warning per method, then None.

    The warning names the method (with its class) and the error, once per instance and method;
    training goes on.
    """

    @wraps(fn)
    def safe(self: Any, *args: Any, **kwargs: Any) -> T | None:
        try:
            return fn(self, *args, **kwargs)
        except Exception as e:  # noqa: BLE001 - co2cb must never stop a training run
            warned: set[str] = self.__dict__.setdefault("_co2cb_warned", set())
            if fn.__name__ not in warned:
                warned.add(fn.__name__)
                log.warning("co2cb: %s failed (%s: %s); training goes on", fn.__qualname__, type(e).__name__, e)
            return None

    return safe
