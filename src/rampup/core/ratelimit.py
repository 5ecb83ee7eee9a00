"""Token buckets: how many requests a key may make, refilled at a rate, with a burst. Pure: the caller gives the
time (a monotonic reading in seconds), so the same code is tested without waiting."""

from dataclasses import dataclass

__all__ = ["RateLimiter"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Per key, `burst` requests at once and `rate` a second after that. Keys are few (one per ingest token), so
    buckets are kept for the life of the process."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float) -> float:
        """0 if `key` may go now (and it is counted), else the seconds until it may."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self._rate if self._rate > 0 else float("inf")
