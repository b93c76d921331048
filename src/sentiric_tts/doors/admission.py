"""Every door's first step: who is calling, and whether the service takes new work.

A door presents the caller's key (or none) and address; `identify` names the caller the limits
and the voice library count against (Unauthorized when keys are set and the key is missing or
wrong); `admit` also refuses work while the service drains (ShuttingDown) or before it is ready
(NotReady). Each door reports these failures through its own table, like any other.
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
    if runtime.draining:
        raise ShuttingDown(SHUTTING_DOWN_MESSAGE, runtime.settings.admission.retry_after_seconds)
    if not runtime.ready:
        raise NotReady()
    return caller
