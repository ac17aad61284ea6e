"""``from co2cb.lightning import CO2Callback`` for the ``lightning`` package (``pip install co2cb[lightning]``)."""

try:
    import lightning.pytorch as _pl
except ImportError as e:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "co2cb.lightning needs the 'lightning' package: pip install 'co2cb[lightning]' "
        "(or use co2cb.pytorch_lightning with the 'pytorch_lightning' package)"
    ) from e

from co2cb.integrations.lightning import CO2CallbackMixin


class CO2Callback(CO2CallbackMixin, _pl.Callback):
    """Energy and CO2 per epoch and per logging step in the trainer's loggers (arguments: :class:`CO2CallbackMixin`)."""

    __doc__ = CO2CallbackMixin.__doc__  # the whole text for help() and IDEs
    framework = "lightning.pytorch"


__all__ = ["CO2Callback"]
