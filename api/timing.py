"""Server-side request timing and event-loop lag.

:class:`RequestTiming` is a pure ASGI middleware. For every HTTP request it measures the time
from entering the application to the response's start (status and headers, so a streaming
response such as the SSE stream counts until its headers), and

- adds a ``Server-Timing: app;dur=<ms>`` header (the W3C header browsers' developer tools
  show), so a client can tell the time spent inside the API from the time spent before it
  (its own event loop, the network, the accept queue);
- observes it in the ``marcador_http_request_duration_seconds{method,route}`` histogram of the
  app's metrics registry. ``route`` is the matched route's path template
  (``/api/v1/leads/{lead_id}``), never the raw path, so the label set stays bounded; requests
  that match no route are ``unmatched``.

:func:`freeze_gc_after` keeps full garbage collections short: once the first requests have
loaded what a process keeps (compiled SQL, validators, caches), it collects once and freezes
the survivors (``gc.freeze()``), so later full collections only walk what came after.

:func:`watch_loop_lag` measures how late the event loop wakes a task that sleeps a fixed
interval (``marcador_event_loop_lag_seconds``): a long synchronous step anywhere in the process
shows there, whatever request it delays.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Buckets in seconds: fine below 100 ms, where the API's goals are.
REQUEST_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class TimingMetrics:
    """The histograms, registered in the app's own registry (no global state)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Histogram(
            "marcador_http_request_duration_seconds",
            "Time inside the API from a request's arrival to its response start",
            ["method", "route"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.loop_lag = Histogram(
            "marcador_event_loop_lag_seconds",
            "How late the API's event loop wakes a task sleeping a fixed interval",
            buckets=LAG_BUCKETS,
            registry=registry,
        )


def route_label(scope: Scope) -> str:
    """The matched route's full path template, or ``unmatched``.

    A route of an included router carries its template without the inclusion's prefix
    (``/campaigns/{campaign_id}`` for ``/api/v1/campaigns/7``); the prefix is the shortest
    literal head of the request path after which the route's pattern matches the rest.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str) or not template:
        return "unmatched"
    pattern = getattr(route, "path_regex", None)
    path = scope.get("path", "")
    if pattern is None or not isinstance(path, str) or pattern.match(path):
        return template
    cut = path.find("/", 1)
    while cut > 0:
        if pattern.match(path[cut:]):
            return path[:cut] + template
        cut = path.find("/", cut + 1)
    return template


class RequestTiming:
    """Times HTTP requests inside the app (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: TimingMetrics,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.clock()
        observed = False

        def observe() -> float:
            nonlocal observed
            elapsed = self.clock() - started
            if not observed:
                observed = True
                self.metrics.requests.labels(scope["method"], route_label(scope)).observe(elapsed)
            return elapsed

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not observed:
                elapsed = observe()
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={elapsed * 1000:.1f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            if not observed:  # no response started (the client went away, or an error)
                observe()


async def watch_loop_lag(
    metrics: TimingMetrics, stop: asyncio.Event, interval: float = 0.1
) -> None:
    """Until ``stop``: sleep ``interval``, observe how much later than asked the loop woke."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        asked = loop.time()
        try:
            await asyncio.wait_for(stop.wait(), interval)
            return
        except TimeoutError:
            pass
        metrics.loop_lag.observe(max(0.0, loop.time() - asked - interval))


async def freeze_gc_after(
    delay: float,
    stop: asyncio.Event,
    collect: Callable[[], object] = gc.collect,
    freeze: Callable[[], None] = gc.freeze,
) -> bool:
    """After ``delay`` seconds (unless ``stop`` comes first): one full collection, then
    ``gc.freeze()``. Returns whether it ran. Process-wide: for ``marcador api``, not tests."""
    try:
        await asyncio.wait_for(stop.wait(), delay)
        return False
    except TimeoutError:
        pass
    collect()
    freeze()
    return True
