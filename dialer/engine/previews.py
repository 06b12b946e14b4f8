"""The calls an agent places: preview offers (the lead on screen with a countdown) and manual
dials. Both are placed like a preview call: the answered customer goes straight into the
agent's room (``marcador-preview``), with the agent reserved for it while it rings.
"""

from __future__ import annotations

from datetime import datetime

from dialer.db.models import Lead
from dialer.domain.outcomes import AgentState, DialMode
from dialer.engine.agent_state import AgentStates
from dialer.engine.controls import CallControlRefused, CallControls
from dialer.engine.dialing import Dialing
from dialer.engine.model import CampaignRuntime, PreviewOffer
from dialer.engine.state import EngineState, Part
from dialer.logging import get_logger

log = get_logger("marcador.engine")


class Previews(Part):
    """Preview offers and manual dials of this dialer's agents."""

    def __init__(
        self, state: EngineState, agent_log: AgentStates, dialing: Dialing, controls: CallControls
    ) -> None:
        super().__init__(state)
        self.agent_log = agent_log
        self.dialing = dialing
        self.controls = controls

    async def offer_previews(self, rt: CampaignRuntime, now: datetime) -> None:
        """Preview: every READY agent gets the next lead on screen, with a countdown.

        The lead is claimed while it is on the agent's screen. The agent calls or skips; when
        the countdown ends the call is placed (``preview_auto_call``).
        """
        camp = rt.campaign
        for agent in self.state.campaign_agents(camp.id):
            offer = self.previews.get(agent.agent_id)
            if offer is not None:
                if now >= offer.deadline and self.config.preview_auto_call:
                    await self.preview_call(agent.agent_id)
                continue
            if not agent.is_available:
                continue
            for lead_id in await self.store.candidate_ids(camp.id, now, 5):
                if not await self.leases.acquire(
                    self.keys.lead_lease(lead_id), self.config.dialer_id, self.config.lead_lease_ms
                ):
                    continue
                claimed, _ = await self.store.claim(
                    lead_id, camp, self.config.dialer_id, now, self.config.claim_ttl
                )
                if not claimed:
                    await self.leases.release(self.keys.lead_lease(lead_id), self.config.dialer_id)
                    continue
                deadline = now + self.config.preview_seconds
                self.previews[agent.agent_id] = PreviewOffer(lead_id, camp.id, now, deadline)
                await self.agent_log.log(agent.agent_id)
                await self.publish(
                    "preview_offer",
                    {
                        "agent_id": agent.agent_id,
                        "lead_id": lead_id,
                        "campaign_id": camp.id,
                        "deadline": deadline.isoformat(),
                    },
                )
                break

    async def preview_call(self, agent_id: int) -> bool:
        """The agent pressed "Llamar" (or the countdown ended): dial the offered lead."""
        offer = self.previews.pop(agent_id, None)
        agent = self.agents.get(agent_id)
        rt = self.campaigns.get(offer.campaign_id) if offer else None
        if offer is None or agent is None or rt is None or not agent.is_available:
            return False
        server = self.dialing.pick_server(rt.campaign)
        if server is None:
            await self.store.release_claim(offer.lead_id)
            return False
        return await self.dialing.originate_claimed(
            rt, offer.lead_id, server, self._now(), DialMode.PREVIEW, preview_agent=agent
        )

    async def preview_skip(self, agent_id: int) -> bool:
        """The agent skipped the offered lead: it goes back to the pool, later."""
        offer = self.previews.pop(agent_id, None)
        if offer is None:
            return False
        now = self._now()
        await self.store.skip_lead(offer.lead_id, now, now + self.config.preview_skip_delay)
        await self.leases.release(self.keys.lead_lease(offer.lead_id), self.config.dialer_id)
        await self.agent_log.log(agent_id)
        return True

    async def manual_dial(self, agent_id: int, lead_id: int) -> str:
        """The agent dials a lead of their campaign by hand (a callback, a preview they chose).

        Allowed READY or PAUSED (not while connecting), with no call and no preview on screen.
        Every rule the dialer applies still applies: the lead is claimed through the same
        :meth:`EngineStore.claim` (``evaluate_readiness``, what ``lead explain`` prints), and a
        refusal carries its reasons (code ``not_eligible``). The call is then placed like a
        preview call: the answered customer goes straight into the agent's room. Returns the
        attempt uuid.
        """
        agent = self.agents.get(agent_id)
        if agent is None or not agent.is_logged_in:
            raise CallControlRefused("not_logged_in", "the agent is not logged in")
        busy = agent.state not in (AgentState.READY, AgentState.PAUSED)
        if busy or not agent.room_joined or agent.pause_code == "connecting":
            raise CallControlRefused("agent_busy", f"cannot dial now ({agent.state.value})")
        if agent_id in self.previews:
            raise CallControlRefused("preview_pending", "call or skip the lead on screen first")
        rt = self.campaigns.get(agent.campaign_id or -1)
        if rt is None:
            raise CallControlRefused(
                "campaign_not_running", "this dialer does not run the campaign"
            )
        async with self.store.sm() as s:
            lead = await s.get(Lead, lead_id)
            lead_campaign = lead.campaign_id if lead is not None else None
        if lead_campaign != rt.campaign.id:
            raise CallControlRefused("lead_not_in_campaign", "the lead is not in your campaign")
        server = self.dialing.pick_server(rt.campaign)
        if server is None:
            raise CallControlRefused("no_pbx", "no Asterisk link is up")
        now = self._now()
        lease_key = self.keys.lead_lease(lead_id)
        if not await self.leases.acquire(
            lease_key, self.config.dialer_id, self.config.lead_lease_ms
        ):
            raise CallControlRefused("lead_busy", "the lead is being dialed right now")
        claimed, readiness = await self.store.claim(
            lead_id, rt.campaign, self.config.dialer_id, now, self.config.claim_ttl
        )
        if not claimed:
            await self.leases.release(lease_key, self.config.dialer_id)
            if readiness is None:
                raise CallControlRefused("lead_busy", "the lead is claimed or closed")
            raise CallControlRefused(
                "not_eligible",
                f"{readiness.summary_es()} [{', '.join(r.code.value for r in readiness.failed)}]",
            )
        agent = self.agents.get(agent_id)
        if agent is not None and agent.state is AgentState.PAUSED and agent.room_joined:
            agent = agent.ready(now)  # no await until the call reserves the agent
        if agent is None or not agent.is_available:
            await self.store.release_claim(lead_id)
            await self.leases.release(lease_key, self.config.dialer_id)
            raise CallControlRefused("agent_busy", "the agent took another call meanwhile")
        # Held RESERVED (no attempt yet) while the attempt row is written: no customer waiting
        # in hold can be given to this agent meanwhile; _originate_claimed reserves for real.
        self.agents[agent_id] = agent.reserve("", now)
        if not await self.dialing.originate_claimed(
            rt, lead_id, server, now, DialMode.PREVIEW, preview_agent=agent
        ):
            self.agents[agent_id] = agent
            await self.agent_log.log(agent_id)
            raise CallControlRefused("not_dialable", "the lead has no dialable phone left")
        attempt = self.agents[agent_id].call_attempt or ""
        call = self.calls.get(attempt)
        if call is not None:
            await self.controls.record_control(call, agent_id, "manual_dial", now, {})
        return attempt
