"""How the Hugging Face callback binds itself to the Trainer that calls it.

The Trainer calls its callbacks in list order: ``DefaultFlowCallback``, then the ``report_to``
integrations (TensorBoard, W&B, MLflow...), then the user's callbacks, then the progress printer.
A value a user callback adds to ``logs`` in ``on_log`` therefore never reaches TensorBoard. A
:class:`Binding` fixes the order: when the Trainer calls ``on_init_end`` (and again at
``on_train_begin``) it finds the Trainer's ``CallbackHandler`` a few frames up the stack (the
handler calling the callback) and moves the callback just ahead of the first reporting callback,
still after ``DefaultFlowCallback`` (whose ``control`` flags it reads). It also:

* emits entries of the callback's own (epochs, evaluations) through the handler's ``on_log``, so
  every callback and integration sees them, appended to ``state.log_history`` as ``Trainer.log`` does;
* wraps ``trainer.train`` on the instance (:class:`TrainGuard`), so that measurement stops, and the
  record says so, when training raises: the Trainer has no exception hook;
* remembers which instance was bound to each handler: when the Trainer restores callback states it
  replaces the callback by a copy built from the saved arguments, and the copy puts the user's
  instance (with all its options) back in its place.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from transformers.trainer_callback import CallbackHandler, PrinterCallback, ProgressCallback

log = logging.getLogger(__name__)

STACK_DEPTH = 12  # frames searched for the Trainer and its CallbackHandler
STATE_ATTRIBUTE = "co2cb_state"  # the callback's entry in a checkpoint's ``stateful_callbacks``


class Bindable(Protocol):
    """The callback side of a binding."""

    binding: Binding

    def fail(self, error: BaseException) -> None:
        """Training raised: stop measuring."""


# The instance bound to each handler (see the module's docstring).
_BOUND: weakref.WeakKeyDictionary[Any, Bindable] = weakref.WeakKeyDictionary()


def reporting_types() -> tuple[type, ...]:
    """Callback classes that report ``logs`` (the ``report_to`` integrations and the printers)."""
    types: list[type] = [ProgressCallback, PrinterCallback]
    try:
        from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK
    except ImportError:  # pragma: no cover - layout of older transformers
        return tuple(types)
    types.extend(cb for cb in INTEGRATION_TO_CALLBACK.values() if isinstance(cb, type))
    return tuple(types)


def holds(handler: Any, callback: Any) -> bool:
    """Whether ``handler`` calls ``callback``."""
    return handler is not None and any(cb is callback for cb in getattr(handler, "callbacks", ()))


def from_stack(callback: Any) -> tuple[Any, Any]:
    """The Trainer and the CallbackHandler that are calling ``callback`` now (either may be None)."""
    trainer_type = getattr(sys.modules.get("transformers.trainer"), "Trainer", None)
    handler = trainer = None
    frame: FrameType | None = sys._getframe(2)
    for _ in range(STACK_DEPTH):
        if frame is None:
            break
        obj = frame.f_locals.get("self")
        if handler is None and isinstance(obj, CallbackHandler) and holds(obj, callback):
            handler = obj
        if trainer_type is not None and isinstance(obj, trainer_type):
            trainer = obj
            break
        frame = frame.f_back
    if handler is None and trainer is not None and holds(getattr(trainer, "callback_handler", None), callback):
        handler = trainer.callback_handler
    return trainer, handler


class TrainGuard:
    """Stands in for ``trainer.train``: when training raises, bound callbacks stop measuring, then it re-raises."""

    def __init__(self, trainer: Any, inner: Any) -> None:
        self.trainer = trainer
        self.inner = inner  # an instance-level ``train`` already there, or None for the class's
        functools.update_wrapper(self, type(trainer).train)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run ``train``; on an exception, tell every bound callback before re-raising it."""
        train = self.inner if self.inner is not None else functools.partial(type(self.trainer).train, self.trainer)
        try:
            return train(*args, **kwargs)
        except BaseException as error:
            for cb in list(getattr(self.trainer.callback_handler, "callbacks", ())):
                if isinstance(getattr(cb, "binding", None), Binding):
                    cb.fail(error)
            raise


class Binding:
    """One callback's link to the Trainer's ``CallbackHandler``."""

    def __init__(self, callback: Bindable) -> None:
        self.callback = callback
        self.handler: Any = None
        self.emitting = False  # inside our own on_log: the callback must ignore it

    def bind(self, trainer: Any, handler: Any) -> None:
        """Stand ahead of the reporting callbacks in ``handler``; guard ``trainer.train``."""
        if handler is not None and holds(handler, self.callback):
            _BOUND[handler] = self.callback
            self.handler = handler
            self._move_ahead(handler)
        if trainer is not None and not isinstance(trainer.__dict__.get("train"), TrainGuard):
            trainer.train = TrainGuard(trainer, trainer.__dict__.get("train"))

    def bind_from_stack(self) -> None:
        """Bind to the Trainer and handler calling the callback now."""
        self.bind(*from_stack(self.callback))

    def adopt(self) -> Bindable:
        """At train begin: the instance that must measure (the user's, if the Trainer swapped in a copy)."""
        trainer, handler = from_stack(self.callback)
        if handler is None and holds(self.handler, self.callback):
            handler = self.handler
        original = _BOUND.get(handler) if handler is not None else None
        if original is not None and original is not self.callback and not holds(handler, original):
            handler.callbacks = [original if cb is self.callback else cb for cb in handler.callbacks]
            original.binding.bind(trainer, handler)
            return original
        if handler is None:
            log.warning(
                "co2cb: could not find the Trainer's callback handler: CO2 values reach trainer.state.log_history "
                "but not the report_to integrations. Call CO2Callback.attach(trainer) before training."
            )
        self.bind(trainer, handler)
        return self.callback

    def _move_ahead(self, handler: Any) -> None:
        callbacks = list(handler.callbacks)
        mine = next(i for i, cb in enumerate(callbacks) if cb is self.callback)
        first = next((i for i, cb in enumerate(callbacks) if isinstance(cb, reporting_types())), None)
        if first is not None and first < mine:
            callbacks.pop(mine)
            callbacks.insert(first, self.callback)
            handler.callbacks = callbacks  # a new list: a dispatch loop in progress keeps the old one

    def emit(self, args: Any, state: Any, control: Any, metrics: dict[str, float]) -> None:
        """Log ``metrics`` as ``Trainer.log`` does: into ``state.log_history``, then every callback's ``on_log``."""
        logs: dict[str, Any] = dict(metrics)
        if state.epoch is not None:
            logs["epoch"] = state.epoch
        state.log_history.append({**logs, "step": state.global_step})
        if self.handler is None:
            return
        should_log = control.should_log  # the handler's on_log clears it: the Trainer's own log must still happen
        self.emitting = True
        try:
            self.handler.on_log(args, state, control, logs)
        finally:
            self.emitting = False
            control.should_log = should_log


def refresh_saved_state(state: Any, name: str, value: dict[str, Any]) -> None:
    """Put callback ``name``'s state ``value`` into the Trainer's ``state`` now.

    Older transformers (4.41 checked) write into checkpoints the callback states taken when training
    started (only ``TrainerControl``'s is refreshed at a save); newer ones (5.x checked) refresh every
    callback's state at the save, after this.
    """
    stateful = getattr(state, "stateful_callbacks", None)
    if isinstance(stateful, dict) and not isinstance(stateful.get(name), list):
        stateful[name] = value


def add_missing_state(state: Any, name: str, make: Callable[[], dict[str, Any]]) -> None:
    """Give callback ``name`` an entry in ``state`` if it has none (``make()`` reads the meters: only then).

    A checkpoint written before the callback was added lacks its entry, and ``Trainer._save_checkpoint``
    would fail on it (transformers >= 4.41 keeps ``stateful_callbacks``).
    """
    stateful = getattr(state, "stateful_callbacks", None)
    if isinstance(stateful, dict) and name not in stateful:
        stateful[name] = make()


def saved_state(state: Any, name: str, attribute: str) -> dict[str, Any] | None:
    """The ``attribute`` that callback ``name`` saved in the checkpoint whose ``trainer_state.json`` is ``state``."""
    entry = (getattr(state, "stateful_callbacks", None) or {}).get(name)
    if isinstance(entry, list):
        entry = entry[0] if entry else None
    saved = (entry or {}).get("attributes", {}).get(attribute) if isinstance(entry, dict) else None
    return saved if isinstance(saved, dict) and saved.get("run_id") else None


def training_plan(state: Any) -> dict[str, Any]:
    """What the Trainer's ``state`` says it will run (steps, epochs, where it resumes), for the record."""
    import transformers

    return {
        "max_steps": state.max_steps,
        "num_train_epochs": state.num_train_epochs,
        "total_steps": state.max_steps,
        "start_step": state.global_step,
        "framework": f"transformers {transformers.__version__}",
    }


def exportable_state(options: dict[str, Any], log_steps: bool, totals: dict[str, Any]) -> dict[str, Any]:
    """The ``ExportableState`` the Trainer saves: the callback's JSON-ready arguments and the job's ``totals``.

    ``options`` are the ``TrainingMonitor`` arguments the callback keeps; its tracker options are
    flattened back into keyword arguments, and those JSON cannot hold (a meter object) are left out.
    """
    args = {k: v for k, v in options.items() if k != "tracker_options" and _jsonable(v)}
    args.update({k: v for k, v in options["tracker_options"].items() if _jsonable(v)})
    args["log_steps"] = log_steps
    args["log_detail"] = args.pop("detail")
    return {"args": args, "attributes": {STATE_ATTRIBUTE: totals}}


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
