"""dctnet.threads: every item once, errors re-raised, nesting, BLAS limits restored."""

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from dctnet import threads


@pytest.fixture
def two_threads():
    old = threads.num_threads()
    threads.set_num_threads(2)
    yield
    threads.set_num_threads(old)


def test_every_item_once(two_threads):
    seen = np.zeros(257, np.int64)
    workers = set()

    def fn(worker, i):
        seen[i] += 1
        workers.add(worker)

    threads.parallel_for(fn, seen.size)
    assert (seen == 1).all()
    assert workers <= {0, 1}


def test_errors_are_reraised_after_all_threads_stop(two_threads):
    running = []

    def fn(worker, i):
        running.append(i)
        if i == 5:
            raise KeyError("item 5")

    with pytest.raises(KeyError, match="item 5"):
        threads.parallel_for(fn, 100)
    assert len(running) < 100  # the others stopped taking items
    threads.parallel_for(lambda w, i: None, 10)  # the pool still works


def test_nested_calls_run_on_the_calling_thread(two_threads):
    inner = []

    def fn(worker, i):
        ident = threading.get_ident()
        threads.parallel_for(lambda w, j: inner.append((ident, threading.get_ident())), 3)

    threads.parallel_for(fn, 4)
    assert len(inner) == 12 and all(a == b for a, b in inner)


def test_serial_blas_inside_and_restored(two_threads):
    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    inside = []
    threads.parallel_for(lambda w, i: inside.append([lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]), 2)
    assert all(n == 1 for counts in inside for n in counts)
    assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == before


def test_one_thread_runs_in_order():
    old = threads.num_threads()
    threads.set_num_threads(1)
    try:
        order = []
        threads.parallel_for(lambda w, i: order.append((w, i)), 5)
        assert order == [(0, i) for i in range(5)]
    finally:
        threads.set_num_threads(old)


def test_scratch_is_reused_and_per_thread():
    a = threads.scratch("test.a", (4, 5), np.float32)
    b = threads.scratch("test.a", (3,), np.float32)
    assert a.shape == (4, 5) and b.shape == (3,) and np.shares_memory(a, b)
    assert not np.shares_memory(threads.scratch("test.b", (3,), np.float32), a)
    assert threads.scratch("test.a", (2,), np.float64).dtype == np.float64
    other = []
    t = threading.Thread(target=lambda: other.append(threads.scratch("test.a", (4, 5), np.float32)))
    t.start()
    t.join()
    assert not np.shares_memory(other[0], a)


def test_thread_count_validation(monkeypatch):
    with pytest.raises(ValueError, match="positive integer"):
        threads.set_num_threads(0)
    monkeypatch.setenv("DCTNET_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="DCTNET_NUM_THREADS"):
        threads.default_num_threads()
    monkeypatch.setenv("DCTNET_NUM_THREADS", "3")
    assert threads.default_num_threads() == 3


def test_blas_loaded_later_is_limited_too():
    """A BLAS library imported after the first parallel region (here SciPy's) is found."""
    code = (
        "import numpy, dctnet.threads as t\n"
        "from threadpoolctl import threadpool_info\n"
        "with t.serial_blas(): pass\n"
        "import scipy.linalg\n"
        "with t.serial_blas():\n"
        "    counts = [lib['num_threads'] for lib in threadpool_info() if lib['user_api'] == 'blas']\n"
        "print(counts)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    counts = json.loads(done.stdout.strip())
    assert counts and all(n == 1 for n in counts)


def test_wait_kernels_see_a_change_made_by_another_thread():
    from dctnet.kernels import wait

    if not wait.AVAILABLE:
        pytest.skip("no sched_yield on this platform: the threads block at once")
    counter, marks = np.zeros(1, np.int64), np.array([1, 0, 1], np.int64)
    assert not wait.changed(counter, 0, 50) and wait.changed(counter, 7, 0)
    assert not wait.all_set(marks, 50) and wait.all_set(np.ones(2, np.int64), 0)

    def later():
        threading.Event().wait(0.02)
        counter[0] = 1
        marks[1] = 1

    setter = threading.Thread(target=later)
    setter.start()
    assert wait.changed(counter, 0, 10**9)  # returns when the other thread writes, far before its rounds run out
    assert wait.all_set(marks, 10**9)
    setter.join()


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")  # a worker must not die
@pytest.mark.parametrize("spins", [0, None])
def test_regions_of_fewer_threads_than_the_pool_has(monkeypatch, spins):
    if spins is not None:
        monkeypatch.setattr(threads, "SPIN_ROUNDS", spins)  # workers that block at once
    old = threads.num_threads()
    try:
        threads.set_num_threads(4)
        threads.parallel_for(lambda w, i: None, 8)  # three workers now
        for count in (2, 3, 50):
            for _ in range(20):  # one job per region, whichever worker takes it
                seen = np.zeros(count, np.int64)
                threads.parallel_for(lambda w, i: seen.__setitem__(i, seen[i] + 1), count, threads=2)
                assert (seen == 1).all()
    finally:
        threads.set_num_threads(old)
