"""Dialing a lead: the lease and the claim, the attempt row, then the Originate.

Ordering guarantees that make crashes safe:

* a lead is claimed (SQL ``lead_claims`` + Redis lease) before anything else
  (:meth:`Dialing.dial_lead`);
* the attempt row is committed before the Originate is sent (:meth:`Dialing.originate_claimed`);
  a lead that turns out not to be dialable is closed instead (an exhausted lead's WhatsApp
  fallback row is committed with it, then published).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from ami_bridge import dialplan
from ami_bridge.actions import OriginateRequest
from ami_bridge.errors import AMIError
from dialer.db.models import Campaign
from dialer.domain.agents import AgentSession
from dialer.domain.errors import AttemptLimitReached, NoDialablePhone
from dialer.domain.outcomes import DialMode, LeadStatus
from dialer.engine.agent_state import AgentStates
from dialer.engine.model import CampaignRuntime, LiveCall
from dialer.engine.outbox import Outbox
from dialer.engine.state import EngineState, Part
from dialer.logging import get_logger
from dialer.pacing.types import Segment
from dialer.recordings import recording_variables

log = get_logger("marcador.engine")


class Dialing(Part):
    """Places calls: the pacer's, previews' and agents' manual dials."""

    def __init__(self, state: EngineState, agent_log: AgentStates, outbox: Outbox) -> None:
        super().__init__(state)
        self.agent_log = agent_log
        self.outbox = outbox
        self._server_rr = 0

    def pick_server(self, campaign: Campaign) -> str | None:
        names = [s for s in self.tel.server_names() if self.tel.link_up(s)]
        wanted = campaign.servers.get("names") if campaign.servers else None
        if wanted:
            names = [s for s in names if s in wanted]
        if not names:
            return None
        self._server_rr = (self._server_rr + 1) % len(names)
        return names[self._server_rr]

    async def dial_lead(
        self,
        rt: CampaignRuntime,
        lead_id: int,
        now: datetime,
        mode: DialMode,
        preview_agent: AgentSession | None = None,
    ) -> bool:
        camp = rt.campaign
        server = self.pick_server(camp)
        if server is None:
            return False
        lease_key = self.keys.lead_lease(lead_id)
        ttl_ms = self.config.lead_lease_ms
        if not await self.leases.acquire(lease_key, self.config.dialer_id, ttl_ms):
            return False
        claimed, _ = await self.store.claim(
            lead_id, camp, self.config.dialer_id, now, self.config.claim_ttl
        )
        if not claimed:
            await self.leases.release(lease_key, self.config.dialer_id)
            return False
        return await self.originate_claimed(rt, lead_id, server, now, mode, preview_agent)

    async def originate_claimed(
        self,
        rt: CampaignRuntime,
        lead_id: int,
        server: str,
        now: datetime,
        mode: DialMode,
        preview_agent: AgentSession | None = None,
    ) -> bool:
        """Write the attempt row, then originate. The lead is already claimed by us."""
        camp = rt.campaign
        lease_key = self.keys.lead_lease(lead_id)
        try:
            info = await self.store.create_attempt(
                lead_id, camp, self.config.dialer_id, server, mode, now
            )
        except (AttemptLimitReached, NoDialablePhone) as exc:
            # Every attempt used, or every phone invalid/DNC/used up: close the lead instead
            # of failing the round (exhausted leads get their WhatsApp fallback).
            log.warning("lead_not_dialable", lead=lead_id, reason=exc.code)
            at_limit = isinstance(exc, AttemptLimitReached)
            message_id = await self.store.close_claimed(
                lead_id,
                LeadStatus.EXHAUSTED if at_limit else LeadStatus.EXCLUDED,
                exc.code,
                now,
            )
            await self.leases.release(lease_key, self.config.dialer_id)
            if message_id is not None:
                await self.outbox.publish_whatsapp(message_id, lead_id)
            return False
        except (LookupError, IntegrityError, StaleDataError) as exc:
            # Our claim expired and was taken back meanwhile: nothing was dialed.
            log.warning("claim_lost_before_dial", lead=lead_id, error=type(exc).__name__)
            await self.leases.release(lease_key, self.config.dialer_id)
            return False
        # The Originate goes out now, not at the round's ``now``: the claim and the row may have
        # waited on the database (seconds under a write lock: issue 20, live vs simulated), and
        # ring times, answer delays and the pacer's samples are measured from this moment.
        sent = self._now()
        call = LiveCall(
            uuid=info.uuid,
            campaign_id=camp.id,
            lead_id=lead_id,
            server=server,
            number=info.number,
            attempt_number=info.attempt_number,
            dialed_at=sent,
            mode=mode,
            preview=preview_agent is not None,
            agent_id=preview_agent.agent_id if preview_agent else None,
        )
        self.calls[info.uuid] = call
        # tag the call with the decision that launched it (preview calls: none)
        decision = rt.last_decision if preview_agent is None else None
        rt.feed.dialed(
            info.uuid,
            Segment(attempt=call.attempt_number, hour=sent.hour),
            sent.timestamp(),
            decision.reason if decision is not None else None,
        )
        if preview_agent is not None:
            self.agents[preview_agent.agent_id] = preview_agent.reserve(info.uuid, now)
            await self.agent_log.log(preview_agent.agent_id)
        req = self._originate_request(camp, info.uuid, info.number, lead_id, server, preview_agent)
        try:
            action_id = await self.tel.originate(
                server,
                req,
                call_id=info.uuid,
                ring_timeout=timedelta(seconds=camp.ring_timeout),
            )
        except AMIError as exc:
            # The tracker resolves it (FAILED, not counted); the outcome arrives as CallEnded.
            log.warning("originate_failed", attempt=info.uuid, error=type(exc).__name__)
            return True
        await self.store.mark_dialed(info.uuid, action_id, sent)
        await self.publish(
            "call_dialing",
            {"attempt": info.uuid, "campaign_id": camp.id, "lead_id": lead_id, "server": server},
        )
        return True

    def _originate_request(
        self,
        camp: Campaign,
        attempt_uuid: str,
        number: str,
        lead_id: int,
        server: str,
        preview_agent: AgentSession | None,
    ) -> OriginateRequest:
        trunk = camp.trunk or self.trunk_template(server)
        variables = {
            dialplan.VAR_ATTEMPT: attempt_uuid,
            dialplan.VAR_LEAD: str(lead_id),
            dialplan.VAR_CAMPAIGN: str(camp.id),
            dialplan.VAR_CONNECT_TIMEOUT: f"{camp.connect_timeout:g}",
            dialplan.VAR_AMD: "hangup" if camp.amd_enabled else "off",
        }
        variables.update(recording_variables(camp, attempt_uuid, self.config.recording))
        if preview_agent is not None and preview_agent.extension:
            context, exten = dialplan.CTX_PREVIEW, preview_agent.extension
        else:
            context, exten = dialplan.CTX_OUTBOUND, dialplan.EXTEN_START
        return OriginateRequest(
            channel=trunk.format(number=number),
            channel_id=attempt_uuid,
            context=context,
            exten=exten,
            timeout_ms=max(15, camp.ring_timeout) * 1000,
            caller_id=camp.caller_id or None,
            variables=variables,
        )

    def trunk_template(self, server: str) -> str:
        return self.config.trunks.get(server, self.config.default_trunk)
