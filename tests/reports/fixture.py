"""A hand-built month (October 2026, America/Bogota = UTC-5) for the indicator tests.

Two campaigns (C1 recuperación, C2 seguimiento de satisfacción), two brands (Renault,
Chevrolet), two branches (Tunja, Duitama), two agents (ana, beto). Every expected value in
``test_indicators.py`` was computed by hand from the tables below.

Calendar facts used: 2026-10-12 (Monday) is a Colombian holiday (Día de la Raza); Sundays are
4, 11, 18, 25 October; the legal window is Mon-Fri 07-19, Sat 08-15.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.db.models import (
    AgentStateLog,
    Appointment,
    AppointmentStatus,
    CallAttempt,
    Campaign,
    Disposition,
    Lead,
    LeadEvent,
    Pqrs,
    PqrsStatus,
    PqrsType,
    Role,
    User,
    WhatsAppMessage,
    WhatsAppStatus,
)
from dialer.domain.outcomes import (
    AgentState,
    CallOutcome,
    CampaignStatus,
    CampaignType,
    DialMode,
    LeadStatus,
)

BOGOTA_OFFSET = timedelta(hours=5)
#: When the report is generated: 2 Nov 2026 09:00 Bogotá.
NOW = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


def local(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Bogotá wall time in 2026 as an aware UTC datetime."""
    return datetime(2026, month, day, hour, minute, tzinfo=UTC) + BOGOTA_OFFSET


OC = CallOutcome
ST = LeadStatus

# name: (campaign, brand, branch, status, event_date)
LEADS: dict[str, tuple[str, str, str, LeadStatus, date | None]] = {
    "R1": ("C1", "Renault", "Tunja", ST.CONTACTED, None),
    "R2": ("C1", "Renault", "Tunja", ST.CONTACTED, None),
    "R3": ("C1", "Chevrolet", "Duitama", ST.CONTACTED, None),
    "R4": ("C1", "Chevrolet", "Duitama", ST.CONTACTED, None),
    "R5": ("C1", "Renault", "Duitama", ST.CONTACTED, None),
    "R6": ("C1", "Renault", "Tunja", ST.EXHAUSTED, None),
    "R7": ("C1", "Chevrolet", "Tunja", ST.EXCLUDED, None),  # wrong number, no other phone
    "R8": ("C1", "Chevrolet", "Tunja", ST.PENDING, None),
    "R9": ("C1", "Renault", "Duitama", ST.PENDING, None),
    "R10": ("C1", "Renault", "Tunja", ST.EXCLUDED, None),  # invalid number
    "R11": ("C1", "Chevrolet", "Duitama", ST.CONTACTED, None),
    "R12": ("C1", "Renault", "Tunja", ST.CONTACTED, None),
    "R13": ("C1", "Renault", "Tunja", ST.PENDING, None),  # on the list, not dialed in Oct
    "R14": ("C1", "Chevrolet", "Tunja", ST.EXCLUDED, None),  # corporate at import: cleaned
    "R15": ("C1", "Renault", "Duitama", ST.CONTACTED, None),  # recovered in September
    "R16": ("C1", "Chevrolet", "Duitama", ST.PENDING, None),  # dialed outside the window
    "R17": ("C1", "Renault", "Tunja", ST.EXCLUDED, None),  # DNC at claim time: cleaned
    "R18": ("C1", "Chevrolet", "Duitama", ST.EXCLUDED, None),  # RNE at claim time: cleaned
    "R19": ("C1", "Renault", "Tunja", ST.IN_PROGRESS, None),  # attempt without outcome yet
    "S1": ("C2", "Renault", "Duitama", ST.CONTACTED, date(2026, 10, 1)),
    "S2": ("C2", "Renault", "Duitama", ST.CONTACTED, date(2026, 10, 1)),
    "S3": ("C2", "Chevrolet", "Duitama", ST.CONTACTED, date(2026, 10, 2)),
    "S4": ("C2", "Chevrolet", "Tunja", ST.CONTACTED, date(2026, 10, 2)),
    "S5": ("C2", "Renault", "Tunja", ST.CONTACTED, date(2026, 10, 6)),
    "S6": ("C2", "Chevrolet", "Duitama", ST.EXHAUSTED, date(2026, 10, 6)),
    "S7": ("C2", "Renault", "Duitama", ST.CONTACTED, date(2026, 10, 7)),
    "S8": ("C2", "Chevrolet", "Duitama", ST.CONTACTED, date(2026, 10, 7)),
    "S9": ("C2", "Renault", "Tunja", ST.CONTACTED, date(2026, 10, 20)),
    "S10": ("C2", "Chevrolet", "Tunja", ST.PENDING, date(2026, 10, 20)),
}


@dataclass(frozen=True)
class Att:
    lead: str
    n: int
    at: datetime
    outcome: CallOutcome | None
    agent: str | None = None
    talk: int = 0  # seconds between connected_at and ended_at
    code: str | None = None  # disposition
    reason: str | None = None
    areas: tuple[str, ...] = ()

    @property
    def counts(self) -> bool:
        return self.outcome not in (OC.FAILED, OC.CANCELLED)


NI = "no_interesado"
EXP = "expectativas_no_cumplidas"
OTRO = "servicio_en_otro_taller"
# opportunity areas
TE, CO, PR, CA, AA, IN = (
    "tiempo_entrega",
    "comunicacion",
    "precio",
    "calidad_trabajo",
    "atencion_asesor",
    "instalaciones",
)
ATTEMPTS: list[Att] = [
    # ---------------------------------------------------------------- C1 (recuperación)
    Att("R1", 1, local(10, 1, 9), OC.NO_ANSWER),
    Att("R1", 2, local(10, 2, 10), OC.ANSWERED_CONNECTED, "ana", 180, "cita_agendada"),
    Att("R2", 1, local(10, 1, 9, 10), OC.BUSY),
    Att("R2", 2, local(10, 2, 10, 10), OC.ANSWERED_CONNECTED, "beto", 120, "cita_agendada"),
    Att("R3", 1, local(10, 5, 8), OC.ANSWERED_CONNECTED, "ana", 240, "cita_agendada"),
    Att("R4", 1, local(10, 5, 8, 30), OC.ANSWERED_CONNECTED, "beto", 60, NI, "precio"),
    Att("R5", 1, local(10, 6, 9), OC.ANSWERED_CONNECTED, "ana", 90, NI, "tiempo"),
    Att("R6", 1, local(10, 6, 9, 30), OC.NO_ANSWER),
    Att("R6", 2, local(10, 7, 9, 30), OC.NO_ANSWER),
    Att("R6", 3, local(10, 8, 9, 30), OC.MACHINE),
    Att("R7", 1, local(10, 7, 10), OC.ANSWERED_CONNECTED, "beto", 30, "numero_equivocado"),
    Att("R8", 1, local(10, 8, 10), OC.ABANDONED),
    Att("R8", 2, local(10, 13, 10), OC.BUSY),
    Att("R9", 1, local(10, 9, 10), OC.ABANDONED),
    Att("R9", 2, local(10, 13, 11), OC.CANCELLED),
    Att("R10", 1, local(10, 9, 10, 30), OC.INVALID_NUMBER),
    Att("R11", 1, local(10, 14, 11), OC.FAILED),
    Att("R11", 2, local(10, 14, 11, 30), OC.ANSWERED_CONNECTED, "ana", 150, OTRO),
    Att("R12", 1, local(10, 15, 11), OC.ANSWERED_CONNECTED, "beto", 200, "volver_a_llamar"),
    Att("R12", 2, local(10, 16, 11), OC.ANSWERED_CONNECTED, "beto", 100, "cita_agendada"),
    Att("R16", 1, local(10, 12, 9), OC.NO_ANSWER),  # holiday: outside the window
    Att("R16", 2, local(10, 13, 19, 30), OC.NO_ANSWER),  # after 19:00: outside the window
    Att("R19", 1, local(10, 30, 11), None),  # still ringing at the cut: no outcome
    # September (outside the period; only the 30-day abandon rate sees them)
    Att("R15", 1, local(9, 19, 10), OC.ABANDONED),
    Att("R15", 2, local(9, 23, 10), OC.ANSWERED_CONNECTED, "ana", 100, "cita_agendada"),
    # ---------------------------------------------------------------- C2 (satisfacción)
    Att("S1", 1, local(10, 3, 9), OC.ANSWERED_CONNECTED, "ana", 120, "satisfecho"),
    Att("S2", 1, local(10, 3, 9, 30), OC.NO_ANSWER),
    Att("S2", 2, local(10, 5, 10), OC.ANSWERED_CONNECTED, "beto", 300, EXP, None, (TE, CO)),
    Att("S3", 1, local(10, 5, 10, 30), OC.ANSWERED_CONNECTED, "ana", 200, EXP, None, (TE, PR)),
    Att("S4", 1, local(10, 13, 9), OC.ANSWERED_CONNECTED, "ana", 100, EXP, None, (TE,)),
    Att("S5", 1, local(10, 8, 9), OC.ANSWERED_CONNECTED, "beto", 150, "queja_reclamo"),
    Att("S6", 1, local(10, 8, 9, 30), OC.NO_ANSWER),
    Att("S6", 2, local(10, 9, 9, 30), OC.NO_ANSWER),
    Att("S6", 3, local(10, 10, 9, 30), OC.NO_ANSWER),
    Att("S6", 4, local(10, 13, 9, 30), OC.NO_ANSWER),
    Att("S6", 5, local(10, 14, 9, 30), OC.NO_ANSWER),
    Att("S7", 1, local(10, 9, 11), OC.ANSWERED_CONNECTED, "beto", 250, EXP, None, (CA, TE, AA)),
    Att("S8", 1, local(10, 9, 11, 30), OC.ANSWERED_CONNECTED, "ana", 80, EXP, None, (CO, IN)),
    Att("S9", 1, local(10, 22, 10), OC.ANSWERED_CONNECTED, "beto", 90, EXP, None, (PR,)),
    Att("S10", 1, local(10, 22, 10, 30), OC.REJECTED),
]  # fmt: skip

# lead: (created, status)  (appointments are created when the "cita_agendada" call ends)
APPOINTMENTS: dict[str, tuple[datetime, AppointmentStatus, str]] = {
    "R1": (local(10, 2, 10, 5), AppointmentStatus.KEPT, "Tunja"),
    "R2": (local(10, 2, 10, 15), AppointmentStatus.NO_SHOW, "Tunja"),
    "R3": (local(10, 5, 8, 6), AppointmentStatus.BOOKED, "Duitama"),
    "R12": (local(10, 16, 11, 3), AppointmentStatus.CANCELLED, "Tunja"),
    "R15": (local(9, 23, 10, 3), AppointmentStatus.KEPT, "Duitama"),  # September
}

# (lead or None, type, created, deadline, closed_at)
PQRS: list[tuple[str | None, PqrsType, datetime, date, datetime | None]] = [
    ("S5", PqrsType.QUEJA, local(10, 8, 9, 5), date(2026, 10, 30), local(10, 20, 15)),
    ("R4", PqrsType.PETICION, local(10, 5, 9), date(2026, 10, 27), None),
    ("R5", PqrsType.RECLAMO, local(10, 20, 9), date(2026, 11, 10), None),
    ("R2", PqrsType.QUEJA, local(9, 1, 9), date(2026, 9, 22), local(10, 2, 16)),
    (None, PqrsType.SUGERENCIA, local(10, 15, 9), date(2026, 11, 5), local(10, 16, 9)),
]

# (lead, at, kind, reason)
EVENTS: list[tuple[str, datetime, str, str]] = [
    ("R17", local(10, 10, 9), "excluded", "dnc"),
    ("R18", local(10, 20, 9), "excluded", "rne"),
    ("R6", local(10, 6, 19, 0), "deferred", "call_window"),
    ("R15", local(9, 23, 10), "contacted", "final_disposition"),
    ("R14", local(9, 25, 8), "excluded", "corporate"),
]

# (agent, state, pause_code, start, end or None)
STATES: list[tuple[str, AgentState, str | None, datetime, datetime | None]] = [
    ("ana", AgentState.READY, None, local(10, 5, 8), local(10, 5, 10)),
    ("ana", AgentState.PAUSED, "break", local(10, 5, 10), local(10, 5, 10, 15)),
    ("ana", AgentState.READY, None, local(10, 5, 10, 15), local(10, 5, 12, 15)),
    ("ana", AgentState.PAUSED, "almuerzo", local(10, 5, 12, 15), local(10, 5, 13, 15)),
    ("beto", AgentState.READY, None, local(9, 30, 23), local(10, 1, 1)),
    ("beto", AgentState.PAUSED, "capacitacion", local(10, 7, 9), local(10, 7, 9, 30)),
    ("beto", AgentState.READY, None, local(10, 31, 16), None),
]

# (lead, created, status, has wamid); plus one inbound reply from R6 on 9 Oct
WHATSAPP: list[tuple[str, datetime, WhatsAppStatus, bool]] = [
    ("R6", local(10, 8, 10), WhatsAppStatus.READ, True),
    ("S6", local(10, 14, 10), WhatsAppStatus.DELIVERED, True),
    ("R8", local(10, 13, 10, 30), WhatsAppStatus.FAILED, False),
    ("R16", local(10, 13, 19, 45), WhatsAppStatus.QUEUED, False),
    ("R10", local(10, 10, 9), WhatsAppStatus.SENT, True),
]


@dataclass
class FixtureIds:
    campaigns: dict[str, int]
    agents: dict[str, int]
    leads: dict[str, int]


async def load_fixture(sm: async_sessionmaker[AsyncSession]) -> FixtureIds:
    async with sm.begin() as s:
        agents: dict[str, int] = {}
        for username, full in (("ana", "Ana Gómez"), ("beto", "Beto Ruiz")):
            user = User(username=username, full_name=full, role=Role.AGENT, password_hash="x")
            s.add(user)
            await s.flush()
            agents[username] = user.id
        campaigns: dict[str, int] = {}
        for key, name, ctype in (
            ("C1", "Recuperación Tunja-Duitama", CampaignType.RECUPERACION),
            ("C2", "Satisfacción posventa", CampaignType.SATISFACCION),
        ):
            camp = Campaign(
                name=name, type=ctype, status=CampaignStatus.RUNNING, dial_mode=DialMode.PROGRESSIVE
            )
            s.add(camp)
            await s.flush()
            campaigns[key] = camp.id
        leads: dict[str, int] = {}
        for i, (name, (ckey, brand, branch, status, event_date)) in enumerate(LEADS.items()):
            lead = Lead(
                campaign_id=campaigns[ckey],
                dedupe_key=f"cc:{1000 + i}",
                customer_name=f"Cliente {name}",
                brand=brand,
                branch=branch,
                status=status,
                event_date=event_date,
                created_at=local(9, 15, 8),
                updated_at=local(9, 15, 8),
            )
            s.add(lead)
            await s.flush()
            leads[name] = lead.id
        dispositions: dict[str, int] = {}
        for att in ATTEMPTS:
            connected = att.outcome is OC.ANSWERED_CONNECTED
            live = att.outcome in (OC.ANSWERED_CONNECTED, OC.ABANDONED, OC.MACHINE)
            answered = att.at + timedelta(seconds=8) if live else None
            connected_at = att.at + timedelta(seconds=10) if connected else None
            row = CallAttempt(
                lead_id=leads[att.lead],
                campaign_id=campaigns[LEADS[att.lead][0]],
                number="+573000000000",
                attempt_number=att.n,
                counts_against_limit=att.counts,
                mode=DialMode.PROGRESSIVE,
                created_at=att.at,
                answered_at=answered,
                connected_at=connected_at,
                ended_at=(
                    connected_at + timedelta(seconds=att.talk)
                    if connected_at is not None
                    else (att.at + timedelta(seconds=30) if att.outcome else None)
                ),
                outcome=att.outcome,
                agent_id=agents[att.agent] if att.agent else None,
            )
            s.add(row)
            await s.flush()
            if att.code is not None:
                disp = Disposition(
                    attempt_id=row.id,
                    lead_id=row.lead_id,
                    agent_id=row.agent_id,
                    code=att.code,
                    reason=att.reason,
                    opportunity_area=",".join(att.areas) or None,
                    created_at=att.at + timedelta(seconds=att.talk + 20),
                )
                s.add(disp)
                await s.flush()
                if att.code == "cita_agendada":
                    dispositions[att.lead] = disp.id
        for name, (created, appt_status, branch) in APPOINTMENTS.items():
            s.add(
                Appointment(
                    lead_id=leads[name],
                    disposition_id=dispositions[name],
                    scheduled_for=created + timedelta(days=7),
                    branch=branch,
                    service="Mantenimiento",
                    status=appt_status,
                    created_at=created,
                    updated_at=created,
                )
            )
        for lead_name, ptype, created, deadline, closed in PQRS:
            s.add(
                Pqrs(
                    lead_id=leads[lead_name] if lead_name else None,
                    person_key=f"lead:{lead_name}",
                    type=ptype,
                    description="(fixture)",
                    deadline=deadline,
                    status=PqrsStatus.CLOSED if closed else PqrsStatus.OPEN,
                    closed_at=closed,
                    created_at=created,
                    updated_at=closed or created,
                )
            )
        for lead_name, at, kind, reason in EVENTS:
            s.add(LeadEvent(lead_id=leads[lead_name], at=at, kind=kind, reason=reason))
        for agent, state, code, start, end in STATES:
            s.add(
                AgentStateLog(
                    user_id=agents[agent],
                    campaign_id=campaigns["C1"],
                    state=state,
                    pause_code=code,
                    started_at=start,
                    ended_at=end,
                )
            )
        for i, (lead_name, created, wa_status, has_wamid) in enumerate(WHATSAPP):
            s.add(
                WhatsAppMessage(
                    idempotency_key=f"fallback:{i}",
                    lead_id=leads[lead_name],
                    campaign_id=campaigns[LEADS[lead_name][0]],
                    phone="+573000000000",
                    status=wa_status,
                    wamid=f"wamid.{i}" if has_wamid else None,
                    created_at=created,
                    updated_at=created,
                )
            )
        s.add(
            WhatsAppMessage(
                idempotency_key="in:reply-r6",
                direction="in",
                lead_id=leads["R6"],
                campaign_id=campaigns["C1"],
                phone="+573000000000",
                text="Sí, me interesa",
                status=WhatsAppStatus.RECEIVED,
                created_at=local(10, 9, 8),
                updated_at=local(10, 9, 8),
            )
        )
    return FixtureIds(campaigns=campaigns, agents=agents, leads=leads)
