"""``from co2cb.pytorch_lightning import CO2Callback`` for the ``pytorch_lightning`` package."""

try:
    import pytorch_lightning as _pl
except ImportError as e:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "co2cb.pytorch_lightning needs the 'pytorch_lightning' package: pip install pytorch-lightning "
        "(or use co2cb.lightning with the 'lightning' package)"
    ) from e

from co2cb.integrations.lightning import build_callback

CO2Callback = build_callback(_pl)

__all__ = ["CO2Callback"]
