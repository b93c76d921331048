"""Every door's first step: who is calling, and whether the service takes new work.

A door presents the caller's key (or none) and address; `identify` names the caller the limits
and the voice library count against (Unauthorized when keys are set and the key is missing or
wrong); `admit` also refuses work while the service drains (ShuttingDown) or before it is ready
(NotReady). Each door reports these failures through its own table, like any other. A door
without authentication (Wyoming) uses `admit_keyless`: the same checks, its caller named by its
address.
"""

from __future__ import annotations

from dataclasses import dataclass

from sentiric_tts.failures import SHUTTING_DOWN_MESSAGE, NotReady, ShuttingDown
from sentiric_tts.runtime import Runtime


@dataclass(frozen=True)
class Caller:
    client: str
    """The identity that rate limits, stream allowances and library access count against."""
    address: str
    door: str


def identify(runtime: Runtime, key: str | None, address: str, door: str) -> Caller:
    return Caller(runtime.api_keys.identify(key, address), address, door)


def admit(runtime: Runtime | None, key: str | None, address: str, door: str) -> Caller:
    """`identify`, for a door about to start work: refused while draining or not yet ready."""
    if runtime is None:
        raise NotReady()
    caller = identify(runtime, key, address, door)
    _check_open(runtime)
    return caller


def admit_keyless(runtime: Runtime | None, address: str, door: str) -> Caller:
    """`admit`, for a door with no authentication (Wyoming): API keys do not apply, the caller is
    its address (limits count per address) and, with keys set, it sees no library voice."""
    if runtime is None:
        raise NotReady()
    _check_open(runtime)
    return Caller(f"addr:{address}", address, door)


def _check_open(runtime: Runtime) -> None:
    if runtime.draining:
        raise ShuttingDown(SHUTTING_DOWN_MESSAGE, runtime.settings.admission.retry_after_seconds)
    if not runtime.ready:
        raise NotReady()
