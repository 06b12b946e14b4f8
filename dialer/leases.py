"""Redis leases with owner tokens and expiry (claimed leads, campaign ownership).

A lease is ``SET key owner NX PX ttl``. Renewal and release are compare-and-set Lua scripts,
so a dialer can never extend or drop a lease another dialer took over after it expired.
Leases are the fast path; the SQL ``lead_claims`` row is the durable guarantee.
"""

from __future__ import annotations

import redis.asyncio as aioredis

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Leases:
    def __init__(self, client: aioredis.Redis) -> None:
        self._r = client

    async def acquire(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take the lease if free (or already ours: then it is renewed)."""
        if await self._r.set(key, owner, nx=True, px=ttl_ms):
            return True
        return await self.renew(key, owner, ttl_ms)

    async def renew(self, key: str, owner: str, ttl_ms: int) -> bool:
        result = await self._r.eval(_RENEW, 1, key, owner, str(ttl_ms))  # type: ignore[misc]
        return bool(result)

    async def release(self, key: str, owner: str) -> bool:
        result = await self._r.eval(_RELEASE, 1, key, owner)  # type: ignore[misc]
        return bool(result)

    async def force_release(self, *keys: str) -> int:
        """Drop leases whatever their owner (the owner is known to be dead)."""
        if not keys:
            return 0
        return int(await self._r.delete(*keys))

    async def owner(self, key: str) -> str | None:
        value = await self._r.get(key)
        return value if isinstance(value, str) else None
