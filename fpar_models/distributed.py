"""One training over several processes: torch.distributed with DistributedDataParallel,
gloo on the CPU, NCCL on GPUs (a rank per GPU).

A `Group` is what the trainer knows of it: its rank, the world's size and the few
collectives it needs. World 1 is the plain single-process run and does no collective
at all, so a one-device run is exactly what it was. `launch` starts the ranks as the
standard launchers do (spawned processes, a TCP rendezvous on the loopback), and ends
all of them when one fails or dies: a dead rank is a `RankLost`, never a hung group.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from fpar_models.compute import Compute
from fpar_models.processes import die_with_parent, free_port

COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)  # a rank silent this long (stopped, not dead) ends the group


class RankLost(RuntimeError):
    """A rank of the group died (a signal, the OOM killer) or ended without an answer."""


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1
    device: str | None = None  # a launched rank's (fpar_models.compute.Compute.detect's argument)

    @property
    def main(self) -> bool:
        """Rank 0: it reports progress and metrics and writes the checkpoints."""
        return self.rank == 0

    def compute(self, here: Compute) -> Compute:
        """Where this rank computes: a launched rank on its own device, a group run in the
        caller's process (world 1) on the caller's compute, `here`."""
        return here if self.device is None else Compute.detect(self.device)

    def agree(self, flag: bool) -> bool:
        """Rank 0's flag on every rank (the cancel check between batches)."""
        if self.world == 1:
            return flag
        value = torch.tensor([int(flag)])
        dist.broadcast(value, src=0)
        return bool(value.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (epoch statistics: a few numbers)."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        """Wait for rank 0's files (a stage's best weights) before reading them."""
        if self.world > 1:
            dist.barrier()

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The module a stage trains through. DistributedDataParallel averages the
        gradients of exactly the parameters the stage unfreezes (it is built after the
        stage freezes the rest); `static_graph` lets it learn in the first step which of
        those get no gradient, instead of searching the graph at every step as
        `find_unused_parameters` does."""
        if self.world == 1:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids, static_graph=True)

    def share_buffers(self, model: nn.Module) -> None:
        """Rank 0's BatchNorm statistics on every rank. DistributedDataParallel sends them
        before each training forward, but the last step's update is each rank's own; the
        validation, which every rank runs on its slice, must see rank 0's (it saves them)."""
        if self.world > 1:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)


SINGLE = Group()


def unwrapped(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model) if isinstance(model, nn.parallel.DistributedDataParallel) else model


def devices_for(asked: int, batch_size: int, have: int) -> int:
    """The ranks a training gets where `have` devices are: as many as it asks, at most
    `have`, and a number its batch splits into evenly."""
    return max(d for d in range(1, min(asked, have) + 1) if batch_size % d == 0)


def rank_device(rank: int, world: int, cuda: bool) -> str:
    """A rank's device: GPU `rank`, or the CPU, whose cores the ranks split between them
    (each rank's intra-op threads)."""
    if cuda:
        return f"cuda:{rank}"
    torch.set_num_threads(max(1, torch.get_num_threads() // world))
    return "cpu"


def launch(target: Callable[[Group, Any], Any], world: int, payload: Any, *, cuda: bool | None = None) -> Any:
    """Run `target(group, payload)` on `world` spawned ranks (on GPUs when `cuda`, by
    default where there are any) and return rank 0's answer, or raise what rank 0 raised.
    The first rank to die takes the others with it (they are terminated), and the ranks
    die with the calling process (PR_SET_PDEATHSIG), so no rank outlives its group or the
    worker that started it."""
    if world == 1:
        return target(SINGLE, payload)
    cuda = torch.cuda.is_available() if cuda is None else cuda
    answers = mp.get_context("spawn").SimpleQueue()
    replies: dict[int, tuple[bool, Any]] = {}

    def read() -> None:  # while the ranks run: an answer larger than a pipe's buffer blocks its writer
        while not answers.empty():
            rank, ok, value = answers.get()
            replies[rank] = (ok, value)

    address = f"tcp://127.0.0.1:{free_port()}"
    procs = mp.start_processes(_rank_main, args=(world, cuda, address, os.getpid(), target, payload, answers),
                               nprocs=world, join=False, start_method="spawn")
    try:
        while not procs.join(timeout=1):
            read()
        read()
    except mp.ProcessExitedException as e:  # a rank died: join() has terminated the others
        raise RankLost(f"rank {e.error_index} of {world} ended with "
                       f"{e.signal_name or f'exit code {e.exit_code}'}; the group was stopped") from None
    except mp.ProcessRaisedException as e:  # not an Exception (SystemExit, say): no answer came
        raise RankLost(f"rank {e.error_index} of {world} stopped: {str(e).strip().splitlines()[-1]}") from None
    except BaseException:  # the caller is stopping (a worker's warm shutdown): so is the group
        for p in procs.processes:
            if p.is_alive():
                p.kill()
        raise
    if 0 not in replies:
        raise RankLost(f"rank 0 of {world} ended without an answer")
    ok, value = replies[0]
    if ok:
        return value
    # a rank that failed on its own (bad data in its share) makes its peers fail in the
    # exchange it left: the cause is the failure that is not a torch.distributed one
    causes = [e for _, (good, e) in sorted(replies.items()) if not good and not isinstance(e, dist.DistError)]
    raise causes[0] if causes else value


def _rank_main(rank: int, world: int, cuda: bool, address: str, parent: int,
               target: Callable[[Group, Any], Any], payload: Any, answers) -> None:
    # a process group of its own: a signal to the caller's group (a stack's SIGTERM, a
    # terminal's Ctrl-C) is the caller's to act on, and the caller ends the ranks
    os.setpgid(0, 0)
    die_with_parent(parent=parent)  # a worker killed -9 leaves no rank behind
    device = rank_device(rank, world, cuda)
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", init_method=address, rank=rank, world_size=world,
                            timeout=COLLECTIVE_TIMEOUT)
    try:
        value = target(Group(rank, world, device), payload)
        answer = (rank, True, value if rank == 0 else None)  # rank 0's is the answer
    except Exception as e:  # the answer says what went wrong; the group still ends in order
        answer = (rank, False, picklable(e))
    answers.put(answer)
    with contextlib.suppress(Exception):  # a peer that failed may already be gone
        dist.destroy_process_group()


def picklable(e: Exception) -> Exception:
    """The exception itself when it survives the trip to the parent, else its words."""
    import pickle
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {e}")
