"""Several processes, one run: DDP (default) or FSDP2 (``--fsdp``) under ``torchrun``.

``torchrun --nproc_per_node=N -m training.core.train ...`` sets ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK``; :func:`setup` then joins the process group (``nccl`` on GPUs, ``gloo`` on the CPU)
and gives each process its device ``cuda:LOCAL_RANK``. A caller that already initialised
``torch.distributed`` (a test, another launcher) is used as is.

What every rank does, and what only rank 0 does (``train.py`` reads top to bottom with these):

- ``--batch-size`` stays the *global* micro-batch: each batch of row indices is split across the
  ranks (:func:`shard`), rank ``r`` takes rows ``r, r+N, ...``. The loss of a shard is scaled by
  its share of the rows, so the averaged gradient equals the single-process one and N processes
  follow the same optimisation as one (same steps, same learning-rate schedule). A rank whose
  shard is empty (a last batch smaller than N) runs a zero-weight row: collectives need every
  rank in every forward and backward.
- KTO's KL reference point ``z0`` is the mean over the whole batch, all ranks (:func:`global_mean`).
- Metrics are row-weighted means over all ranks (``objective.aggregate`` with
  :func:`all_reduce_sum`); only rank 0 prints and
  writes them, writes checkpoints, the reference cache and the final model; the others wait.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

PR_SET_PDEATHSIG = 1


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we called init_process_group, so we destroy it

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_name: str = "") -> tuple[Dist, torch.device]:
    """Join the process group when launched by torchrun; returns the rank info and the device."""
    wants_cuda = device_name.startswith("cuda") or (not device_name and torch.cuda.is_available())
    if dist.is_available() and dist.is_initialized():
        d = Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if wants_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if wants_cuda else "gloo")
        d = Dist(dist.get_rank(), dist.get_world_size(), local, owns_group=True)
    else:
        return Dist(), torch.device(device_name or ("cuda" if wants_cuda else "cpu"))
    if wants_cuda:
        torch.cuda.set_device(d.local_rank)
        return d, torch.device("cuda", d.local_rank)
    return d, torch.device("cpu")


def die_with_parent() -> None:
    """With ``PREFLOOP_DIE_WITH_PARENT=1`` (set by the platform's runner), ask Linux to SIGKILL
    this process when its parent (torchrun) dies: torchrun starts each rank in a session of its
    own and cannot forward a SIGKILL, so without this a killed launcher leaves ranks running."""
    if os.environ.get("PREFLOOP_DIE_WITH_PARENT") != "1" or not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


def teardown(d: Dist) -> None:
    if d.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def broadcast_object(obj, d: Dist):
    """Rank 0's ``obj`` on every rank (small Python objects: decisions, cache hits)."""
    if not d.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(idx: list[int], d: Dist) -> tuple[list[int], bool]:
    """This rank's rows of a global batch, and whether they count (False: a zero-weight
    stand-in row, for a batch with fewer rows than ranks)."""
    mine = idx[d.rank :: d.world]
    return (mine, True) if mine else (idx[:1], False)


def all_reduce_sum(values: list[float], d: Dist, device: torch.device) -> list[float]:
    if not d.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def global_mean(x: torch.Tensor, counts: bool, d: Dist) -> torch.Tensor:
    """Mean of ``x`` over all ranks' elements, ``(1,)``; a stand-in passes ``counts=False``."""
    x = x.detach().float()
    total = torch.stack([x.sum() if counts else x.new_zeros(()), x.new_tensor(x.numel() * counts)])
    if d.enabled:
        dist.all_reduce(total)
    return (total[0] / total[1].clamp(min=1)).view(1)


def wrap(head: torch.nn.Module, d: Dist, device: torch.device, fsdp: bool) -> torch.nn.Module:
    """DDP, or FSDP2 with one shard group per decoder layer plus the root (embeddings, head)."""
    if not d.enabled:
        return head
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        layer_types = set(getattr(head.model, "_no_split_modules", None) or ())
        for module in head.model.modules():
            if type(module).__name__ in layer_types:
                fully_shard(module)
        return fully_shard(head)
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    # Rotary inv_freq is a buffer every rank computes itself: nothing to sync each forward
    # (torch 2.13 renamed the switch; 2.11 knows only the old name).
    params = inspect.signature(DDP.__init__).parameters
    sync = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    return DDP(head, device_ids=ids, **{sync: False})


def no_grad_sync(model: torch.nn.Module, sync: bool):
    """Skip the gradient all-reduce on micro-batches before the last one of an accumulation."""
    if sync:
        return contextlib.nullcontext()
    if hasattr(model, "no_sync"):  # DDP
        return model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2

        @contextlib.contextmanager
        def unsynced():
            model.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                model.set_requires_gradient_sync(True)

        return unsynced()
    return contextlib.nullcontext()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The ``LogpsHead`` inside DDP (FSDP2 shards in place: the module is its own wrapper)."""
    return getattr(model, "module", model)


def is_fsdp(model: torch.nn.Module) -> bool:
    return hasattr(model, "set_requires_gradient_sync") and not hasattr(model, "no_sync")


def clip_grad_norm(params, max_norm: float) -> float:
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor
        norm = norm.full_tensor()
    return float(norm)


def full_state_dict(model: torch.nn.Module, optimizer=None) -> tuple[dict, dict | None]:
    """FSDP2: the unsharded model (and optimizer) state, on rank 0's CPU (empty elsewhere).
    Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_sd = get_model_state_dict(model, options=opts)
    optim_sd = get_optimizer_state_dict(model, optimizer, options=opts) if optimizer else None
    return model_sd, optim_sd


def load_full_state_dict(model: torch.nn.Module, optimizer, model_sd: dict, optim_sd) -> None:
    """FSDP2: load full state dicts (every rank read them) into the sharded model/optimizer."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True, strict=False)
    set_model_state_dict(model, model_sd, options=opts)
    set_optimizer_state_dict(model, optimizer, optim_sd, options=opts)
