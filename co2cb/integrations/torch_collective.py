"""torch.distributed for the Lightning and HF adapters: the job's collective and each process's CUDA devices."""

from __future__ import annotations

from typing import Any

from co2cb.training.collective import SingleProcess


class TorchCollective:
    """Exchange small Python objects between ranks with ``torch.distributed.all_gather_object``."""

    def __init__(self, dist: Any) -> None:
        self._dist = dist
        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        out: list[Any] = [None] * self.world_size
        self._dist.all_gather_object(out, value)
        return out


def collective_for(world_size: int) -> TorchCollective | SingleProcess:
    """torch.distributed's collective when a job of ``world_size`` > 1 has initialised it, else a single process."""
    import torch.distributed as dist

    if world_size > 1 and dist.is_available() and dist.is_initialized():
        return TorchCollective(dist)
    return SingleProcess()


def cuda_devices(device: Any, one_process_many_gpus: bool = False) -> tuple[list[int] | None, bool]:
    """The CUDA ordinals a process trains on (None: every visible GPU), and whether it uses a GPU at all.

    Args:
        device: The framework's ``torch.device`` for this process.
        one_process_many_gpus: One process drives every visible GPU (``DataParallel``).
    """
    if device.type == "mps":  # Apple silicon: the package's GPU (and ANE) energy, whatever the device index
        return None, True
    if device.type != "cuda":
        return None, False
    if one_process_many_gpus:
        return None, True
    return [device.index or 0], True
