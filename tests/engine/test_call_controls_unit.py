"""Call controls with the scripted telephony (issue 15): hanging up a manual call that still
rings cancels it, and the command path maps refusals to their codes."""

from __future__ import annotations

import json

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ami_bridge import dialplan
from dialer.domain.outcomes import AgentState, CallOutcome
from dialer.engine import TelephonyItem
from dialer.redis_client import StreamEntry
from dialer.redis_keys import Keys

from .factories import make_campaign, make_lead
from .test_engine import _ended, _engine, _ready_agent


async def test_hangup_while_a_manual_call_rings_cancels_it(
    sessionmaker: async_sessionmaker[AsyncSession], redis: aioredis.Redis, keys: Keys
) -> None:
    engine, tel, clock = await _engine(sessionmaker, redis, keys)
    camp = await make_campaign(sessionmaker)
    lead = await make_lead(sessionmaker, camp.id, 1)
    await engine.step()  # owns the campaign; no agent yet: nothing dialed
    await _ready_agent(engine, tel, camp.id)
    uuid = await engine.manual_dial(7, lead.id)
    req = tel.originates[-1][1]
    assert (req.context, req.exten, req.channel_id) == (dialplan.CTX_PREVIEW, "1001", uuid)
    assert engine.agents[7].call_attempt == uuid  # RESERVED for it

    # the agent's "Colgar" arrives as a command: it cancels the ringing call
    entry = StreamEntry(
        keys.commands_stream,
        "1-0",
        "call_control",
        {"agent_id": 7, "action": "hangup", "attempt": uuid},
    )
    assert await engine.handle_command(entry)
    assert tel.hangups == [("sim", uuid)]  # Telephony.cancel: CANCELLED if unanswered
    result = json.loads(await redis.get(keys.command_result("1-0")) or "{}")
    assert result["status"] == "accepted"
    await engine.handle(TelephonyItem("sim", _ended(uuid, CallOutcome.CANCELLED, clock)))
    assert engine.agents[7].state is AgentState.READY and engine.agents[7].call_attempt is None

    # a control refused by the dialer carries its code
    entry = StreamEntry(
        keys.commands_stream, "2-0", "call_control", {"agent_id": 7, "action": "hold"}
    )
    assert await engine.handle_command(entry)
    result = json.loads(await redis.get(keys.command_result("2-0")) or "{}")
    assert (result["status"], result["code"]) == ("rejected", "not_in_call")
