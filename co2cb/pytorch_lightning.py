"""``from co2cb.pytorch_lightning import CO2Callback`` for the ``pytorch_lightning`` package."""

try:
    import pytorch_lightning as _pl
except ImportError as e:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "co2cb.pytorch_lightning needs the 'pytorch_lightning' package: pip install pytorch-lightning "
        "(or use co2cb.lightning with the 'lightning' package)"
    ) from e

from co2cb.integrations.lightning import CO2CallbackMixin


class CO2Callback(CO2CallbackMixin, _pl.Callback):
    """Energy and CO2 per epoch and per logging step in the trainer's loggers (arguments: :class:`CO2CallbackMixin`)."""

    __doc__ = CO2CallbackMixin.__doc__  # the whole text for help() and IDEs
    framework = "pytorch_lightning"


__all__ = ["CO2Callback"]
