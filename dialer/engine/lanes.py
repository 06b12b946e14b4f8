"""Background work the engine owns: tasks whose failures are logged, and ordered lanes.

Concurrency on the answer -> Redirect path (docs/benchmarks.md, "Real PBX"): the agent
reservation and the call assignment are decided synchronously, before any ``await``
(:meth:`dialer.engine.connect.Assigner.connect`); the Redirect then runs in a background task
(:meth:`Lanes.spawn`), so one slow AMI Response or SQL write never delays another call's
connect. Agent state writes (Redis hash, SQL ``agent_state_log``) take a snapshot synchronously
and are written in order per agent by a lane (:meth:`Lanes.in_lane`): rows never swap even when
written from different tasks. :meth:`Lanes.drain` waits for all of it (tests, shutdown).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from dialer.logging import get_logger

log = get_logger("marcador.engine")


class Lanes:
    """The engine's background tasks: awaited or cancelled by :meth:`drain` / :meth:`cancel`."""

    def __init__(self) -> None:
        #: background work (Redirects, state writes): awaited or cancelled by :meth:`drain`
        self.tasks: set[asyncio.Task[None]] = set()
        #: last task of each ordered lane (``agent:<id>``): the next one waits for it
        self._lanes: dict[str, asyncio.Task[None]] = {}
        #: work that outlives the engine's shutdown (a recording finalised after the hang-up):
        #: kept referenced until it ends, never waited for nor cancelled
        self._detached: set[asyncio.Task[None]] = set()

    def spawn(
        self, coro: Coroutine[Any, Any, None], name: str, *, detached: bool = False
    ) -> asyncio.Task[None]:
        """Run ``coro`` in a task the engine owns: its exception is logged, never lost.

        ``detached``: not part of :meth:`drain` nor :meth:`cancel` (it is only kept referenced).
        """

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("background_task_failed", task=name, error=str(exc))
            finally:
                coro.close()  # cancelled before it started: no "never awaited" warning

        task = asyncio.create_task(guarded(), name=name)
        owner = self._detached if detached else self.tasks
        owner.add(task)
        task.add_done_callback(owner.discard)
        return task

    def in_lane(self, lane: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Like :meth:`spawn`, but after the lane's previous task (FIFO per lane)."""
        prev = self._lanes.get(lane)

        async def after() -> None:
            try:
                if prev is not None and not prev.done():
                    await asyncio.wait([prev])  # its failure or cancellation is not ours
                await coro
            finally:
                coro.close()

        task = self.spawn(after(), lane)
        self._lanes[lane] = task

        def forget(t: asyncio.Task[None]) -> None:
            if self._lanes.get(lane) is t:
                del self._lanes[lane]

        task.add_done_callback(forget)
        return task

    def last(self, lane: str) -> asyncio.Task[None] | None:
        """The lane's last task, while it runs (or waits for its turn)."""
        return self._lanes.get(lane)

    async def drain(self, within: float | None = None) -> bool:
        """Wait for the background work, including what it starts; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        while self.tasks:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            _, pending = await asyncio.wait(set(self.tasks), timeout=left)
            if pending and deadline is not None and loop.time() >= deadline:
                return False
        return True

    async def cancel(self) -> None:
        """Cancel the background work (not the detached tasks) and wait for it to end."""
        tasks = list(self.tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
