"""TensorBoard event files written with the ``tensorboard`` package alone, without TensorFlow.

Any adapter can use it for a framework whose own TensorBoard logger is missing or needs TensorFlow
(Keras on the torch and JAX backends). Values are laid out as ``keras.callbacks.TensorBoard`` lays
out epoch logs: ``train``/``validation`` runs, ``epoch_``/``batch_`` tags.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from co2cb.training.guard import guarded
from co2cb.training.provenance import as_markdown

VAL_PREFIX = "val_"


class EventWriter:
    """TensorBoard event files written with the ``tensorboard`` package alone (no TensorFlow).

    Each value is written as ``tf.summary.scalar`` writes it (a float32 scalar tensor with the
    scalars plugin's metadata), through tensorboard's ``RecordWriter`` over a plain file: nothing
    here imports TensorFlow, even where it is installed (tensorboard's ``EventFileWriter`` would).
    """

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
        from tensorboard.plugins.scalar import metadata
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        self._tensor, self._shape = tensor_pb2.TensorProto, tensor_shape_pb2.TensorShapeProto
        self._float = types_pb2.DT_FLOAT
        self._metadata = metadata.create_summary_metadata(display_name="", description="")
        self._tags: set[str] = set()  # tags whose metadata is written (once per tag, as TensorFlow does)
        os.makedirs(logdir, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{id(self)}.co2cb"
        self.path = os.path.join(logdir, name)
        self._records = RecordWriter(open(self.path, "wb"))  # noqa: SIM115 - closed by close()
        self._write(self._event(wall_time=time.time(), file_version="brain.Event:2"))

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Write scalars ``tag -> value`` at ``step`` and flush."""
        if not values:
            return
        summary = self._summary()
        for tag, v in values.items():
            tensor = self._tensor(dtype=self._float, tensor_shape=self._shape(), float_val=[float(v)])
            value = summary.value.add(tag=tag, tensor=tensor)
            if tag not in self._tags:
                self._tags.add(tag)
                value.metadata.CopyFrom(self._metadata)
        self._write(self._event(wall_time=time.time(), step=int(step), summary=summary))

    def text(self, tag: str, markdown: str, step: int = 0) -> None:
        """Write a text summary (TensorBoard's text dashboard renders Markdown) at ``step`` and flush."""
        from tensorboard.plugins.text.summary_v2 import text_pb

        self._write(self._event(wall_time=time.time(), step=int(step), summary=text_pb(tag, markdown)))

    def hparams(self, values: Mapping[str, str | float]) -> None:
        """Write hyperparameters (strings or numbers) for TensorBoard's HParams dashboard, and flush."""
        from tensorboard.plugins.hparams.summary_v2 import hparams_pb

        self._write(self._event(wall_time=time.time(), step=0, summary=hparams_pb(dict(values))))

    def _write(self, event: Any) -> None:
        self._records.write(event.SerializeToString())
        self._records.flush()

    def close(self) -> None:
        """Close the event file(s)."""
        if not self._records.closed:
            self._records.close()


class TensorBoardWriter:
    """The co2cb scalars laid out as ``keras.callbacks.TensorBoard`` lays out epoch logs.

    ``logdir/train`` gets ``epoch_<key>`` at step ``epoch`` and ``batch_<key>`` at the global batch;
    ``logdir/validation`` gets ``val_*`` keys without their prefix, so train and validation share a chart.
    """

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        self.logdir = os.fspath(logdir)
        os.makedirs(self.logdir, exist_ok=True)  # a folder that cannot be made fails now, at train begin
        self._runs: dict[str, EventWriter] = {}

    def _run(self, name: str) -> EventWriter:
        if name not in self._runs:
            self._runs[name] = EventWriter(os.path.join(self.logdir, name))
        return self._runs[name]

    def epoch(self, logs: Mapping[str, float], epoch: int) -> None:
        """Write epoch logs at step ``epoch`` (``val_`` keys go to the validation run)."""
        train = {f"epoch_{k}": v for k, v in logs.items() if not k.startswith(VAL_PREFIX)}
        val = {f"epoch_{k[len(VAL_PREFIX) :]}": v for k, v in logs.items() if k.startswith(VAL_PREFIX)}
        if train:
            self._run("train").scalars(train, epoch)
        if val:
            self._run("validation").scalars(val, epoch)

    def batch(self, logs: Mapping[str, float], step: int) -> None:
        """Write batch logs at the global batch ``step``."""
        self._run("train").scalars({f"batch_{k}": v for k, v in logs.items()}, step)

    def provenance(self, facts: Mapping[str, str | float], markdown: str) -> None:
        """What the figures rest on, in the ``train`` run: as hparams and as a text summary (``co2cb/provenance``)."""
        run = self._run("train")
        run.hparams(facts)
        run.text("co2cb/provenance", markdown)

    def close(self) -> None:
        """Close the event file(s)."""
        for writer in self._runs.values():
            writer.close()


class TensorBoardOutput:
    """An adapter's ``tensorboard_dir`` during one fit, which never raises.

    Opened at the fit's start with the provenance, written at epochs, closed at its end. Step logs are
    held in memory and written with the next epoch (or at the close): no file write on a training step.
    A folder that cannot be made or a full disk gives one warning per method (``open``, ``write``,
    ``close``), and training goes on without it.
    """

    def __init__(self) -> None:
        self._writer: TensorBoardWriter | None = None
        self._last_epoch: int | None = None  # the last epoch written: the fit's final totals go there
        self._held: list[tuple[Mapping[str, float], int]] = []  # step logs not written yet

    @guarded
    def open(self, logdir: str | os.PathLike[str], facts: Mapping[str, str | float]) -> None:
        """Start writing into ``logdir`` (:class:`TensorBoardWriter`'s layout), the provenance first."""
        self.close()
        self._writer = TensorBoardWriter(logdir)
        self._writer.provenance(facts, as_markdown(facts))

    def hold(self, values: Mapping[str, float], step: int) -> None:
        """Keep step logs at the global batch ``step`` for the next :meth:`write` (no I/O: the step's hot path)."""
        if self._writer is not None:
            self._held.append((values, step))

    @guarded
    def write(self, values: Mapping[str, float], step: int) -> None:
        """Write the held step logs, then epoch logs at epoch ``step``."""
        if self._writer is None:
            return
        self._write_held(self._writer)
        self._last_epoch = step
        self._writer.epoch(values, step)

    def _write_held(self, writer: TensorBoardWriter) -> None:
        held, self._held = self._held, []
        for values, step in held:
            writer.batch(values, step)

    def write_final(self, values: Mapping[str, float]) -> None:
        """Write the fit's final values at the last epoch written (nothing if no epoch was)."""
        if self._last_epoch is not None:
            self.write(values, self._last_epoch)

    @guarded
    def close(self) -> None:
        """Write the held step logs and close the event files; the next :meth:`open` starts a new fit."""
        writer, self._writer, self._last_epoch = self._writer, None, None
        if writer is not None:
            try:
                self._write_held(writer)
            finally:  # a full disk: the files are closed all the same
                writer.close()
