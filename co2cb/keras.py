"""``from co2cb.keras import CO2Callback`` for Keras 3 on any backend.

Install with ``pip install co2cb[keras]``; its ``tensorboard_dir`` also needs ``tensorboard``.

Importing :mod:`co2cb` does not import Keras; importing this module does (and so the Keras backend
chosen by ``KERAS_BACKEND``).
"""

try:
    import keras as _keras
except ImportError as e:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "co2cb.keras needs Keras 3 and a backend: pip install 'co2cb[keras]' and one of tensorflow, torch or jax"
    ) from e

if int(str(getattr(_keras, "__version__", "0")).split(".")[0]) < 3:  # pragma: no cover - tf.keras 2 / Keras 2
    raise ImportError(
        f"co2cb.keras needs Keras 3 (found keras {_keras.__version__}): pip install 'keras>=3' "
        "(tf.keras of TensorFlow < 2.16 is Keras 2 and is not supported)"
    )

from co2cb.integrations.keras import CO2Callback

__all__ = ["CO2Callback"]
