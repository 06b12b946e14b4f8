"""Scaled time for the simulator: every delay is in simulated seconds, divided by ``speed``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class SimClock:
    def __init__(self, speed: float = 1.0, epoch: float = 1_795_336_000.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed!r}")
        self.speed = speed
        self.epoch = epoch
        self._t0: float | None = None

    def _loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    def now(self) -> float:
        """Simulated seconds since the clock was first read."""
        t = self._loop_time()
        if self._t0 is None:
            self._t0 = t
        return (t - self._t0) * self.speed

    def wall(self) -> float:
        """Simulated UNIX time."""
        return self.epoch + self.now()

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds / self.speed)
        else:
            await asyncio.sleep(0)

    def call_later(self, seconds: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, seconds) / self.speed, callback)
