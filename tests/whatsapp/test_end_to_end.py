"""End to end within the WhatsApp scope, on a fake clock and without sockets:

lead exhausted by the engine's store (3 unanswered calls) -> outbox row + stream entry ->
the worker sends the template to the fake Graph API -> signed, batched statuses come back
through the webhook router -> the customer replies "Sí, quiero agendar" -> the lead is a
callback at the top of its campaign -> the engine dials it and an agent gets the call.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from ami_bridge import dialplan
from ami_bridge.tracker import CallAnswered, CallConnected, CallHeld
from dialer.db.models import CallAttempt, Consent, Lead, Phone, WhatsAppMessage, WhatsAppStatus
from dialer.domain.outcomes import AgentState, CallOutcome, Channel, DialMode, LeadStatus
from dialer.engine import Engine, EngineConfig, TelephonyItem
from dialer.redis_client import Streams
from dialer.store import CallResult, EngineStore
from tests.engine.factories import make_agent
from tests.engine.fakes import FakeTelephony
from tests.engine.test_engine import _join

from .conftest import MONDAY_10AM, Harness, make_campaign


async def _exhaust(h: Harness, store: EngineStore, campaign_id: int, lead_id: int) -> int:
    now = h.clock.now()
    for _ in range(3):
        camp = await store.campaign(campaign_id)
        assert camp is not None
        ok, _ = await store.claim(lead_id, camp, "dialer-1", now, timedelta(seconds=30))
        assert ok
        info = await store.create_attempt(
            lead_id, camp, "dialer-1", "sim", DialMode.PROGRESSIVE, now
        )
        res = await store.finish_attempt(
            info.uuid, CallResult(CallOutcome.NO_ANSWER, ended_at=now), now
        )
        assert res.decision is not None
        if res.whatsapp_message_id is not None:
            # What Engine.publish_whatsapp does after the commit.
            await Streams(h.redis).add(
                h.keys.whatsapp_stream,
                "lead_exhausted",
                {"message_id": res.whatsapp_message_id, "lead_id": lead_id},
            )
            h.clock.set(now)
            return res.whatsapp_message_id
        assert res.decision.next_attempt_at is not None
        now = res.decision.next_attempt_at
    raise AssertionError("the lead was not exhausted after 3 attempts")


async def test_exhausted_lead_to_whatsapp_to_reply_to_callback(h: Harness) -> None:
    store = EngineStore(h.sm)
    camp_id = await make_campaign(h.sm, max_attempts=3)
    async with h.sm.begin() as s:
        lead = Lead(
            campaign_id=camp_id,
            dedupe_key="cc:40111222",
            national_id="40111222",
            customer_name="Luz Dary Camargo",
            brand="Renault",
            model="Logan",
            plate="UBX123",
            branch="Duitama",
        )
        lead.phones = [Phone(e164="+573104445566", kind="mobile", position=0)]
        s.add(lead)
        for channel in (Channel.VOICE, Channel.WHATSAPP):
            s.add(
                Consent(
                    person_key="40111222",
                    channel=channel,
                    proof="formulario de servicio 2025",
                    granted_at=MONDAY_10AM - timedelta(days=90),
                )
            )
        await s.flush()
        lead_id = lead.id

    message_id = await _exhaust(h, store, camp_id, lead_id)
    async with h.sm() as s:
        assert (await s.get_one(Lead, lead_id)).status is LeadStatus.EXHAUSTED

    # The worker sends the fallback to the fake Graph API.
    assert await h.worker.tick() == 1
    [sent] = h.fake.messages
    assert sent.to == "573104445566" and sent.body_params[:3] == [
        "Luz Dary Camargo",
        "Renault Logan UBX123",
        "Duitama",
    ]
    # Signed statuses come back in one batch, out of order, through the webhook router.
    h.clock.advance(30)
    assert await h.fake.deliver_statuses([(sent.wamid, "read"), (sent.wamid, "sent")]) == 200
    h.clock.advance(30)
    assert await h.fake.deliver_statuses([(sent.wamid, "delivered")]) == 200
    row = await h.message(message_id)
    assert row.status is WhatsAppStatus.READ

    # The customer answers; the lead becomes a callback due now, first in its campaign.
    h.clock.advance(600)
    assert await h.fake.deliver_inbound("+573104445566", "Sí, quiero agendar", sent.wamid) == 200
    async with h.sm() as s:
        back = await s.get_one(Lead, lead_id)
        inbound = (
            await s.scalars(sa.select(WhatsAppMessage).where(WhatsAppMessage.direction == "in"))
        ).one()
    assert back.status is LeadStatus.PENDING and back.is_callback
    assert inbound.lead_id == lead_id and inbound.text == "Sí, quiero agendar"
    [reply] = await h.events("whatsapp_reply")
    assert reply["lead_id"] == lead_id and reply["campaign_id"] == camp_id

    now = h.clock.now()
    assert (await store.candidate_ids(camp_id, now, 10))[0] == lead_id
    # The engine calls the customer back and an agent gets the call (the engine's real code,
    # with a scripted PBX): claim (a requested callback is exempt from the one-channel-a-week
    # cap after the WhatsApp conversation) -> attempt -> Originate -> answer -> agent.
    await make_agent(h.sm, 7, "1001")
    tel = FakeTelephony()
    engine = Engine(EngineConfig(dialer_id="d1"), store, h.redis, h.keys, tel, h.clock)
    await engine.agent_login(7, "1001", camp_id)
    login = tel.originates[-1][1]
    await engine.handle(TelephonyItem("sim", _join(login.channel_id, "agent-1001")))
    assert engine.agents[7].state is AgentState.READY
    await engine.step()
    [(_, dial)] = [(srv, r) for srv, r in tel.originates if r.context == dialplan.CTX_OUTBOUND]
    async with h.sm() as s:
        attempt = (
            await s.scalars(sa.select(CallAttempt).where(CallAttempt.uuid == dial.channel_id))
        ).one()
    assert attempt.lead_id == lead_id and attempt.number == "+573104445566"
    uuid = dial.channel_id
    await engine.handle(TelephonyItem("sim", CallAnswered(uuid, h.clock.now(), "Local/x;1", uuid)))
    await engine.handle(TelephonyItem("sim", CallHeld(uuid, h.clock.now(), "Local/x;1", uuid)))
    await engine.drain()  # the Redirect runs in a background task
    assert tel.redirects == [("sim", "Local/x;1", dialplan.CTX_AGENT_ROOM, "1001")]
    await engine.handle(
        TelephonyItem("sim", CallConnected(uuid, h.clock.now(), None, "agent-1001", None))
    )
    agent = engine.agents[7]
    assert agent.state is AgentState.IN_CALL
    await engine.drain()  # the screen-pop is published from the call's background lane
    pops = [e for e in await h.events("screen_pop") if e["attempt"] == uuid]
    assert pops and pops[0]["agent_id"] == 7 and pops[0]["lead_id"] == lead_id
    # Nothing more goes out on WhatsApp for this lead.
    await h.worker.sweep()
    assert len(h.fake.messages) == 1
    funnel = (await h.worker.store.funnel(camp_id)).to_dict()
    assert funnel == {
        "queued": 1,
        "sent": 1,
        "delivered": 1,
        "read": 1,
        "replied": 1,
        "failed": 0,
        "skipped": 0,
    }
