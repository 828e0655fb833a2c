"""Multi-process training on PyTorch's own distributed engine (DDP), launched by ``torchrun``.

``torchrun --nproc_per_node=N script.py`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`setup` joins the process group from them (gloo on CPU,
nccl on CUDA). Nothing here is a home-made engine: these are thin helpers over
``torch.distributed``.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class ProcessInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes, its ``device``."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def default_device(local_rank: int = 0) -> torch.device:
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


def check_device(device: Any, what: str) -> torch.device | None:
    """``device`` as a :class:`torch.device` (``None`` stays ``None``: the default device), refused
    where torch cannot parse it or it is a CUDA device this machine does not have; ``what`` names
    the argument, e.g. ``"Trainer 'device'"``."""
    if device is None:
        return None
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{what} must be None, a torch.device or a device name such as 'cpu', 'cuda' or 'cuda:0', "
                         f"got {device!r}") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{what} is {device!r}, but no CUDA device is available (torch.cuda.is_available() is "
                             f"False); pass device='cpu', or leave device=None to use a GPU where there is one")
        if parsed.index is not None and parsed.index >= count:
            devices = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
            raise ValueError(f"{what} is {device!r}, but this machine has {count} CUDA device"
                             f"{'s' if count > 1 else ''} ({devices}); pick one of them, or leave device=None")
    return parsed


def setup(distributed: bool | None = None, device: str | torch.device | None = None) -> ProcessInfo:
    """Joins (or reuses) the process group when launched by ``torchrun``.

    Args:
        distributed (bool, optional): ``None`` joins when torchrun's variables are set;
            ``True`` requires them (a clear error otherwise); ``False`` runs one process.
        device (str or torch.device, optional): this process's device (default: its local
            CUDA device when there is one, else the CPU).
    """
    if distributed is None:
        distributed = launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1
    if not distributed:
        return ProcessInfo(device=torch.device(device) if device is not None else default_device())
    if not launched_by_torchrun():
        missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
        raise RuntimeError(f"Distributed training was asked for, but {missing} are not set: launch the script with "
                           f"`torchrun --nproc_per_node=N script.py ...`, or leave distributed off")
    local_rank = int(os.environ["LOCAL_RANK"])
    device = torch.device(device) if device is not None else default_device(local_rank)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(shutdown)
    return ProcessInfo(dist.get_rank(), local_rank, dist.get_world_size(), device)


def shutdown() -> None:
    """Leaves the process group (safe to call more than once)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all processes (``value`` itself in one process)."""
    if world_size() == 1:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / world_size()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable), in rank order."""
    if world_size() == 1:
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every process's ``x`` concatenated along dim 0, with gradients flowing back to each
    process's own part (for losses over the global batch, such as InfoNCE).

    Every process must pass the same shape: the engine's sampler pads the data to equal shares.
    """
    if world_size() == 1:
        return x
    from torch.distributed import _functional_collectives as collectives

    # The backward sums each part's gradients over the processes (reduce-scatter); with DDP's mean
    # of the parameter gradients, that gives the gradient of the global-batch loss. Newer torch
    # names the differentiable gather all_gather_single_autograd and deprecates the older name.
    gather = getattr(collectives, "all_gather_single_autograd", None) or collectives.all_gather_tensor_autograd
    return gather(x, 0, dist.group.WORLD)


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()
