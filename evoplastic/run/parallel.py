"""Population evaluation across MPI ranks (mpi4py): rank 0 searches, every rank scores a share.

``mpirun -n R evoplastic train CONFIG``: rank 0 owns the searcher, the logs, the run record
and the checkpoints; for each evaluation it sends θ (float64, exact), the step key, the
purpose and T to every rank. Each rank rebuilds the step's tasks and initial networks from
the seed, scores its contiguous share of the work blocks and sends the (P, T) losses and
accuracies back. mpi4py is imported only when an MPI launcher is detected.

Results do not depend on R. Measured here (MKL, CPU): a member's episode is not bitwise
reproducible across batch sizes or positions in the batch (batched gemv kernels depend on
the alignment of each matrix, and a batch of one takes the ``mv`` path), in float32 and, for
some layer widths, float64 too. So the (P, T) score matrix is cut into blocks that depend only
on P, T and ``es.member_chunk`` (members per block; 0 means ⌈P/8⌉), or, for one θ (P = 1,
the evaluations), into ⌈T/8⌉-task blocks, and ranks take whole blocks; any R, ``-n 1``
included, runs the same computations. Without a launcher nothing changes: the plain
FitnessFunction scores everything (``es.member_chunk`` members at a time).

Test hook: with ``EVOPLASTIC_FAIL_RANK=r EVOPLASTIC_FAIL_STEP=k`` rank r raises at training
step k, to check that a failing rank ends the whole job (``comm.Abort``) with its message.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from evoplastic.config import ExperimentConfig, config_from_dict, config_to_dict
from evoplastic.core.fitness import Evaluation, FitnessFunction, resolve_device
from evoplastic.families import build_fitness
from evoplastic.run.rundir import interrupted_message

LAUNCHER_VARS = ("PMI_SIZE", "PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE")
"""Environment variables set by MPICH/Intel MPI (PMI), PMIx (Open MPI, Slurm) or Open MPI's mpirun."""
AUTO_BLOCKS = 8
"""Blocks a population (or one θ's tasks) is cut into when es.member_chunk is 0."""
TAG_CONFIG, TAG_REQUEST, TAG_RESULT = 11, 12, 13
POLL_SECONDS = 0.001
"""Sleep between message probes: MPICH's blocking receive would spin a core at 100 %."""
INTERRUPT_GRACE = 2.0
"""Seconds a worker waits on Ctrl-C before aborting, so that rank 0 prints the resume command first."""
ABORT_GRACE = 1.0
"""Seconds a rank waits after printing its error before aborting the job, so that the launcher forwards it."""
Block = tuple[slice, slice]
"""(members, tasks) of the (P, T) score matrix."""


@dataclass(frozen=True)
class World:
    """This process's place in the job; size 1 and no communicator when not launched by MPI."""

    comm: Any = None
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class Request:
    """One evaluation, as rank 0 sends it: θ (P, R) float64 in paper units and the step's keys."""

    theta: np.ndarray
    step: int | str
    purpose: str
    n_tasks: int


def launched_by_mpi() -> bool:
    """True when an MPI launcher (mpiexec, mpirun, srun --mpi=...) started this process."""
    return any(var in os.environ for var in LAUNCHER_VARS)


def init_world() -> World:
    """Join the MPI job if there is one (imports mpi4py only then); ranks per node from a shared-memory split."""
    if not launched_by_mpi():
        return World()
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise RuntimeError("started by an MPI launcher but mpi4py is missing: pip install mpi4py") from err

    comm = MPI.COMM_WORLD
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    return World(comm, comm.Get_rank(), comm.Get_size(), node.Get_rank(), node.Get_size())


def rank_device(cfg: ExperimentConfig, world: World) -> torch.device:
    """cuda:{local_rank mod GPUs} when the config asks for CUDA, else CPU with the node's cores shared out."""
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        return torch.device(f"cuda:{world.local_rank % torch.cuda.device_count()}")
    return device


def apply_threads(cfg: ExperimentConfig) -> int:
    """Set torch's intra-op threads of this process (each MPI rank is one): cfg.threads, else the default.

    The default is $OMP_NUM_THREADS when set, else 1: the networks are small, and on a shared 2-core
    machine two threads made the paper's Adam episode 20-80 times slower than one (interleaved A/B);
    more cores are used by more MPI ranks.
    """
    threads = cfg.threads or int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()


def build_rank_fitness(cfg: ExperimentConfig, world: World) -> FitnessFunction:
    """This rank's fitness function on this rank's device (data loaded here, tasks rebuilt from the seed)."""
    apply_threads(cfg)
    return build_fitness(replace(cfg, device=str(rank_device(cfg, world))))


def plan_blocks(n_members: int, n_tasks: int, member_chunk: int) -> list[Block]:
    """Cut the (P, T) score matrix into blocks that depend on P, T and member_chunk only, never on R."""
    if n_members > 1:
        size = member_chunk or math.ceil(n_members / AUTO_BLOCKS)
        return [(slice(a, min(a + size, n_members)), slice(0, n_tasks)) for a in range(0, n_members, size)]
    size = math.ceil(n_tasks / AUTO_BLOCKS)
    return [(slice(0, 1), slice(a, min(a + size, n_tasks))) for a in range(0, n_tasks, size)]


def rank_share(n_blocks: int, world: World) -> range:
    """The contiguous run of blocks this rank scores."""
    return range(n_blocks * world.rank // world.size, n_blocks * (world.rank + 1) // world.size)


def _fail_if_asked(world: World, request: Request) -> None:
    """Test hook (see the module docstring): raise on rank EVOPLASTIC_FAIL_RANK at step EVOPLASTIC_FAIL_STEP."""
    rank, step = os.environ.get("EVOPLASTIC_FAIL_RANK"), os.environ.get("EVOPLASTIC_FAIL_STEP")
    if rank == str(world.rank) and step == str(request.step) and request.purpose == "train":
        raise RuntimeError(f"injected failure on rank {world.rank} at step {step} (EVOPLASTIC_FAIL_RANK/STEP)")


def score_share(fitness: FitnessFunction, world: World, request: Request) -> dict[int, tuple[np.ndarray, ...]]:
    """Loss and accuracy blocks {block index: ((p, t), (p, t))} of this rank's share."""
    _fail_if_asked(world, request)
    n_members = request.theta.shape[0]
    blocks = plan_blocks(n_members, request.n_tasks, fitness.cfg.es.member_chunk)
    mine = rank_share(len(blocks), world)
    if not mine:
        return {}
    theta = torch.from_numpy(request.theta).to(fitness.device, fitness.dtype)
    batch = fitness.draw(request.step, request.purpose, request.n_tasks)
    out = {}
    with torch.no_grad():
        for index in mine:
            members, part = blocks[index]
            block = batch if part == slice(0, request.n_tasks) else batch.subset(part)
            loss, acc = fitness.scores(theta[members], block, members.stop - members.start)
            out[index] = (loss.cpu().numpy(), acc.cpu().numpy())
    return out


def assemble(fitness: FitnessFunction, request: Request, results: dict[int, tuple[np.ndarray, ...]]) -> Evaluation:
    """One Evaluation from all ranks' blocks, reduced exactly as FitnessFunction does it."""
    blocks = plan_blocks(request.theta.shape[0], request.n_tasks, fitness.cfg.es.member_chunk)
    shape = (request.theta.shape[0], request.n_tasks)
    task_loss, task_acc = torch.empty(shape, dtype=fitness.dtype), torch.empty(shape, dtype=fitness.dtype)
    for index, (members, part) in enumerate(blocks):
        task_loss[members, part] = torch.from_numpy(results[index][0])
        task_acc[members, part] = torch.from_numpy(results[index][1])
    return fitness.evaluation(torch.from_numpy(request.theta).to(fitness.dtype), task_loss, task_acc)


def _receive(world: World, source: int | None, tag: int) -> Any:
    """Blocking receive from ``source`` (None: any rank) that sleeps between probes instead of spinning."""
    from mpi4py import MPI

    status = MPI.Status()
    source = MPI.ANY_SOURCE if source is None else source
    while not world.comm.Iprobe(source=source, tag=tag, status=status):
        time.sleep(POLL_SECONDS)
    return world.comm.recv(source=status.Get_source(), tag=tag)


class MPIScorer:
    """Rank 0's scorer (the FitnessFunction signature): splits every evaluation over all ranks."""

    def __init__(self, world: World, fitness: FitnessFunction):
        self.world, self.fitness = world, fitness

    def __call__(self, theta: torch.Tensor, step: int | str, purpose: str = "train", n_tasks: int = 0) -> Evaluation:
        if theta.requires_grad and torch.is_grad_enabled():  # Adam's differentiable step stays on rank 0
            return self.fitness(theta, step, purpose, n_tasks)
        request = Request(theta.detach().cpu().double().numpy(), step, purpose,
                          n_tasks or self.fitness.cfg.tasks_per_step)
        comm = self.world.comm
        sends = [comm.isend(request, dest=rank, tag=TAG_REQUEST) for rank in range(1, self.world.size)]
        results = score_share(self.fitness, self.world, request)
        for _ in range(1, self.world.size):
            results.update(_receive(self.world, None, TAG_RESULT))
        for send in sends:
            send.wait()
        return assemble(self.fitness, request, results)

    def close(self) -> None:
        """Send every worker the stop message."""
        stop_workers(self.world)


def stop_workers(world: World) -> None:
    """Tell every worker rank to stop: before the config (rank 0 failed early) or between evaluations."""
    for rank in range(1, world.size):
        world.comm.send(None, dest=rank, tag=TAG_REQUEST)


def make_scorer(world: World, cfg: ExperimentConfig) -> tuple[FitnessFunction, FitnessFunction | MPIScorer]:
    """Rank 0's fitness function and the scorer for train(): the same object without MPI.

    Under any MPI launch (``-n 1`` too) every evaluation goes through the blocks, so R never matters.
    """
    if world.comm is None:
        apply_threads(cfg)
        fitness = build_fitness(cfg)
        return fitness, fitness
    for rank in range(1, world.size):
        world.comm.send(config_to_dict(cfg), dest=rank, tag=TAG_REQUEST)
    fitness = build_rank_fitness(cfg, world)
    return fitness, MPIScorer(world, fitness)


def serve(world: World) -> int:
    """Worker ranks: receive the config, then score shares until rank 0 says stop (None, at either point)."""
    with guard(world):
        message = _receive(world, 0, TAG_REQUEST)
        if message is None:  # rank 0 stopped before training (a refused resume, a bad config)
            return 0
        fitness = build_rank_fitness(config_from_dict(message), world)
        while (request := _receive(world, 0, TAG_REQUEST)) is not None:
            world.comm.send(score_share(fitness, world, request), dest=0, tag=TAG_RESULT)
    return 0


def launcher_command(world: World) -> str:
    """How to start this job's size again, for messages: 'mpiexec -n R' (empty without MPI)."""
    return f"mpiexec -n {world.size}" if world.comm is not None else ""


@contextmanager
def guard(world: World) -> Iterator[None]:
    """With several ranks, rank 0's user error stops the workers and exits 2; another error aborts the job.

    Ctrl-C (delivered to every rank by the launcher) ends the job with status 130, rank 0 printing how to
    resume under the launcher; any other exception prints its message (with a traceback unless it is a
    user error) and aborts every rank instead of hanging them.
    """
    try:
        yield
    except BaseException as err:
        if world.size == 1 or (isinstance(err, SystemExit) and not err.code):
            raise
        where = f"MPI rank {world.rank} of {world.size}"
        if isinstance(err, KeyboardInterrupt):
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher may forward Ctrl-C more than once
            if world.is_root:
                print(interrupted_message(getattr(err, "run_dir", None), getattr(err, "resumable", False),
                                          launcher_command(world)), file=sys.stderr)
            else:
                time.sleep(INTERRUPT_GRACE)  # rank 0 aborts first, after printing how to resume
            _abort(world, 130)
        if world.is_root and isinstance(err, (ValueError, FileNotFoundError)):
            print(f"evoplastic: error: {err}", file=sys.stderr)
            stop_workers(world)
            raise SystemExit(2) from None
        if not isinstance(err, (ValueError, FileNotFoundError)):  # user errors need no traceback
            traceback.print_exc()
        print(f"evoplastic: error on {where}: {err}; aborting all ranks", file=sys.stderr)
        _abort(world, 1)


def _abort(world: World, code: int) -> None:
    """End the whole job with code; never returns (MPICH's Abort was seen to return while the job wound down)."""
    sys.stderr.flush()
    sys.stdout.flush()
    time.sleep(ABORT_GRACE)  # the launcher forwards output asynchronously: Abort right away can lose the message
    world.comm.Abort(code)
    os._exit(code)
