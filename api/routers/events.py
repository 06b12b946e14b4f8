"""Live events over SSE, fed by the Redis event stream and filtered per caller.

``GET /api/v1/events/stream`` (``text/event-stream``): agents receive only their own events
(``agent_state``, ``screen_pop``...), supervisors the events of their campaigns, admins and
API keys with ``events:read`` everything. Resume with the standard ``Last-Event-ID`` header.

Each API process reads the stream once (:class:`api.events.Broadcaster`) and fans it out.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse

from api.auth import Scope
from api.deps import Ctx, Scoped
from api.events import Broadcaster

router = APIRouter(prefix="/events", tags=["events"])

_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


@router.get(
    "/stream",
    summary="Server-sent events (live dashboard and agent screen)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
    dependencies=[Scoped(Scope.EVENTS_READ)],
)
async def stream(
    ctx: Ctx,
    last_event_id: Annotated[str | None, Header(max_length=50)] = None,
) -> StreamingResponse:
    campaigns = await ctx.campaign_scope()
    await ctx.db.close()  # nothing else to read: do not hold a connection for hours
    start = last_event_id if last_event_id and _STREAM_ID.match(last_event_id) else None
    broadcaster: Broadcaster = ctx.request.app.state.broadcaster
    await broadcaster.start()  # from here on, no event is missed
    return StreamingResponse(
        broadcaster.events(ctx.principal, campaigns, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
