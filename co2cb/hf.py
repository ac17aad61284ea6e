"""``from co2cb.hf import CO2Callback`` for the Hugging Face ``Trainer`` (``pip install 'co2cb[hf]'``).

Importing this module does not import transformers; the callback class is loaded on first use.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from co2cb.integrations.hf import CO2Callback

__all__ = ["CO2Callback"]

_MISSING = (
    "co2cb.hf needs the 'transformers' and 'accelerate' packages: pip install 'co2cb[hf]' "
    "(transformers>=4.40, accelerate>=0.30, tensorboard>=2.14)"
)


def _transformers_missing() -> bool:
    if "transformers" in sys.modules:
        return sys.modules["transformers"] is None
    try:
        return importlib.util.find_spec("transformers") is None
    except (ImportError, ValueError):
        return True


if _transformers_missing():
    raise ImportError(_MISSING)


def __getattr__(name: str) -> Any:
    if name == "CO2Callback":
        try:
            from co2cb.integrations.hf import CO2Callback
        except ImportError as e:
            raise ImportError(f"{_MISSING} ({e})") from e
        globals()["CO2Callback"] = CO2Callback
        return CO2Callback
    raise AttributeError(f"module 'co2cb.hf' has no attribute {name!r}")
