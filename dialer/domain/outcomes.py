"""System outcomes of a call attempt (design.md §5) and lead states.

Each attempt ends in exactly one :class:`CallOutcome`. The AMI call tracker produces it; the
engine stores it and feeds it to the retry policy. Agents add a disposition on top of
``ANSWERED_CONNECTED`` calls.
"""

from __future__ import annotations

from enum import StrEnum


class CallOutcome(StrEnum):
    ANSWERED_CONNECTED = "answered_connected"  # live answer, bridged to an agent
    ABANDONED = "abandoned"  # live answer, no agent within connect_timeout (safe-harbor)
    MACHINE = "machine"  # answering machine detected (AMD)
    #: answered, then hung up before the dialplan's verdict (during AMD, before the hold):
    #: never offered to an agent, never heard the safe-harbor message; not a live answer
    #: (docs/outcomes.md)
    EARLY_HANGUP = "early_hangup"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    REJECTED = "rejected"  # customer side rejected before answer (cause 21)
    INVALID_NUMBER = "invalid_number"  # unallocated number, no such extension (cause 1 / 0)
    FAILED = "failed"  # PBX or trunk error, or lost during a PBX outage
    CANCELLED = "cancelled"  # the dialer hung up: campaign paused or window closed

    @property
    def is_live_answer(self) -> bool:
        """A human answered (counts in the abandon-rate denominator)."""
        return self in (CallOutcome.ANSWERED_CONNECTED, CallOutcome.ABANDONED)

    @property
    def is_contact(self) -> bool:
        """The customer was actually spoken to."""
        return self is CallOutcome.ANSWERED_CONNECTED


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
