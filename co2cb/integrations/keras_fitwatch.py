"""Keras plumbing with a job of its own: the ``CallbackList`` calling a callback, and a ``fit`` that raised.

Keras has no exception hook, so a watch thread notices a ``fit`` that left the stack without
``on_train_end``, and a catcher keeps the exception that left the model's step functions or the
callback list, for a caller that handles it before the watch looks.

Read from Keras 3's ``callbacks/callback_list.py`` and the backends' ``Trainer.fit``: a callback gets
no handle on its list, but the list is the ``self`` of a frame up the stack
(``CallbackList.on_train_begin``), and its caller is ``fit`` unless a custom loop drives it.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import keras

log = logging.getLogger("co2cb.integrations.keras")

WATCH_PERIOD_S = 0.25  # how often the fit watch looks at the stack, seconds
STACK_DEPTH = 8  # frames searched for the CallbackList calling the callback


class FitAborted(Exception):
    """``fit`` ended without ``on_train_end``: it raised, and the exception was not found."""


def dispatcher(callback: keras.callbacks.Callback) -> tuple[keras.callbacks.CallbackList | None, FrameType | None]:
    """The ``CallbackList`` up the stack that is calling ``callback``, and the frame of Keras' ``fit`` calling it.

    Keras gives a callback no handle on its list: the list is the ``self`` of a frame up the stack
    (``CallbackList.on_train_begin``), and its caller is ``fit`` unless a custom loop drives it.
    """
    frame: FrameType | None = sys._getframe(1)
    for _ in range(STACK_DEPTH):
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if isinstance(owner, keras.callbacks.CallbackList) and any(cb is callback for cb in owner.callbacks):
            caller = frame.f_back
            return owner, caller if caller is not None and caller.f_code.co_name == "fit" else None
        frame = frame.f_back
    return None, None


def last_uncaught() -> BaseException | None:
    """The last exception that reached the top of the interpreter (or of IPython) uncaught."""
    return getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)


class RaisedCatcher:
    """Keeps the last exception that left the model's step functions or the callback list's hooks during one fit.

    A caller that catches ``fit``'s exception and goes on leaves nothing for :class:`FitWatch` to find
    once it looks; so for the length of a fit, ``train_function``, ``test_function`` and the hooks
    of the ``CallbackList`` calling the callback are wrapped (one Python call per step), and
    :meth:`close` puts them back. A call that returns forgets an exception seen before it (``fit``
    handled that one itself), and the end of an epoch's data (``StopIteration``, TensorFlow's
    ``OutOfRangeError``) is never kept.
    """

    FUNCTIONS = ("train_function", "test_function")
    HOOKS = (
        "on_epoch_begin",
        "on_epoch_end",
        "on_train_batch_begin",
        "on_train_batch_end",
        "on_test_begin",
        "on_test_end",
        "on_test_batch_begin",
        "on_test_batch_end",
    )

    def __init__(self, model: Any, callbacks: Any) -> None:
        self.error: BaseException | None = None
        self._undo: list[tuple[Any, str, Any, bool]] = []
        for name in self.FUNCTIONS:
            self._wrap(model, name)
        if callbacks is not None:
            for name in self.HOOKS:
                self._wrap(callbacks, name)

    def _wrap(self, owner: Any, name: str) -> None:
        fn = getattr(owner, name, None)
        if not callable(fn):
            return
        catcher = self

        def caught(*args: Any, **kwargs: Any) -> Any:
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:
                if not isinstance(e, StopIteration) and type(e).__name__ != "OutOfRangeError":
                    catcher.error = e
                raise
            catcher.error = None
            return result

        own = name in vars(owner)
        try:
            setattr(owner, name, caught)
        except (AttributeError, TypeError):  # a model that refuses new attributes: not caught there
            return
        self._undo.append((owner, name, fn, own))

    def close(self) -> None:
        """Put the wrapped functions back (safe to call twice)."""
        undo, self._undo = self._undo, []
        for owner, name, fn, own in reversed(undo):
            try:
                if own:
                    setattr(owner, name, fn)
                else:
                    delattr(owner, name)
            except (AttributeError, TypeError):
                continue


class FitWatch:
    """Calls ``on_raised(error)`` once Keras' ``fit`` has left the stack without ``on_train_end`` (it raised).

    A thread looks every ``period_s`` for ``fit``'s frame on the stack of the thread running it
    (``sys._current_frames``: no tracing, nothing on the training thread). It is not a daemon: when an
    uncaught exception ends the interpreter, the thread records it before the exit handlers run. The
    error is the exception that left ``fit``, else the one a :class:`RaisedCatcher` on ``model`` and
    ``callbacks`` (the ``CallbackList``) kept, else :class:`FitAborted`.
    """

    def __init__(
        self,
        fit_frame: FrameType,
        model: Any,
        callbacks: Any,
        on_raised: Callable[[BaseException], None],
        period_s: float = WATCH_PERIOD_S,
    ) -> None:
        self._frame: FrameType | None = fit_frame
        self._thread_id = threading.get_ident()
        self._on_raised = on_raised
        self._seen = last_uncaught()  # an uncaught exception from before this fit is not its own
        self._catcher = RaisedCatcher(model, callbacks)
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(period_s,), name="co2cb-keras-fit-watch").start()

    def close(self) -> None:
        """``fit`` is ending (normally, or its end was seen): stop watching and unwrap (safe to call twice)."""
        self._done.set()
        self._catcher.close()

    def _run(self, period_s: float) -> None:
        while not self._done.wait(period_s):
            if self._on_stack():
                continue
            error = self._error() or self._catcher.error
            self._frame = None
            if not self._done.is_set():
                self._on_raised(error or FitAborted("fit raised and its caller handled the exception"))
            return
        self._frame = None

    def _on_stack(self) -> bool:
        frame = sys._current_frames().get(self._thread_id)
        while frame is not None:
            if frame is self._frame:
                return True
            frame = frame.f_back
        return False

    def _error(self) -> BaseException | None:
        """The exception that left ``fit``: the one its thread is handling now, else a new uncaught one."""
        current: Any = getattr(sys, "_current_exceptions", None)  # Python >= 3.12
        handled = current().get(self._thread_id) if current is not None else None
        if isinstance(handled, tuple):  # Python < 3.12: (type, value, traceback)
            handled = handled[1]
        if isinstance(handled, BaseException):
            return handled
        last = last_uncaught()
        return last if last is not self._seen else None


def run_first(callback: keras.callbacks.Callback, owner: keras.callbacks.CallbackList) -> list[str]:
    """Give ``owner`` a new callback list in which ``callback`` comes first, behind Keras' progress bar only.

    The loop running ``on_train_begin`` goes on over the old list, so every callback still gets that
    hook once. Returns the names of the callbacks that were ahead of it.
    """
    progbar = keras.callbacks.ProgbarLogger
    callbacks = list(owner.callbacks)
    order = [
        *(cb for cb in callbacks if isinstance(cb, progbar)),
        callback,
        *(cb for cb in callbacks if cb is not callback and not isinstance(cb, progbar)),
    ]
    if all(a is b for a, b in zip(order, callbacks)):
        return []
    mine = next(i for i, cb in enumerate(callbacks) if cb is callback)
    owner.callbacks = order
    return [type(cb).__name__ for cb in callbacks[:mine] if not isinstance(cb, progbar)]


def arrange(
    callback: keras.callbacks.Callback, warn: bool
) -> tuple[keras.callbacks.CallbackList | None, FrameType | None]:
    """Put ``callback`` first in the ``CallbackList`` calling it; return that list and ``fit``'s frame.

    Where no ``CallbackList`` calls it (a custom loop), say once (``warn``) that loggers called before it
    do not get its values.
    """
    owner, fit_frame = dispatcher(callback)
    if owner is None:
        if warn:
            log.warning(
                "co2cb: CO2Callback is not called through a keras.callbacks.CallbackList, so it cannot run "
                "ahead of the other callbacks: a logger called before it does not get its values. Call it first."
            )
        return None, None
    ahead = run_first(callback, owner)
    if ahead:
        log.info("co2cb: CO2Callback moved ahead of %s so that they see its values", ", ".join(ahead))
    return owner, fit_frame
