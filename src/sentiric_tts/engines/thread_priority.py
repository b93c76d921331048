"""OS scheduling priority per thread (Linux), which the engine scheduler's preemption rests on.

Engine calls cannot be interrupted part-way: a Piper sentence, once started, runs to its end.
The scheduler runs the threads that continue streams at a lower OS priority than those that
start new requests, so the kernel preempts the former for the latter and a new request's first
audio does not wait for sentences already in progress. Lowering a priority needs no privilege;
raising it back would (RLIMIT_NICE), which is why each thread keeps one priority for life.

A nice value alone leaves a lowered thread ~10 % of a contended core, and the kernel lets it run
out its time slice before a woken normal thread gets the core. Linux's SCHED_IDLE class goes
further: such a thread runs only where no normal thread wants the core, and a normal thread that
wakes preempts it at once. Measured on 2 cores at 4 callers (README, Performance): the p95 time to
first audio fell from ~165-190 ms at nice +10 to ~135-145 ms.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

_MAX_NICE = 19
T = TypeVar("T")


def stream_thread_priority(first_audio_threads: bool, nice: int, idle_class: bool) -> tuple[int, bool]:
    """How much lower the threads continuing streams really run, and whether in SCHED_IDLE.

    Lowered only beside threads that start requests (first-audio threads): without them, the
    same threads also start requests, whose first audio must not run at a lower priority.
    SCHED_IDLE only with a lowered priority."""
    lowered = nice if first_audio_threads else 0
    return lowered, idle_class and lowered > 0


def lower_current_thread_priority(by: int, idle_class: bool = False) -> bool:
    """Add `by` to this thread's nice value (capped at 19), and with `idle_class` move it to the
    SCHED_IDLE class. True if the priority was lowered.

    Linux keeps a nice value and a scheduling class per thread, addressed by its thread id;
    elsewhere `setpriority` would change the whole process, so nothing is done there.
    """
    if by <= 0 or not sys.platform.startswith("linux"):
        return False
    thread_id = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread_id)
        os.setpriority(os.PRIO_PROCESS, thread_id, min(_MAX_NICE, current + by))
        if idle_class:
            os.sched_setscheduler(thread_id, os.SCHED_IDLE, os.sched_param(0))
    except OSError as exc:  # e.g. a seccomp profile that forbids it: run at normal priority
        log.warning("could not lower the priority of thread %s: %s", threading.current_thread().name, exc)
        return False
    return True


def current_thread_nice() -> int | None:
    """This thread's nice value on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def current_thread_in_idle_class() -> bool:
    """Whether this thread is in Linux's SCHED_IDLE class."""
    if not sys.platform.startswith("linux"):
        return False
    return os.sched_getscheduler(threading.get_native_id()) == os.SCHED_IDLE


def call_at_lower_priority(fn: Callable[[], T], by: int, idle_class: bool = False) -> T:
    """`fn()` on a helper thread whose priority is lowered by `by` (and in SCHED_IDLE with
    `idle_class`): threads it creates (e.g. an onnxruntime session's pool) inherit that for life."""
    if by <= 0:
        return fn()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        lower_current_thread_priority(by, idle_class)
        try:
            outcome.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    helper = threading.Thread(target=run, name="lower-priority-init")
    helper.start()
    helper.join()
    if failure:
        raise failure[0]
    return outcome[0]
