"""The :class:`co2cb.training.monitor.Collective` of torch.distributed jobs, shared by the Lightning and HF adapters."""

from __future__ import annotations

from typing import Any


class TorchCollective:
    """Exchange small Python objects between ranks with ``torch.distributed.all_gather_object``."""

    def __init__(self, dist: Any) -> None:
        self._dist = dist
        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()

    def gather(self, value: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        self._dist.all_gather_object(out, value)
        return out
