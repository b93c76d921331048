"""Who is calling and what they may do, for every door: API keys (and which library voices each
may see), the owner of the voices a key creates, per-client request rate (token bucket) and
concurrent-stream allowance."""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Callable

from sentiric_tts.failures import RateLimited, Unauthorized
from sentiric_tts.voices.access import NO_ACCESS, OPEN_ACCESS, LibraryAccess

MISSING_KEY_MESSAGE = "Missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a caller presents, from `Authorization: Bearer` or `X-API-Key` (any door's headers)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return x_api_key or None


def owner_hash(key: str) -> str:
    """The owner of the library voices a key creates, as stored in the library (never the key).

    A plain SHA-256, domain-separated so that it matches no digest of the key made elsewhere, and
    not a keyed hash: the owner must be computable from the presented key on every request and
    outlive any server secret (a lost secret would orphan every voice). API keys are random
    secrets, so the digest does not give them away, and a digest never authenticates anyone."""
    return hashlib.sha256(b"sentiric-tts voice owner\0" + key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, keys: tuple[str, ...], admin_keys: tuple[str, ...] = ()) -> None:
        every = tuple(dict.fromkeys((*keys, *admin_keys)))  # an admin key is an API key too
        # Compare digests so every comparison takes the same time whatever the key lengths.
        self._digests = [hashlib.sha256(key.encode()).digest() for key in every]
        admins = set(admin_keys)
        self._access = {
            self._identity(key): LibraryAccess(owner=owner_hash(key), sees_all=key in admins) for key in every
        }

    @staticmethod
    def _identity(key: str) -> str:
        return f"key:{hashlib.sha256(key.encode()).hexdigest()[:16]}"

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def identify(self, key: str | None, address: str) -> str:
        """The client's identity for limits: its key's fingerprint, or its address when open.

        Raises Unauthorized when keys are set and `key` is missing or wrong."""
        if not self.enabled:
            return f"addr:{address}"
        digest = hashlib.sha256((key or "").encode()).digest()
        matched = False
        for known in self._digests:  # no early exit: timing does not tell which key matched
            matched |= hmac.compare_digest(digest, known)
        if key is None or not matched:
            raise Unauthorized(MISSING_KEY_MESSAGE)
        return self._identity(key)

    def library_access(self, client: str) -> LibraryAccess:
        """Which library voices the client `identify` named may see (everything when open)."""
        if not self.enabled:
            return OPEN_ACCESS
        return self._access.get(client, NO_ACCESS)


class ClientLimits:
    """Token bucket per client, and a count of each client's requests in flight."""

    def __init__(self, per_minute: int, burst: int, max_streams: int) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._max_streams = max_streams
        self._buckets: dict[str, tuple[float, float]] = {}
        self._streams: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> None:
        if self._rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self._rate)
                raise RateLimited(
                    f"Rate limit reached ({round(self._rate * 60)} requests per minute); retry in {wait} s.",
                    wait,
                    "rate_limited",
                )
            self._buckets[client] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:  # forget idle clients so memory stays bounded
                cutoff = now - self._burst / self._rate
                self._buckets = {k: v for k, v in self._buckets.items() if v[1] > cutoff}

    def acquire_stream(self, client: str) -> Callable[[], None]:
        """Count one more request in flight for `client`; returns the (idempotent) release."""
        if self._max_streams <= 0:
            return lambda: None
        with self._lock:
            if self._streams.get(client, 0) >= self._max_streams:
                raise RateLimited(
                    f"Too many requests in flight for this client (limit {self._max_streams}); "
                    "wait for one to finish.",
                    1,
                    "too_many_streams",
                )
            self._streams[client] = self._streams.get(client, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                left = self._streams[client] - 1
                if left:
                    self._streams[client] = left
                else:
                    del self._streams[client]

        return release
