"""OS scheduling priority per thread (Linux), which the engine scheduler's preemption rests on.

Engine calls cannot be interrupted part-way: a Piper sentence, once started, runs to its end.
The scheduler runs the threads that continue streams at a lower OS priority than those that
start new requests, so the kernel preempts the former for the latter and a new request's first
audio does not wait for sentences already in progress. Lowering a priority needs no privilege;
raising it back would (RLIMIT_NICE), which is why each thread keeps one priority for life.
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


def lower_current_thread_priority(by: int) -> bool:
    """Add `by` to this thread's nice value (capped at 19). True if the priority was lowered.

    Linux keeps a nice value per thread, addressed by its thread id; elsewhere `setpriority`
    would change the whole process, so nothing is done there.
    """
    if by <= 0 or not sys.platform.startswith("linux"):
        return False
    thread_id = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread_id)
        os.setpriority(os.PRIO_PROCESS, thread_id, min(_MAX_NICE, current + by))
    except OSError as exc:  # e.g. a seccomp profile that forbids it: run at normal priority
        log.warning("could not lower the priority of thread %s: %s", threading.current_thread().name, exc)
        return False
    return True


def current_thread_nice() -> int | None:
    """This thread's nice value on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def call_at_lower_priority(fn: Callable[[], T], by: int) -> T:
    """`fn()` on a helper thread whose priority is lowered by `by`: threads it creates (e.g. an
    onnxruntime session's pool) inherit that priority for life."""
    if by <= 0:
        return fn()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        lower_current_thread_priority(by)
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
