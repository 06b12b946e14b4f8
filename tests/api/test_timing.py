"""The request-timing middleware and the event-loop lag watcher, without a server."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry
from starlette.types import Message, Receive, Scope, Send

from api.timing import (
    RequestTiming,
    TimingMetrics,
    freeze_gc_after,
    route_label,
    watch_loop_lag,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def sample(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_header_and_histogram_from_the_response_start() -> None:
    registry = CollectorRegistry()
    metrics = TimingMetrics(registry)
    clock = FakeClock()

    class Route:
        path = "/api/v1/leads/{lead_id}"

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = Route()  # what Starlette's router does
        clock.now += 0.0125  # the handler's work
        await send({"type": "http.response.start", "status": 200, "headers": [(b"a", b"1")]})
        clock.now += 5.0  # streaming the body does not count
        await send({"type": "http.response.body", "body": b"x"})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope: Scope = {"type": "http", "method": "GET", "path": "/api/v1/leads/7"}
    await RequestTiming(app, metrics, clock=clock)(scope, receive, send)
    assert sent[0]["headers"] == [(b"a", b"1"), (b"server-timing", b"app;dur=12.5")]
    labels = {"method": "GET", "route": "/api/v1/leads/{lead_id}"}
    assert sample(registry, "marcador_http_request_duration_seconds_count", labels) == 1.0
    total = sample(registry, "marcador_http_request_duration_seconds_sum", labels)
    assert total is not None and abs(total - 0.0125) < 1e-9


async def test_a_request_that_never_answers_is_still_observed_once() -> None:
    registry = CollectorRegistry()
    metrics = TimingMetrics(registry)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    scope: Scope = {"type": "http", "method": "POST", "path": "/x"}
    with pytest.raises(RuntimeError, match="boom"):
        await RequestTiming(app, metrics, clock=FakeClock())(scope, receive, send)
    labels = {"method": "POST", "route": "unmatched"}
    assert sample(registry, "marcador_http_request_duration_seconds_count", labels) == 1.0


async def test_other_scopes_pass_through_untimed() -> None:
    registry = CollectorRegistry()
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    await RequestTiming(app, TimingMetrics(registry))({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]
    assert route_label({"type": "http"}) == "unmatched"
    assert sample(registry, "marcador_http_request_duration_seconds_count", {}) is None


async def test_loop_lag_observes_each_wake_and_stops_when_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = CollectorRegistry()
    metrics = TimingMetrics(registry)
    stop = asyncio.Event()
    lags: list[float] = []
    observe = metrics.loop_lag.observe

    def recording(value: float) -> None:
        lags.append(value)
        observe(value)
        if len(lags) == 3:
            stop.set()  # the watcher ends itself after its third wake

    monkeypatch.setattr(metrics.loop_lag, "observe", recording)
    await asyncio.wait_for(watch_loop_lag(metrics, stop, interval=0.001), 10)
    assert len(lags) == 3 and all(lag >= 0.0 for lag in lags)
    assert sample(registry, "marcador_event_loop_lag_seconds_count", {}) == 3.0
    stopped = asyncio.Event()
    stopped.set()
    await asyncio.wait_for(watch_loop_lag(metrics, stopped), 1)  # already stopped: returns
    assert sample(registry, "marcador_event_loop_lag_seconds_count", {}) == 3.0


async def test_gc_freeze_runs_once_after_the_delay_unless_stopped() -> None:
    calls: list[str] = []
    stop = asyncio.Event()
    ran = await freeze_gc_after(
        0.0, stop, collect=lambda: calls.append("collect"), freeze=lambda: calls.append("freeze")
    )
    assert ran is True and calls == ["collect", "freeze"]
    stop.set()
    calls.clear()
    ran = await freeze_gc_after(
        3600.0, stop, collect=lambda: calls.append("collect"), freeze=lambda: calls.append("freeze")
    )
    assert ran is False and calls == []
