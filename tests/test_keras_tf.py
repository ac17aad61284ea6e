"""Keras 3 on the TensorFlow backend: CO2Callback with the real History, CSVLogger and TensorBoard.

The training runs in a process of its own (tests/scripts/keras_train.py): Keras picks its backend at
import, and the rest of the suite imports torch. Here ``keras.callbacks.TensorBoard``'s own event files
are read back and checked against the run record too.
"""

from __future__ import annotations

from tests.scripts.keras_checks import KerasChecks, Trained, check_tensorboard, needs, trained_on

pytestmark = needs("tensorflow", "tensorflow")
trained = trained_on("tensorflow")


class TestTensorFlowBackend(KerasChecks):
    """Every shared check, on the TensorFlow backend."""


def test_keras_tensorboard_event_files_hold_the_co2_values(trained: Trained) -> None:
    result = trained.result("loggers")
    assert result["backend"] == "tensorflow"
    check_tensorboard(result["keras_tb"], result["history"], final=False)
    assert result["keras_tb"]["train"]["epoch_loss"]  # beside Keras' own scalars


def test_keras_tensorboard_and_callback_writer_agree(trained: Trained) -> None:
    result = trained.result("loggers")
    keras_tb, own = result["keras_tb"], result["own_tb"]
    for run, tags in own.items():
        for tag, points in tags.items():
            if tag.startswith(
                "epoch_co2cb/total_"
            ):  # the callback's writer also has the final total, after Keras' last epoch
                points = points[:-1]
            assert points == keras_tb[run][tag], (run, tag)
