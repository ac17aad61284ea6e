"""Keras 3 on the torch backend: CO2Callback with the real History, CSVLogger and its own TensorBoard writer.

The training runs in a process of its own (tests/scripts/keras_train.py): Keras picks its backend at
import. ``keras.callbacks.TensorBoard`` needs TensorFlow, so here the callback's ``tensorboard_dir``
writes the event files, and the process must never import TensorFlow, even where it is installed.
"""

from __future__ import annotations

import subprocess
import sys

from tests.scripts.keras_checks import ROOT, KerasChecks, Trained, needs, trained_on

pytestmark = needs("torch", "torch")
trained = trained_on("torch")


class TestTorchBackend(KerasChecks):
    """Every shared check, on the torch backend."""


def test_torch_backend_needs_no_tensorflow(trained: Trained) -> None:
    result = trained.result("loggers")
    assert result["backend"] == "torch"
    assert not result["tensorflow_imported_by_fit"]  # the callback's event files included
    assert result["keras_tb"] == {}


def test_clear_import_error_without_keras() -> None:
    code = "import sys; sys.modules['keras'] = None; import co2cb.keras"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode != 0
    assert "co2cb.keras needs Keras 3 and a backend: pip install 'co2cb[keras]'" in done.stderr
