"""System outcomes of a call attempt (design.md §5) and lead states.

Each attempt ends in exactly one :class:`CallOutcome`. The AMI call tracker produces it; the
engine stores it and feeds it to the retry policy. Agents add a disposition on top of
``ANSWERED_CONNECTED`` calls. :class:`CallOutcome` is defined in :mod:`ami_bridge.outcomes`
(the tracker's verdict; the bridge never imports the dialer) and re-exported here: it is the
same class.
"""

from __future__ import annotations

from enum import StrEnum

from ami_bridge.outcomes import CallOutcome as CallOutcome


class LeadStatus(StrEnum):
    NEW = "new"  # imported, never attempted
    PENDING = "pending"  # waiting for its next attempt
    IN_PROGRESS = "in_progress"  # claimed / being dialed
    CONTACTED = "contacted"  # final: reached, with a final disposition
    EXHAUSTED = "exhausted"  # final: attempt limit reached without contact (-> WhatsApp)
    EXCLUDED = "excluded"  # final: DNC, open complaint, corporate, duplicate, bad number...
    EXPIRED = "expired"  # final: campaign ended / lead too old

    @property
    def is_final(self) -> bool:
        return self in (
            LeadStatus.CONTACTED,
            LeadStatus.EXHAUSTED,
            LeadStatus.EXCLUDED,
            LeadStatus.EXPIRED,
        )


class DialMode(StrEnum):
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    PREDICTIVE = "predictive"
    FIXED_RATIO = "fixed_ratio"


class CampaignType(StrEnum):
    CONTACTO_PROACTIVO = "contacto_proactivo"
    RECUPERACION = "recuperacion_clientes"
    SATISFACCION = "seguimiento_satisfaccion"
    AGENDAMIENTO = "agendamiento_citas"
    CUSTOM = "custom"


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    PAUSED = "paused"
    RESERVED = "reserved"
    IN_CALL = "in_call"
    WRAP_UP = "wrap_up"


class Channel(StrEnum):
    """Contact channels, for consent and Ley 2300 frequency caps."""

    VOICE = "voice"
    WHATSAPP = "whatsapp"
    SMS = "sms"
    EMAIL = "email"
