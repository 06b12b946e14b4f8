"""Load a campaign's recorded attempts from the database for ``simulate --from-campaign``.

The replay itself (:mod:`dialer.simulation.replay`) is pure; this module is the thin IO edge:
one query over ``call_attempts`` (plus the disposition time, to measure wrap-up) of the last
``days`` days of the campaign's history, turned into :class:`AttemptRecord` rows.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from dialer.domain.outcomes import CallOutcome
from dialer.simulation.replay import AttemptRecord, scenario_from_history
from dialer.simulation.scenario import Scenario, ScenarioError

if TYPE_CHECKING:
    from dialer.settings import Settings

HISTORY_DAYS = 30


@dataclass(frozen=True, slots=True)
class CampaignHistory:
    campaign_id: int
    name: str
    connect_timeout: float
    records: tuple[AttemptRecord, ...]

    def scenario(self) -> Scenario:
        """The scenario ``simulate --from-campaign`` fits from this history."""
        return scenario_from_history(
            self.records, name=f"campaign-{self.campaign_id}", connect_timeout=self.connect_timeout
        )


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return (b - a).total_seconds()


def to_record(
    dialed_at: datetime | None,
    created_at: datetime,
    answered_at: datetime | None,
    connected_at: datetime | None,
    ended_at: datetime | None,
    outcome: CallOutcome,
    agent_id: int | None,
    disposed_at: datetime | None,
) -> AttemptRecord:
    """One attempt row as the replay needs it (times missing in the row stay ``None``/0)."""
    start = dialed_at or created_at
    answered = outcome.is_live_answer or outcome is CallOutcome.MACHINE
    ring = _seconds(start, answered_at if answered and answered_at else ended_at)
    talk = wrap = None
    if outcome is CallOutcome.ANSWERED_CONNECTED:
        talk = _seconds(connected_at, ended_at)
        wrap = _seconds(ended_at, disposed_at)
    return AttemptRecord(
        dialed_at=start,
        outcome=outcome,
        ring_seconds=max(0.0, ring or 0.0),
        talk_seconds=talk if talk and talk > 0 else None,
        wrap_seconds=wrap if wrap and wrap > 0 else None,
        agent_id=str(agent_id) if agent_id is not None else None,
    )


async def load_campaign_history(
    settings: Settings, campaign_ref: str, days: int = HISTORY_DAYS
) -> CampaignHistory:
    """Attempts of campaign ``campaign_ref`` (id or exact name) over its last ``days`` days."""
    from dialer.db.engine import make_engine, make_sessionmaker
    from dialer.db.models import CallAttempt, Campaign, Disposition

    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as s:
            ref = campaign_ref.strip()
            cond = (
                Campaign.id == int(ref)
                if ref.isdigit()
                else sa.func.lower(Campaign.name) == ref.lower()
            )
            camp = (await s.execute(sa.select(Campaign).where(cond))).scalar_one_or_none()
            if camp is None:
                raise ScenarioError(f"no campaign {campaign_ref!r} (id or exact name)")
            last = await s.scalar(
                sa.select(sa.func.max(CallAttempt.created_at)).where(
                    CallAttempt.campaign_id == camp.id
                )
            )
            if last is None:
                raise ScenarioError(f"campaign {camp.id} ({camp.name}) has no recorded attempts")
            q = (
                sa.select(
                    CallAttempt.dialed_at,
                    CallAttempt.created_at,
                    CallAttempt.answered_at,
                    CallAttempt.connected_at,
                    CallAttempt.ended_at,
                    CallAttempt.outcome,
                    CallAttempt.agent_id,
                    Disposition.created_at,
                )
                .outerjoin(Disposition, Disposition.attempt_id == CallAttempt.id)
                .where(
                    CallAttempt.campaign_id == camp.id,
                    CallAttempt.outcome.is_not(None),
                    CallAttempt.created_at >= last - timedelta(days=days),
                )
                .order_by(CallAttempt.created_at)
            )
            records = tuple(
                to_record(d, c, a, cn, e, o, ag, dp)
                for d, c, a, cn, e, o, ag, dp in (await s.execute(q)).tuples()
                if o is not None
            )
            return CampaignHistory(camp.id, camp.name, float(camp.connect_timeout), records)
    except sa.exc.SQLAlchemyError as exc:
        raise ScenarioError(f"could not read the campaign history: {exc}") from None
    finally:
        await engine.dispose()


def db_history(settings: Settings, campaign_ref: str) -> CampaignHistory:
    """Synchronous wrapper for the CLI."""
    return asyncio.run(load_campaign_history(settings, campaign_ref))
