"""Process-group setup for ``torchrun`` (any number of processes and nodes) and single-process runs.

torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; without them the run is a single
process and needs no launcher. NCCL is used when every process has a GPU, gloo otherwise.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from hap3d.config import TrainConfig
from hap3d.utils import Hap3dError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
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


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for a device setting (auto, cpu, cuda, cuda:N, mps), checked to exist here."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise Hap3dError(f"device {name!r} is not a device name (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise Hap3dError(f"device {name!r}: {why}; use --device cpu (or auto)")
        if dev.index >= torch.cuda.device_count():
            raise Hap3dError(f"device {name!r}: only {torch.cuda.device_count()} GPU(s) are visible "
                             f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise Hap3dError(f"device {name!r}: MPS is not available here; use --device cpu (or auto)")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise Hap3dError(f"device {name!r}: hap3d runs on cpu, cuda or mps")
    return dev


def init_distributed(device: str = "auto", timeout_minutes: float = TrainConfig.dist_timeout_minutes) -> DistInfo:
    """Join the torchrun process group if launched by torchrun; otherwise describe a single process.

    ``timeout_minutes`` bounds every collective: it must outlast rank 0's evaluation, during which the other
    processes wait at a barrier.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=timeout_minutes))
    return DistInfo(rank, local, world, dev)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one): torch's own measure when it warns
    that a DataLoader has more workers than the machine can run."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


_ANNOUNCED: set[tuple[int, int]] = set()


def loader_workers(requested: int, announce: bool = True) -> int:
    """``requested`` DataLoader workers capped at :func:`usable_cpus`: more only compete for the same cores (and make
    torch warn every epoch). ``announce``: say so once on stdout and in the log (one process of a run suffices)."""
    cpus = usable_cpus()
    if requested <= cpus:
        return requested
    if announce and (requested, cpus) not in _ANNOUNCED:  # once per process, not at every evaluation
        _ANNOUNCED.add((requested, cpus))
        msg = f"data.num_workers={requested} capped at {cpus} loader workers: this process may use {cpus} CPUs"
        print(msg)
        log.info(msg)
    return cpus


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over processes (identity in a single process)."""
    if not info.distributed:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Average a tensor over processes (identity in a single process)."""
    return all_reduce_sum(t, info) / info.world_size if info.distributed else t


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj``, in rank order (``[obj]`` in a single process)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
