"""The CPU engine's one thread discipline: a pool of Python threads over serial kernels.

Two thread pools that both spin (OpenBLAS's and Numba's) slow each other down
by up to 4x on a small machine, and a pool whose static split waits for the
slowest thread suffers on a shared one. So the engine's CPU work runs as
*tasks* (chunks of images) handed out one at a time to ``num_threads()``
Python threads: the caller and ``num_threads() - 1`` workers that block, not
spin, between calls (after a millisecond of watching for the next call without
the GIL, each round yielding the CPU: :mod:`dctnet.kernels.wait`). Inside a
task everything is serial: Numba kernels compiled with ``nogil=True`` and BLAS
limited to one thread (through threadpoolctl, while :func:`parallel_for`
runs), so each core keeps its own chunk in its own cache. Which task goes to
which thread depends on timing, so tasks must write disjoint outputs (or
per-task partial results that the caller reduces in task order): results never
depend on the thread count.

``$DCTNET_NUM_THREADS`` or :func:`set_num_threads` sets the count (default:
the CPUs this process may use).

>>> import numpy as np
>>> out = np.zeros(8)
>>> def square(worker, i):
...     out[i] = i * i
>>> parallel_for(square, 8)
>>> out[:4]
array([0., 1., 4., 9.])
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import sys
import threading

import numpy as np  # imported first: the BLAS controller must see NumPy's BLAS
from threadpoolctl import ThreadpoolController

from .kernels import wait as wait_kernels

__all__ = ["num_threads", "set_num_threads", "default_num_threads", "parallel_for", "serial_blas", "scratch"]

_count = None
_local = threading.local()
_lock = threading.Lock()


def default_num_threads() -> int:
    """``$DCTNET_NUM_THREADS`` when set, else the number of CPUs this process may use."""
    env = os.environ.get("DCTNET_NUM_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"DCTNET_NUM_THREADS must be a positive integer, found {env!r}; unset it or set e.g. 2")
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def num_threads() -> int:
    """Threads the engine runs tasks on (the caller included)."""
    global _count
    if _count is None:
        _count = default_num_threads()
    return _count


def set_num_threads(n: int):
    """Use ``n`` threads from now on (1: everything on the calling thread)."""
    global _count
    if int(n) != n or n < 1:
        raise ValueError(f"the thread count must be a positive integer, found {n!r}")
    _count = int(n)


_blas_depth = 0


@contextlib.contextmanager
def serial_blas():
    """BLAS limited to one thread inside; nests, and restores the previous limit on exit.

    The limit is process-wide (BLAS libraries have one thread count), so nested
    or concurrent users share it: the first one in sets it, the last one out
    restores it. The libraries are found once (threadpoolctl), and again after
    new imports, which may have loaded another BLAS (scipy.linalg, torch, ...).
    """
    global _blas, _blas_depth, _restore, _modules_seen
    with _lock_blas:
        if _blas_depth == 0:
            if _blas is None or len(sys.modules) != _modules_seen:
                libs = ThreadpoolController().select(user_api="blas").lib_controllers
                _blas, _modules_seen = libs, len(sys.modules)
            _restore = [lib.get_num_threads() for lib in _blas]
            for lib in _blas:
                lib.set_num_threads(1)
        _blas_depth += 1
    try:
        yield
    finally:
        with _lock_blas:
            _blas_depth -= 1
            if _blas_depth == 0:
                for lib, n in zip(_blas, _restore):
                    lib.set_num_threads(n)


_lock_blas = threading.Lock()
_blas = None  # threadpoolctl's controllers of the loaded BLAS libraries
_restore = []
_modules_seen = 0


class _Pool:
    """Daemon threads that run jobs from a queue. An idle worker first watches the count of
    posted jobs without the GIL for about SPIN_ROUNDS yields of its CPU (a millisecond), then
    blocks, never spinning for long: waking a blocked thread costs tens to hundreds of
    microseconds on a virtual machine, more than the gap between two parallel regions."""

    def __init__(self):
        self.jobs = queue.SimpleQueue()
        self.threads = []
        self.posted = np.zeros(1, np.int64)  # jobs posted so far (only parallel_for's caller posts)

    def grow(self, n):
        if n > len(self.threads) and wait_kernels.AVAILABLE:
            wait_kernels.warm_up()
        while len(self.threads) < n:
            t = threading.Thread(target=self._work, args=(len(self.threads) + 1,), daemon=True, name="dctnet-worker")
            t.start()
            self.threads.append(t)

    def post(self, job):
        self.jobs.put(job)
        self.posted[0] += 1  # after the put: a worker that sees the new count finds the job

    def _work(self, index):
        while True:
            seen = int(self.posted[0])
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                if _spins() and wait_kernels.changed(self.posted, seen, _spins()):
                    continue  # a job came (or another worker took it): look again
                job = self.jobs.get()
            job(index)


def _spins():
    """Yields of the CPU an idle thread waits through before it blocks (0: block at once)."""
    return SPIN_ROUNDS if wait_kernels.AVAILABLE else 0


# About a millisecond of sched_yield calls (0.6-0.75 us each, measured on the 2-core machine).
SPIN_ROUNDS = 1500


_pool = _Pool()


def parallel_for(fn, count: int, threads: int | None = None):
    """Call ``fn(worker, i)`` for ``i`` in ``range(count)``, spread over the pool.

    ``worker`` (0 .. threads-1) names the thread that runs the item (0: the
    caller), for per-worker partial results. Items are handed out one at a
    time in order, so a thread that finishes early takes the next. The first
    exception is re-raised here once every thread has stopped. Nested calls,
    and calls with one thread or one item, run on the calling thread. BLAS is
    serial throughout.
    """
    threads = max(1, min(num_threads() if threads is None else int(threads), count))
    with serial_blas():
        if threads == 1 or getattr(_local, "inside", False):
            for i in range(count):
                fn(getattr(_local, "worker", 0), i)
            return
        with _lock:  # one parallel region at a time
            _pool.grow(threads - 1)
            items = itertools.count()  # next() is atomic under the GIL
            errors = []
            done = threading.Semaphore(0)

            def drain(worker):
                _local.inside, _local.worker = True, worker
                try:
                    for i in items:
                        if i >= count or errors:
                            break
                        fn(worker, i)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                    errors.append(exc)
                finally:
                    _local.inside, _local.worker = False, 0

            finished = np.zeros(threads - 1, np.int64)  # set by each job once it has released done

            def job(worker, slot):
                try:
                    drain(worker)
                finally:
                    done.release()
                    finished[slot] = 1

            for slot in range(threads - 1):
                _pool.post(lambda worker, slot=slot: job(worker, slot))
            drain(0)
            if _spins():  # the workers' last items are about to end: watch them without the GIL
                wait_kernels.all_set(finished, _spins())
            for _ in range(threads - 1):
                done.acquire()
        if errors:
            raise errors[0]


def scratch(name: str, shape, dtype) -> np.ndarray:
    """An uninitialized array of ``shape``, private to the calling thread and reused.

    Each thread keeps one growing buffer per ``(name, dtype)``, so hot loops
    do not allocate; a name must not be used for two arrays alive at once.

    >>> a = scratch("doc.a", (2, 3), np.float32)
    >>> a.shape, scratch("doc.a", (6,), np.float32).base is a.base
    ((2, 3), True)
    """
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    size = 1
    for s in shape:
        size *= int(s)
    key = (name, np.dtype(dtype))
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = buffers[key] = np.empty(max(size, 1), key[1])
    return buf[:size].reshape(shape)
