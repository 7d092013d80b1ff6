"""Waiting without the GIL: the engine's threads watch a flag for a while before they block.

A thread that blocks (on a queue or a semaphore) sleeps in the kernel, and on a
virtual machine waking it again took 40-230 us, the longer the more it had
slept; a training step at batch 40 has about 20 parallel regions a few hundred
microseconds apart. A thread that watches a flag in this loop instead sees it
change within a few microseconds. Each round gives the CPU up
(``sched_yield``), so a waiting thread never keeps another runnable thread off
its core, and the call also keeps LLVM from hoisting the flag's load out of the
loop. ``nogil``: the GIL is free for the thread that sets the flag. Callers
bound the rounds and block as before once they have passed (:mod:`dctnet.threads`).

Not on Windows, which has no ``sched_yield``: there the threads block at once.
"""

import os

import numpy as np
from numba import njit, types

AVAILABLE = os.name != "nt"

_sched_yield = types.ExternalFunction("sched_yield", types.int32())


@njit(nogil=True, cache=True)
def changed(counter, seen, rounds):
    """Whether ``counter[0] != seen``, watched for up to ``rounds`` yields of the CPU."""
    for _ in range(rounds):
        if counter[0] != seen:
            return True
        _sched_yield()
    return counter[0] != seen


@njit(nogil=True, cache=True)
def all_set(marks, rounds):
    """Whether every entry of ``marks`` is nonzero, watched for up to ``rounds`` yields of the CPU."""
    for _ in range(rounds + 1):
        done = True
        for i in range(marks.size):
            if marks[i] == 0:
                done = False
        if done:
            return True
        _sched_yield()
    return False


def warm_up():
    """Compile (or load) both kernels, so that no thread compiles them while others wait on it."""
    flag = np.ones(1, np.int64)
    changed(flag, 0, 1)
    all_set(flag, 1)
