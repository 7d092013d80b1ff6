"""Data-parallel training over MPI (mpi4py): one process per core or GPU.

Launch a script with ``mpiexec -n 2 python -m mpi4py script.py``; ``-m mpi4py``
makes an uncaught exception on one rank abort the whole job instead of leaving
the other ranks waiting forever in a collective. In the script::

    from dctnet import distributed as dist
    dist.init()                                        # no-op without mpiexec
    model = dist.convert_sync_batchnorm(model)         # optional: global-batch BN
    opt = optim.SGD(model.parameters(), lr=0.1)
    dist.broadcast_parameters(model, opt)              # every rank starts equal
    sampler = dist.DistributedSampler(len(x), seed=0)
    for epoch in range(epochs):
        for batch in batches(sampler.indices(epoch), batch_size // dist.world_size()):
            loss = F.cross_entropy(model(Tensor(x[batch])), y[batch])
            opt.zero_grad(); loss.backward()
            dist.allreduce_gradients(model)            # average over the ranks
            opt.step()

Without MPI (or without mpi4py installed) :func:`init` leaves a single-process
world: rank 0 of 1, and every collective here is a no-op, so scripts run
unchanged. mpi4py is imported only by :func:`init`, and CuPy only for CuPy
arrays: on GPUs the collectives run over NCCL (``cupy.cuda.nccl``) on device
buffers, with MPI only to share NCCL's unique id; with ``DCTNET_BACKEND=cupy``
:func:`init` selects GPU ``local rank % device count`` for each process.

Arrays always travel as raw buffers (``Bcast``/``Allreduce``/``Allgather`` on
one flat buffer per dtype), never pickled; only small metadata (layouts,
optimizer configuration) goes through mpi4py's pickling collectives.

Batch normalization: :class:`SyncBatchNorm2d` and :class:`SyncDCTBatchNorm`
compute the batch statistics over the global batch (and their backward the two
per-channel gradient sums): they are plain batch norm with an allreduce as
its reduction hook, so N processes train like one process on the whole
batch. :func:`dctnet.convert` turns SyncBatchNorm2d into SyncDCTBatchNorm
(its declared JPEG-domain form). Models saved for single-process use are best
saved as ``revert_sync_batchnorm(model)`` (plain BN, sharing the parameters).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from . import nn
from .backend import get_array_module, is_cupy_array

__all__ = [
    "init", "rank", "world_size", "is_main", "barrier", "broadcast_object", "allreduce",
    "broadcast_parameters", "allreduce_gradients",
    "SyncBatchNorm2d", "SyncDCTBatchNorm", "convert_sync_batchnorm", "revert_sync_batchnorm",
    "DistributedSampler",
]

_comm = None  # mpi4py COMM_WORLD once joined with more than one process
_MPI = None  # the mpi4py.MPI module, once imported
_nccl_comms = {}  # CUDA device id -> cupy.cuda.nccl.NcclCommunicator

# Environment variables that MPI launchers set to the number of processes.
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


def _launcher_size():
    for var in _SIZE_VARS:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return None


# ----------------------------------------------------------------------------- the world


def init():
    """Join the MPI world when launched by mpiexec with more than one process.

    Otherwise (no launcher, one process, or mpi4py absent outside mpiexec)
    the world is this process alone. Returns ``(rank, world_size)``. Raises
    RuntimeError when a launcher started several processes but they cannot
    form a world (mpi4py missing, or built for a different MPI), because each
    would otherwise silently train alone.
    """
    global _comm, _MPI
    if _comm is not None:
        return rank(), world_size()
    launched = _launcher_size()
    if launched is None and "mpi4py.MPI" not in sys.modules:
        return 0, 1
    try:
        from mpi4py import MPI
    except ImportError as exc:
        if launched and launched > 1:
            raise RuntimeError(
                f"mpiexec started {launched} processes but mpi4py is not installed; "
                "install it (pip install mpi4py) or run without mpiexec"
            ) from exc
        return 0, 1
    size = MPI.COMM_WORLD.Get_size()
    if launched and launched > 1 and size == 1:
        raise RuntimeError(
            f"the launcher started {launched} processes but mpi4py sees a world of 1: mpi4py was "
            "built for a different MPI than this mpiexec; use the mpiexec of mpi4py's MPI"
        )
    if size > 1:
        _MPI, _comm = MPI, MPI.COMM_WORLD
        if os.environ.get("DCTNET_BACKEND", "").strip().lower() == "cupy":
            import cupy

            local = _comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
            cupy.cuda.Device(local % cupy.cuda.runtime.getDeviceCount()).use()
    return rank(), world_size()


def rank():
    """This process's index in the world (0 without MPI)."""
    return 0 if _comm is None else _comm.Get_rank()


def world_size():
    """The number of processes (1 without MPI)."""
    return 1 if _comm is None else _comm.Get_size()


_this_rank, _this_world_size = rank, world_size  # for DistributedSampler, whose arguments shadow them


def is_main():
    """True on rank 0: the process that prints and writes files."""
    return rank() == 0


def barrier():
    """Wait until every process gets here."""
    if _comm is not None:
        _comm.Barrier()


def broadcast_object(obj, root=0):
    """``obj`` from ``root`` on every rank (pickled: for small metadata, not arrays)."""
    return obj if _comm is None else _comm.bcast(obj, root=root)


# ----------------------------------------------------------------------------- raw collectives


def _nccl():
    """``(nccl module, communicator)`` for the current CUDA device, created once (collectively)."""
    import cupy
    from cupy.cuda import nccl

    device = cupy.cuda.Device().id
    if device not in _nccl_comms:
        uid = nccl.get_unique_id() if rank() == 0 else None
        uid = _comm.bcast(uid, root=0)
        _nccl_comms[device] = nccl.NcclCommunicator(world_size(), uid, rank())
    return nccl, _nccl_comms[device]


def _nccl_type(nccl, dtype):
    table = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64,
             "int32": nccl.NCCL_INT32, "int64": nccl.NCCL_INT64, "uint8": nccl.NCCL_UINT8}
    if np.dtype(dtype).name not in table:
        raise TypeError(f"NCCL collectives take {sorted(table)} arrays, found {np.dtype(dtype)}")
    return table[np.dtype(dtype).name]


def _stream():
    import cupy

    return cupy.cuda.get_current_stream().ptr


def _allreduce_inplace(buf):
    """Sum the contiguous 1-D ``buf`` over the ranks, in place."""
    if _comm is None:
        return buf
    if is_cupy_array(buf):
        nccl, comm = _nccl()
        comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, _nccl_type(nccl, buf.dtype), nccl.NCCL_SUM, _stream())
    else:
        _comm.Allreduce(_MPI.IN_PLACE, buf, op=_MPI.SUM)
    return buf


def _bcast_inplace(buf, root):
    """Overwrite the contiguous 1-D ``buf`` with root's, on every rank."""
    if _comm is None:
        return buf
    if is_cupy_array(buf):
        nccl, comm = _nccl()
        raw = buf.view("uint8")
        comm.bcast(raw.data.ptr, raw.size, nccl.NCCL_UINT8, root, _stream())
    else:
        _comm.Bcast(buf.view(np.uint8), root=root)  # bytes: any dtype
    return buf


def _allgather(a):
    """``(world_size, *a.shape)``: every rank's ``a``, in rank order."""
    xp = get_array_module(a)
    a = xp.ascontiguousarray(a)
    if _comm is None:
        return a[None]
    out = xp.empty((world_size(),) + a.shape, a.dtype)
    if is_cupy_array(a):
        nccl, comm = _nccl()
        comm.allGather(a.data.ptr, out.data.ptr, a.size, _nccl_type(nccl, a.dtype), _stream())
    else:
        _comm.Allgather(a, out)
    return out


def allreduce(array, average=False):
    """The sum (or mean) of ``array`` over the ranks, as a new contiguous array.

    For small results such as loss and accuracy counts; NumPy or CuPy.
    """
    xp = get_array_module(array)
    buf = xp.array(array, copy=True).reshape(-1)
    _allreduce_inplace(buf)
    if average:
        buf /= world_size()
    return buf.reshape(np.shape(array))


# ----------------------------------------------------------------------------- model state


def _flat_groups(arrays):
    """Indices of ``arrays`` grouped by (array module, dtype), in first-seen order."""
    groups = {}
    for i, a in enumerate(arrays):
        groups.setdefault((type(a).__module__.split(".")[0], np.dtype(a.dtype).str), []).append(i)
    return list(groups.values())


def _bcast_arrays(arrays, root):
    """Overwrite every array of ``arrays`` (same layout on every rank) with root's, in place."""
    for indices in _flat_groups(arrays):
        group = [arrays[i] for i in indices]
        xp = get_array_module(*group)
        buf = xp.concatenate([a.reshape(-1) for a in group]) if rank() == root else \
            xp.empty(sum(a.size for a in group), group[0].dtype)
        _bcast_inplace(buf, root)
        offset = 0
        for a in group:
            a[...] = buf[offset:offset + a.size].reshape(a.shape)
            offset += a.size


def _agree(layout, what, root):
    """Raise the same ValueError on every rank unless all have root's ``layout``."""
    reference = _comm.bcast(layout, root=root)
    ok = _comm.allreduce(int(reference == layout), op=_MPI.MIN)
    if not ok:
        raise ValueError(
            f"the {what} differs between the ranks (rank {rank()} has {layout}, rank {root} {reference}); "
            "build the same model with the same dtype on every rank"
        )


def broadcast_parameters(model, optimizer=None, root=0):
    """Copy ``model``'s parameters and buffers (and ``optimizer``'s state) from ``root`` to every rank.

    Arrays go as one flat buffer per dtype (``Bcast``; NCCL for CuPy arrays),
    in place. Every rank must have built the same architecture; the optimizer
    may be fresh on the other ranks (its configuration and state arrays are
    taken from ``root``, e.g. after ``--resume`` on rank 0 only).
    """
    if _comm is None:
        return
    params = [p.data for _, p in model.named_parameters()]
    buffers = list(model.named_buffers())
    arrays = params + [b for _, b in buffers]
    _agree([(tuple(a.shape), np.dtype(a.dtype).str) for a in arrays], "model (parameter shapes and dtypes)", root)
    # 0-d buffers (num_batches_tracked) may be NumPy scalars after "+= 1": make them arrays to fill in place.
    for path, module in model.named_modules():
        for name, b in module._buffers.items():
            if not hasattr(b, "__setitem__"):
                module._buffers[name] = np.array(b)
    arrays = params + [b for _, b in model.named_buffers()]
    _bcast_arrays(arrays, root)
    if optimizer is None:
        return
    state = optimizer.state_dict() if rank() == root else None
    meta = None
    if rank() == root:
        meta = {"config": state["config"],
                "arrays": [(k, tuple(v.shape), np.dtype(v.dtype).str) for k, v in state["state"].items()]}
    meta = _comm.bcast(meta, root=root)
    if rank() == root:
        values = [state["state"][k] for k, _, _ in meta["arrays"]]  # live buffers: root gets its own values back
    else:
        xp = get_array_module(params[0]) if params else np
        values = [(np if len(shape) == 0 else xp).empty(shape, dtype) for _, shape, dtype in meta["arrays"]]
    _bcast_arrays(values, root)
    if rank() != root:
        keys = [k for k, _, _ in meta["arrays"]]
        optimizer.load_state_dict({"config": meta["config"], "state": dict(zip(keys, values))})


def allreduce_gradients(model):
    """Average every parameter's gradient over the ranks, in place of ``p.grad``.

    One ``Allreduce`` (NCCL for CuPy arrays) per dtype over one flat buffer.
    A missing gradient counts as zeros, so every rank reduces the same layout;
    a parameter without a gradient on every rank keeps ``grad = None`` (so the
    optimizer skips it, as it would in one process). No-op in a one-process world.
    """
    if _comm is None:
        return
    params = model.parameters()
    for indices in _flat_groups([p.data for p in params]):
        group = [params[i] for i in indices]
        xp = get_array_module(group[0].data)
        dtype = group[0].data.dtype
        sizes = [p.data.size for p in group]
        total = sum(sizes)
        buf = xp.zeros(total + len(group), dtype)  # gradients, then one "has a gradient" flag per parameter
        offset = 0
        for j, (p, n) in enumerate(zip(group, sizes)):
            if p.grad is not None:
                buf[offset:offset + n] = p.grad.reshape(-1)
                buf[total + j] = 1
            offset += n
        _allreduce_inplace(buf)
        present = (buf[total:] > 0).tolist()
        grads = buf[:total]
        grads /= world_size()
        offset = 0
        for p, n, has in zip(group, sizes, present):
            p.grad = grads[offset:offset + n].reshape(p.data.shape) if has else None
            offset += n


# ----------------------------------------------------------------------------- synchronized batch norm


class SyncBatchNorm2d(nn.BatchNorm2d):
    """:class:`~dctnet.nn.BatchNorm2d` whose training statistics cover the global batch.

    Its reduction hook sums the per-channel partial sums over the ranks
    (``Allreduce``; NCCL for CuPy arrays), so the arithmetic is plain batch
    norm's (:mod:`dctnet.functional.norm`) on the union of every rank's
    batch. Same parameters, buffers and ``state_dict`` keys; the running
    statistics are updated identically on every rank (the variance unbiased
    with the global count). Every rank must call it in step (a collective).
    """

    reduce = staticmethod(_allreduce_inplace)

    def jpeg_form(self, relu_frequencies=15, relu="asm"):
        return self.twin(SyncDCTBatchNorm)


class SyncDCTBatchNorm(nn.DCTBatchNorm):
    """:class:`~dctnet.nn.DCTBatchNorm` whose training statistics cover the global batch."""

    reduce = staticmethod(_allreduce_inplace)


_TO_SYNC = {nn.BatchNorm2d: SyncBatchNorm2d, nn.DCTBatchNorm: SyncDCTBatchNorm}
_FROM_SYNC = {SyncBatchNorm2d: nn.BatchNorm2d, SyncDCTBatchNorm: nn.DCTBatchNorm}


def _replace(module, table):
    if type(module) in table:
        return module.twin(table[type(module)])
    if next(module.children(), None) is None:
        return module
    return module.with_children(lambda name, child: _replace(child, table))


def convert_sync_batchnorm(model):
    """``model`` with every BatchNorm2d / DCTBatchNorm replaced by its synchronized version.

    Returns a new module tree that shares every Parameter and buffer with
    ``model`` (an optimizer built on either trains both); ``model`` itself is
    unchanged.
    """
    return _replace(model, _TO_SYNC)


def revert_sync_batchnorm(model):
    """The inverse of :func:`convert_sync_batchnorm`, sharing parameters and buffers.

    Use it to save a model for single-process use.
    """
    return _replace(model, _FROM_SYNC)


# ----------------------------------------------------------------------------- data


class DistributedSampler:
    """Each rank's disjoint share of a random permutation of ``range(n)``, per epoch.

    Every rank draws the same permutation, ``np.random.default_rng(seed +
    epoch).permutation(n)``; it is padded by wrapping around to a multiple of
    the world size (so every rank gets the same number of samples and the
    collectives stay in step), or cut down to one with ``drop_last``; rank r
    takes ``perm[r::world_size]``. ``rank``/``world_size`` default to this
    process's.

    >>> s = DistributedSampler(5, rank=1, world_size=2)
    >>> both = np.concatenate([s.indices(0), DistributedSampler(5, rank=0, world_size=2).indices(0)])
    >>> len(s), sorted(set(both.tolist()))
    (3, [0, 1, 2, 3, 4])
    """

    def __init__(self, n, seed=0, drop_last=False, rank=None, world_size=None):
        self.n, self.seed, self.drop_last = int(n), int(seed), bool(drop_last)
        self.rank = _this_rank() if rank is None else int(rank)
        self.world_size = _this_world_size() if world_size is None else int(world_size)
        if self.n < 0 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"need n >= 0 and 0 <= rank < world_size, "
                             f"found n={n}, rank={rank}, world_size={world_size}")
        w = self.world_size
        self.total = self.n // w * w if self.drop_last else -(-self.n // w) * w

    def __len__(self):
        """The number of indices each rank gets per epoch."""
        return self.total // self.world_size

    def indices(self, epoch):
        """This rank's indices for ``epoch`` (an int64 array of ``len(self)`` entries)."""
        perm = np.random.default_rng(self.seed + int(epoch)).permutation(self.n)
        perm = perm[:self.total] if self.total <= self.n else np.resize(perm, self.total)  # resize wraps around
        return perm[self.rank::self.world_size]
