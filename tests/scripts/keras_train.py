"""Real Keras training with co2cb's CO2Callback, in a process of its own (Keras picks its backend at import).

Run by tests/test_keras_tf.py and tests/test_keras_torch.py as
``KERAS_BACKEND=... python tests/scripts/keras_train.py OUT SCENARIO...``. Each scenario trains a
tiny model on generated data in ``OUT/SCENARIO/`` and writes ``OUT/SCENARIO/result.json``: History,
what plain Keras callbacks saw, the TensorBoard event files read back with tensorboard's
``EventAccumulator``, and the run folders; the tests compare them with the run records. The
``crash`` scenario runs last and lets its exception end the interpreter, as a failing script's does.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import keras
import numpy as np

import co2cb
from co2cb.keras import CO2Callback
from co2cb.training import tensorboard
from tests.fakes.meters import ConstantPower, RaisingMeter

BACKEND = keras.backend.backend()
WATTS = 50.0
INTENSITY = 100.0  # gCO2e/kWh
EPOCHS = 3
SAMPLES, BATCH = 512, 32  # 12 training and 4 validation batches per epoch with validation_split=0.25
LOG_STEPS = 4
SCORE_STEP = 1.5  # AddScore's val_score grows by this much each epoch


class Seen(keras.callbacks.Callback):
    """A plain Keras callback that records what it is given (no mock: it runs inside the real fit)."""

    def __init__(self) -> None:
        super().__init__()
        self.train_begins = 0
        self.epoch_keys: list[list[str]] = []

    def on_train_begin(self, logs: Any = None) -> None:
        self.train_begins += 1

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.epoch_keys.append(sorted(logs or {}))


class BatchSeen(keras.callbacks.Callback):
    """Records the co2cb values of each training batch's logs; async-safe, so Keras' dispatch stays as it is."""

    async_safe = True

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.batches: list[list[Any]] = []  # [epoch, batch, {key: value}]

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        values = {k: v for k, v in (logs or {}).items() if k.startswith("co2cb/")}
        if values:
            self.batches.append([self.epoch, batch, values])


class AddScore(keras.callbacks.Callback):
    """Adds ``val_score`` to the epoch logs (a user metric computed by a callback listed before CO2Callback)."""

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        logs["val_score"] = SCORE_STEP * epoch


class RaiseAt(keras.callbacks.Callback):
    """Raises in on_epoch_end of one epoch (a user error that makes fit raise)."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if epoch == self.epoch:
            raise RuntimeError("user callback failed")


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((SAMPLES, 8), dtype=np.float32)
    return x, x.sum(axis=1, keepdims=True)


def model() -> keras.Model:
    # (no keras.utils.set_random_seed: it imports TensorFlow where installed, whatever the backend)
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    m.compile(optimizer="sgd", loss="mse")
    return m


def options(out: Path, **extra: Any) -> dict[str, Any]:
    return {
        "meters": [ConstantPower(WATTS)],
        "intensity": INTENSITY,
        "pue": 1.0,
        "interval_s": 0.05,
        "output_dir": str(out / "runs"),
        **extra,
    }


def read_tensorboard(logdir: Path) -> dict[str, dict[str, list[list[float]]]]:
    """Every scalar of every run under ``logdir``: ``{run: {tag: [[step, value], ...]}}``."""
    if not logdir.is_dir():
        return {}
    if "tensorflow" not in sys.modules:  # read with tensorboard's TF-free stub, as a torch/JAX user would
        import types

        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.util import tensor_util

    runs: dict[str, dict[str, list[list[float]]]] = {}
    for run in sorted(p for p in logdir.iterdir() if p.is_dir()):
        acc = ea.EventAccumulator(str(run), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
        acc.Reload()
        tags = runs.setdefault(run.name, {})
        for tag in acc.Tags()["tensors"]:
            values = [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
            if all(v.dtype.kind == "f" and v.size == 1 for _, v in values):  # scalars, not Keras' model graph
                tags[tag] = [[step, float(v)] for step, v in values]
        for tag in acc.Tags()["scalars"]:
            tags[tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
    return runs


def read_texts(logdir: Path) -> dict[str, str]:
    """The text summaries in one run folder: ``{tag: text}``."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(logdir), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    texts = {}
    for tag in acc.Tags()["tensors"]:
        (event,) = acc.Tensors(tag)[-1:]
        strings = event.tensor_proto.string_val
        if strings:
            texts[tag] = strings[0].decode()
    return texts


def run_folders(out: Path) -> list[str]:
    runs = out / "runs"
    return sorted(str(p) for p in runs.iterdir()) if runs.is_dir() else []


def wait_for_summary(folder: Path, timeout_s: float = 10.0) -> float:
    """Seconds until the run record in ``folder`` has its summary line (the run was stopped)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if any(r["type"] == "summary" for r in co2cb.read_records(folder)):
            return time.perf_counter() - start
        time.sleep(0.02)
    raise AssertionError(f"no summary in {folder} after {timeout_s} s")


# ---------------------------------------------------------------------------------------------- scenarios
def loggers(out: Path) -> dict[str, Any]:
    """CO2Callback listed after CSVLogger, TensorBoard and plain callbacks; validation; per-step values."""
    x, y = data()
    m = model()
    before, after, batches = Seen(), Seen(), BatchSeen()
    co2 = CO2Callback(
        run_name="keras-loggers",
        tags={"model": "dense", "backend": BACKEND},
        monitor=["val_loss", "loss", "val_score"],
        log_steps=LOG_STEPS,
        tensorboard_dir=str(out / "own_tb"),
        **options(out),
    )
    callbacks: list[keras.callbacks.Callback] = [keras.callbacks.CSVLogger(str(out / "log.csv")), before, AddScore()]
    if BACKEND == "tensorflow":  # keras.callbacks.TensorBoard imports TensorFlow whatever the backend
        callbacks.insert(0, keras.callbacks.TensorBoard(str(out / "keras_tb"), update_freq=LOG_STEPS))
    callbacks += [co2, after, batches]
    history = m.fit(x, y, epochs=EPOCHS, batch_size=BATCH, validation_split=0.25, verbose=2, callbacks=callbacks)
    tensorflow_after_fit = "tensorflow" in sys.modules
    windows_before = len((Path(run_folders(out)[0]) / "run.jsonl").read_text().splitlines())
    m.evaluate(x, y, batch_size=BATCH, verbose=0, callbacks=[co2])  # outside fit: must change nothing
    windows_after = len((Path(run_folders(out)[0]) / "run.jsonl").read_text().splitlines())
    async_train = keras.callbacks.CallbackList([CO2Callback(log_steps=1)], model=m)._async_train
    return {
        "history": history.history,
        "epochs": history.epoch,
        "seen_before": {"train_begins": before.train_begins, "epoch_keys": before.epoch_keys},
        "seen_after": {"train_begins": after.train_begins, "epoch_keys": after.epoch_keys},
        "batch_logs": sorted(batches.batches, key=lambda b: (b[0], b[1])),
        "tensorflow_imported_by_fit": tensorflow_after_fit,
        "record_lines_unchanged_by_evaluate": windows_before == windows_after,
        "async_train_with_callback": async_train,
        "keras_tb": read_tensorboard(out / "keras_tb"),
        "own_tb": read_tensorboard(out / "own_tb"),
        "own_tb_text": read_texts(out / "own_tb" / "train"),
        "runs": run_folders(out),
    }


def budget(out: Path) -> dict[str, Any]:
    """A carbon budget passed stops training through model.stop_training: at an epoch end, then at a step log."""
    x, y = data()
    co2 = CO2Callback(run_name="keras-budget", budget_kg=1e-12, **options(out))
    history = model().fit(x, y, epochs=5, batch_size=BATCH, verbose=0, callbacks=[co2])
    steps = CO2Callback(run_name="keras-budget-steps", budget_kg=1e-12, log_steps=2, **options(out))
    step_history = model().fit(x, y, epochs=5, batch_size=BATCH, verbose=0, callbacks=[steps])
    return {
        "history": history.history,
        "epochs": history.epoch,
        "step_epochs": step_history.epoch,
        "runs": run_folders(out),
    }


def failures(out: Path) -> dict[str, Any]:
    """A meter that raises, a TensorBoard folder that cannot be made, writes that fail, a fit that raises."""
    x, y = data()
    blocker = out / "not_a_folder"
    blocker.write_text("a file where the TensorBoard folder should go")
    meter = CO2Callback(
        run_name="keras-meter",
        tensorboard_dir=str(blocker / "tb"),
        **options(out, meters=[ConstantPower(WATTS), RaisingMeter(good_reads=3)]),
    )
    m = model()
    meter_history = m.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0, callbacks=[meter])

    def disk_full(self: Any, values: Any, step: int) -> None:
        raise OSError(28, "No space left on device")

    writes = CO2Callback(run_name="keras-writes", tensorboard_dir=str(out / "tb"), log_steps=2, **options(out))
    scalars = tensorboard.EventWriter.scalars
    tensorboard.EventWriter.scalars = disk_full  # every event write fails, as on a full disk
    try:
        writes_history = m.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0, callbacks=[writes])
    finally:
        tensorboard.EventWriter.scalars = scalars

    co2 = CO2Callback(run_name="keras-raises", **options(out))
    raised, stopped_after_s = "", None
    try:
        m.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0, callbacks=[co2, RaiseAt(1)])
    except RuntimeError as e:  # the caller handles the error: the record must say failed, with it
        raised = str(e)
        stopped_after_s = wait_for_summary(co2.tracker.run_folder)
    again = m.fit(x, y, epochs=2, batch_size=BATCH, verbose=0, callbacks=[co2])
    return {
        "history": meter_history.history,
        "epochs": meter_history.epoch,
        "writes_history": writes_history.history,
        "raised": raised,
        "stopped_after_s": stopped_after_s,
        "history_after_error": again.history,
        "runs": run_folders(out),
    }


def backup(out: Path) -> dict[str, Any]:
    """A fit that raises after epoch 1, resumed by BackupAndRestore: the second run continues the first's totals.

    The run that raises fails after co2cb saved its state but before BackupAndRestore saved (the user's
    callback comes first), as a crash between the two would: co2cb's state is one epoch ahead of the backup.
    """
    x, y = data()
    folder = out / "backup"
    m = model()
    first = CO2Callback(run_name="keras-backup", **options(out))
    restore = keras.callbacks.BackupAndRestore
    try:
        m.fit(x, y, epochs=4, batch_size=BATCH, verbose=0, callbacks=[first, RaiseAt(2), restore(str(folder))])
    except RuntimeError:
        wait_for_summary(first.tracker.run_folder)
    saved = [json.loads((folder / name).read_text()) for name in ("co2cb_state.previous.json", "co2cb_state.json")]
    second = CO2Callback(run_name="keras-backup", **options(out))
    history = m.fit(x, y, epochs=4, batch_size=BATCH, verbose=0, callbacks=[second, restore(str(folder))])
    return {"history": history.history, "saved": saved, "backup_left": folder.exists(), "runs": run_folders(out)}


def hooks(out: Path) -> dict[str, Any]:
    """A custom loop calling the hooks itself (no CallbackList), whose first run never calls on_train_end."""
    co2 = CO2Callback(run_name="keras-hooks", **options(out))
    co2.set_model(model())
    co2.set_params({"epochs": 1, "steps": 2, "verbose": 0})
    for _ in range(2):  # the second train begin closes the run the first left open
        co2.on_train_begin()
        co2.on_epoch_begin(0)
        co2.on_train_batch_begin(0)
        co2.on_train_batch_end(0, {})
        logs: dict[str, Any] = {}
        co2.on_epoch_end(0, logs)
    co2.on_train_end({})
    return {"epoch_logs": logs, "runs": run_folders(out)}


def settings(out: Path) -> dict[str, Any]:
    """Invalid options are refused at construction with what to change; save=False keeps no run folder."""
    errors = {}
    for label, kwargs in {
        "log_steps": {"log_steps": -1},
        "budget_kg": {"budget_kg": 0},
        "budget_on": {"budget_on": "epoch"},
        "pids": {"pids": [1]},
        "interval_s": {"interval_s": 1000},
    }.items():
        try:
            CO2Callback(**kwargs)
        except ValueError as e:
            errors[label] = f"{type(e).__name__}: {e}"
    x, y = data()
    co2 = CO2Callback(save=False, **options(out))
    history = model().fit(x, y, epochs=1, batch_size=BATCH, verbose=0, callbacks=[co2])
    detail = CO2Callback(save=False, log_detail=True, **options(out))
    detail_history = model().fit(x, y, epochs=1, batch_size=BATCH, validation_split=0.25, verbose=0, callbacks=[detail])
    return {
        "errors": errors,
        "history": history.history,
        "detail_history": detail_history.history,
        "run_folder": str(co2.tracker.run_folder) if co2.tracker.run_folder else None,
        "runs": run_folders(out),
    }


class Slow(keras.callbacks.Callback):
    """Slower training and validation batches (for counters that move in ticks); sleeps on the fit's thread."""

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        time.sleep(0.15)

    def on_test_batch_begin(self, batch: int, logs: Any = None) -> None:
        time.sleep(0.1)


def truth(out: Path) -> dict[str, Any]:
    """Known truth at the default interval: a RAPL counter at 60 W moving every 10 ms (machine scope), then the
    fake pynvml's GPU at a varying power; every step log's interval (the monitor's marks) is recorded."""
    import pytest

    from tests.fakes import FakePynvml
    from tests.fakes.powercap import FakePowercap, TickingCounter
    from tests.known_truth import sine_gpu, spy_step_logs

    x, y = data()
    found: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as patch:
        logs = spy_step_logs(patch)
        powercap = FakePowercap(out / "powercap")
        rapl = CO2Callback(
            scope="machine", powercap_root=str(powercap.root), components=("cpu",), log_steps=2, **truth_options(out)
        )
        with TickingCounter(powercap, watts=60.0, tick_s=0.01) as counter:
            fitted = model().fit(
                x, y, epochs=2, batch_size=BATCH, validation_split=0.25, verbose=0, callbacks=[rapl, Slow()]
            )
        found["rapl"] = {
            "t0": counter.t0,
            "max_lag_s": counter.max_lag_s,
            "logs": [[log.start, log.end, log.values] for log in logs],
            "history": fitted.history,
            "interval_s": rapl.tracker.config.interval_s,
        }
        logs.clear()
        gpu = sine_gpu()
        patch.setitem(sys.modules, "pynvml", FakePynvml([gpu]))
        for absent in ("amdsmi", "zeus_apple_silicon"):
            patch.setitem(sys.modules, absent, None)
        patch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        nvml = CO2Callback(gpus=[0], components=("gpu",), log_steps=2, **truth_options(out))
        fitted = model().fit(
            x, y, epochs=2, batch_size=BATCH, validation_split=0.25, verbose=0, callbacks=[nvml, Slow()]
        )
        found["nvml"] = {
            "t0": gpu.power.t0,
            "logs": [[log.start, log.end, log.values] for log in logs],
            "history": fitted.history,
            "provenance": nvml.tracker.meter_set.meters[0].info.provenance.value,
        }
    found["runs"] = run_folders(out)
    return found


def truth_options(out: Path) -> dict[str, Any]:
    """Default settings (interval included), a known intensity."""
    return {"intensity": INTENSITY, "pue": 1.0, "output_dir": str(out / "runs")}


def crash(out: Path) -> None:
    """A fit whose exception nobody catches: it ends the interpreter (the result is the run record alone)."""
    x, y = data()
    co2 = CO2Callback(run_name="keras-crash", **options(out))
    model().fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0, callbacks=[co2, RaiseAt(1)])


SCENARIOS = {
    "loggers": loggers,
    "budget": budget,
    "failures": failures,
    "hooks": hooks,
    "backup": backup,
    "settings": settings,
    "truth": truth,
}


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = Path(sys.argv[1])
    failed = 0
    for name in (n for n in sys.argv[2:] if n != "crash"):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        print(f"=== scenario {name} ({BACKEND})", flush=True)
        try:
            result = SCENARIOS[name](folder)
        except Exception:  # noqa: BLE001 - report every scenario, then fail
            traceback.print_exc()
            failed += 1
            continue
        result["backend"] = BACKEND
        (folder / "result.json").write_text(json.dumps(result, indent=1, default=float))
        print(f"=== scenario {name} done", flush=True)
    sys.stdout.flush()
    if "crash" in sys.argv[2:] and not failed:
        folder = out / "crash"
        folder.mkdir(parents=True, exist_ok=True)
        print(f"=== scenario crash ({BACKEND})", flush=True)
        crash(folder)  # raises: the interpreter ends as a failing script's does, exit status 1
    os._exit(1 if failed else 0)  # skip slow interpreter teardown of TensorFlow/torch


if __name__ == "__main__":
    raise SystemExit(main())
