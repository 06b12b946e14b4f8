"""What one report covers: the session, the filter, the campaigns, and the SQL conditions.

Every indicator query (:mod:`.effectiveness`, :mod:`.recovery`, ...) takes a
:class:`ReportScope` and builds its conditions from it, so a filter means the same thing in
every group.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from dialer.db.models import CallAttempt, Campaign, Disposition, Lead
from dialer.domain.dispositions import DispositionCode
from dialer.domain.outcomes import CallOutcome, CampaignType, LeadStatus
from dialer.domain.windows import HolidayCalendar
from dialer.reports.filters import ReportFilter
from dialer.reports.queries.sql import text_of

__all__ = ["AC", "FINAL_STATUSES", "LIVE", "WRONG", "A", "C", "Camp", "D", "L", "ReportScope"]

A = CallAttempt
L = Lead
C = Campaign
D = Disposition

AC = CallOutcome.ANSWERED_CONNECTED
LIVE = (CallOutcome.ANSWERED_CONNECTED, CallOutcome.ABANDONED)
WRONG = DispositionCode.NUMERO_EQUIVOCADO.value
FINAL_STATUSES = tuple(s for s in LeadStatus if s.is_final)


@dataclass(frozen=True, slots=True)
class Camp:
    """A campaign the report covers (loaded once by :meth:`ReportScope.load_campaigns`)."""

    id: int
    name: str
    type: str
    rules: dict[str, Any]
    call_window: dict[str, Any]
    timezone: str

    def ref(self) -> dict[str, Any]:
        return {"campaign_id": self.id, "campaign": self.name, "campaign_type": self.type}


class ReportScope:
    """The state the indicator queries share, and the conditions derived from the filter."""

    def __init__(
        self,
        s: AsyncSession,
        f: ReportFilter,
        now: datetime,
        calendar: HolidayCalendar,
        satisfaction_window_days: int,
    ) -> None:
        self.s = s
        self.f = f
        self.now = now.astimezone(UTC)
        self.cal = calendar
        self.window_days = satisfaction_window_days
        self.start = f.start_utc
        self.end = f.end_utc
        self.camps: dict[int, Camp] = {}
        self.used: set[int] = set()

    # ------------------------------------------------------------------ conditions
    def campaign_conds(self) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = []
        if self.f.campaign_ids:
            conds.append(C.id.in_(self.f.campaign_ids))
        if self.f.campaign_types:
            conds.append(C.type.in_(self.f.campaign_types))
        return conds

    def campaign_id_conds(self, column: Any) -> list[ColumnElement[bool]]:
        """``column IN (matching campaigns)`` when campaigns are filtered (no join needed:
        :meth:`load_campaigns` loaded exactly the campaigns matching the id/type filters)."""
        if self.f.campaign_ids or self.f.campaign_types:
            return [column.in_(sorted(self.camps) or [0])]
        return []

    def brand_branch_conds(self) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = []
        if self.f.brands:
            conds.append(sa.func.lower(L.brand).in_([b.lower() for b in self.f.brands]))
        if self.f.branches:
            conds.append(sa.func.lower(L.branch).in_([b.lower() for b in self.f.branches]))
        return conds

    def lead_conds(self) -> list[ColumnElement[bool]]:
        """Conditions on a query that joins ``leads`` and ``campaigns``."""
        return [*self.campaign_conds(), *self.brand_branch_conds()]

    def attempt_conds(self) -> list[ColumnElement[bool]]:
        """Conditions on :meth:`base` (attempts, joined to leads only for brand/branch)."""
        conds = [
            A.created_at >= self.start,
            A.created_at < self.end,
            *self.campaign_id_conds(A.campaign_id),
            *self.brand_branch_conds(),
        ]
        if self.f.agent_ids:
            conds.append(A.agent_id.in_(self.f.agent_ids))
        return conds

    def counted(self) -> list[ColumnElement[bool]]:
        return [*self.attempt_conds(), A.outcome.is_not(None), A.counts_against_limit.is_(True)]

    def effective(self) -> list[ColumnElement[bool]]:
        return [*self.counted(), A.outcome == AC, D.code != WRONG]

    def base(self) -> Any:
        """Attempts, joined to their leads only when brand or branch is filtered."""
        if self.f.brands or self.f.branches:
            return sa.join(A, L, L.id == A.lead_id)
        return A

    def type_ids(self, *types: CampaignType, exclude: bool = False) -> list[int]:
        values = {t.value for t in types}
        return sorted(cid for cid, c in self.camps.items() if (c.type in values) != exclude) or [0]

    def agent_dispositions(self) -> sa.Select[tuple[int]]:
        return (
            sa.select(D.id)
            .select_from(sa.join(D, A, A.id == D.attempt_id))
            .where(A.agent_id.in_(self.f.agent_ids))
        )

    # ------------------------------------------------------------------ row labels
    def ref(self, campaign_id: int) -> dict[str, Any]:
        """The campaign columns of a row (and the campaign is listed in the report)."""
        self.used.add(campaign_id)
        camp = self.camps.get(campaign_id)
        if camp is None:
            return {
                "campaign_id": campaign_id,
                "campaign": f"#{campaign_id}",
                "campaign_type": None,
            }
        return camp.ref()

    @staticmethod
    def total_ref() -> dict[str, Any]:
        return {"campaign_id": None, "campaign": "Total", "campaign_type": None}

    # ------------------------------------------------------------------ campaigns
    async def load_campaigns(self) -> None:
        rows = await self.s.execute(
            sa.select(C.id, C.name, C.type, C.rules, C.call_window, C.timezone)
            .where(*self.campaign_conds())
            .order_by(C.id)
        )
        for cid, name, ctype, rules, window, tz in rows:
            self.camps[cid] = Camp(cid, name, text_of(ctype), rules or {}, window or {}, tz)
