"""Which threads run PyTorch's CPU kernels with every core: one at a time per process.

PyTorch's CPU kernels (and oneDNN's) run on OpenMP (libgomp). Between parallel regions libgomp's
idle workers spin, ready for the next region, only while the process's OpenMP threads number no
more than its cores; past that they sleep, and every region pays a futex wake-up. A thread that
once ran a multi-threaded region keeps its team of workers until it exits. So a model loaded on
one long-lived thread and stepped on another runs every region of every step at the sleeping
rate. Measured on a 2-core EPYC with the full-size XTTS GPT (float32): a decode step of 4 rows
took 153-165 ms on the batch loop's thread beside a team on the main thread (18,000 context
switches where 125 did the same work on the main thread alone), and 115-120 ms with the loop's
team the only one.

Hence, on the CPU: the thread that steps a model takes every core (`take_all_cores`); other
threads run torch with one thread, which forms no team (`one_thread_elsewhere`); work that wants
every core off that thread (loading weights, cloning a voice) runs on a thread of its own that
ends with it, and its team with it (`on_own_thread`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")

CORES = torch.get_num_threads()
"""The threads torch would use by default (the cores it may use, or OMP_NUM_THREADS)."""


def one_thread_elsewhere() -> None:
    """The calling thread, and every thread that starts using torch from now on, runs torch's
    CPU kernels on one thread."""
    torch.set_num_threads(1)


def take_all_cores() -> None:
    """The calling thread runs torch's CPU kernels on every core; threads that start using torch
    later still get one."""
    # torch sets a thread up at its first use of it, from its default for new threads: done
    # first, so that it does not later undo what follows.
    torch.get_num_threads()
    torch.set_num_threads(CORES)  # this thread's OpenMP setting, and torch's default for new threads
    # Put the default back from a thread that never runs a region, leaving this thread's setting.
    reset = threading.Thread(target=torch.set_num_threads, args=(1,), name="torch-threads-reset")
    reset.start()
    reset.join()


def on_own_thread(work: Callable[[], T], name: str) -> T:
    """Run `work` with every core on a new thread, which (with its OpenMP team) ends with it;
    return its result or raise its exception in the caller."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        take_all_cores()
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the caller, who re-raises it
            failure.append(exc)

    thread = threading.Thread(target=run, name=name)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]
