"""Rate limits with the `limits` library: failed authentications per client address, operations per user.

Counters live in memory (one process) or in Redis (shared by every process and server). Storage is taken
from BUDGETBRIDGE_RATE_LIMIT_STORAGE, else from a redis:// BUDGETBRIDGE_BROADCAST_URL, else memory. If
the storage cannot be reached the request is let through and a warning logged: a dead Redis must not take
the API down with it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import limits
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

log = logging.getLogger("budgetbridge.rate_limits")


def storage_url(configured: str, broadcast_url: str) -> str:
    """The `limits` storage URI for the settings (async storages are `async+...`)."""
    url = configured or (broadcast_url if broadcast_url.startswith(("redis://", "rediss://")) else "memory://")
    return url if url.startswith("async+") else f"async+{url}"


@dataclass(frozen=True)
class Refusal:
    """Over a limit: retry after this many whole seconds."""

    retry_after: int


class RateLimits:
    def __init__(self, storage: str, failed_auth: str, operations: str, namespace: str = "budgetbridge") -> None:
        options = {"implementation": "redispy"} if "redis" in storage else {}
        self.storage = storage_from_string(storage, **options)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.failed_auth = limits.parse(failed_auth)
        self.operations = limits.parse(operations)
        self.namespace = namespace

    async def _over(self, item: limits.RateLimitItem, kind: str, key: str, *, hit: bool) -> Refusal | None:
        try:
            if hit:
                allowed = await self.limiter.hit(item, self.namespace, kind, key)
            else:
                allowed = await self.limiter.test(item, self.namespace, kind, key)
            if allowed:
                return None
            stats = await self.limiter.get_window_stats(item, self.namespace, kind, key)
        except Exception as exc:
            log.warning("rate limit storage unavailable (%s); letting the request through", exc)
            return None
        return Refusal(max(1, math.ceil(stats.reset_time - time.time())))

    async def aclose(self) -> None:
        """Close a Redis storage's connections at shutdown. `limits` has no close of its own: its storage holds
        a redis-py client (`bridge.storage`), whose pool would otherwise be left to the garbage collector."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()

    async def auth_blocked(self, address: str) -> Refusal | None:
        """Has this address failed to authenticate too often? (Checked before the token is.)"""
        return await self._over(self.failed_auth, "auth", address, hit=False)

    async def auth_failed(self, address: str) -> None:
        await self._over(self.failed_auth, "auth", address, hit=True)

    async def operation(self, user_id: str) -> Refusal | None:
        """Count one operation of the user; a Refusal when over the limit."""
        return await self._over(self.operations, "ops", user_id, hit=True)

    async def clear_operations(self, user_id: str) -> None:
        """Forget a user's operation count (tests)."""
        await self.limiter.clear(self.operations, self.namespace, "ops", user_id)
