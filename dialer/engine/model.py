"""The engine's live state records and its configuration.

Live state is in memory only (the database holds what must survive): calls in flight
(:class:`LiveCall`), preview offers, and each owned campaign's pacer (:class:`CampaignRuntime`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ami_bridge.logs import mask_digits
from dialer.db.models import Campaign
from dialer.domain.outcomes import DialMode
from dialer.pacing.feed import PacerFeed
from dialer.pacing.pacer import Pacer
from dialer.pacing.types import PacingDecision, PacingStats
from dialer.recordings import RecordingPaths

#: ChannelId prefix of agents' nailed-up session calls (attempt ids are uuid hex: no clash).
AGENT_SESSION_PREFIX = "agent-"
#: ChannelId prefix of supervisors' listen/whisper/barge calls.
SPY_PREFIX = "spy-"
#: ChannelId prefix of transfer legs: the supervisor's / external number's leg of a transfer.
TRANSFER_PREFIX = "xfer-"

#: Transfer modes and target kinds (docs/web.md "Call controls").
TRANSFER_BLIND = "blind"
TRANSFER_CONSULT = "consult"
TARGET_SUPERVISOR = "supervisor"
TARGET_EXTERNAL = "external"
TARGET_KINDS = (TARGET_SUPERVISOR, TARGET_EXTERNAL)


@dataclass(slots=True)
class TransferLeg:
    """The target's leg of a transfer out of the campaign (to a supervisor's seat or an
    allowed external number), from the Originate until it ends.

    ``blind``: rings while the customer waits on hold; answered, the customer joins it in
    transfer room ``xfer-<room>`` and the agent is done. ``consult``: answered, the target talks
    with the agent in the agent's room (the customer on hold) until ``complete`` (both to the
    transfer room) or ``cancel`` (the leg is hung up, the customer back with the agent).
    """

    leg_id: str  # ChannelId of the target's call (tracked by the call tracker)
    attempt: str
    agent_id: int  # the transferring agent
    server: str
    mode: str  # TRANSFER_BLIND / TRANSFER_CONSULT
    kind: str  # TARGET_SUPERVISOR / TARGET_EXTERNAL
    target: str  # the supervisor's extension, or the E.164 number
    label: str  # who, for the screens ("Supervisora Ana", "Línea de soporte")
    room: str  # transfer room id (digits): ConfBridge xfer-<room>
    started_at: datetime
    answered: bool = False
    channel: str | None = None  # the answered leg's channel (Redirect on complete)
    joined: bool = False  # the customer and the target are together in the transfer room
    stopping: str | None = None  # why the dialer hung it up (cancel, call_ended)

    @property
    def state(self) -> str:
        """What the screens show: ``transferring`` (blind, ringing), ``consult_ringing``,
        ``consulting`` (answered), ``transferred`` (joined, the agent gone)."""
        if self.joined:
            return "transferred"
        if self.mode == TRANSFER_BLIND:
            return "transferring"
        return "consulting" if self.answered else "consult_ringing"

    def event(self) -> dict[str, Any]:
        """Published fields (the number masked: the screens show the label)."""
        target = mask_digits(self.target) if self.kind == TARGET_EXTERNAL else self.target
        return {
            "attempt": self.attempt,
            "agent_id": self.agent_id,
            "mode": self.mode,
            "target_kind": self.kind,
            "target": target,
            "target_label": self.label,
            "transfer_state": self.state,
        }


@dataclass(slots=True)
class LiveCall:
    uuid: str
    campaign_id: int
    lead_id: int
    server: str
    number: str
    attempt_number: int
    dialed_at: datetime
    mode: DialMode
    channel: str | None = None
    answered_at: datetime | None = None
    agent_id: int | None = None
    preview: bool = False
    #: reached marcador-hold: the dialplan's verdict, the customer waits for an agent
    held_at: datetime | None = None
    #: the safe-harbor path started, or a Redirect failed: no agent may be given to it
    unroutable: bool = False
    #: agent call controls (:meth:`CallControls.call_control`): on hold since, seconds held,
    #: the agent muted toward the customer
    on_hold_since: datetime | None = None
    hold_seconds: float = 0.0
    muted: bool = False
    #: followed after a dialer restart: a mute set before it is unknown here
    adopted: bool = False
    #: a transfer out of the campaign in progress or done (supervisor / external number)
    transfer: TransferLeg | None = None
    #: handed to a supervisor or an external number: no agent of the dialer is on it any more
    #: (``agent_id`` still names the transferring agent, who owns the disposition)
    transferred_out: bool = False

    @property
    def waiting_in_hold(self) -> bool:
        return (
            self.held_at is not None
            and self.agent_id is None
            and not self.unroutable
            and not self.transferred_out
        )

    def end_hold(self, now: datetime) -> float:
        """Close the open hold (the agent resumed, transferred, or the call ended): its
        seconds are added to ``hold_seconds``; returns them."""
        if self.on_hold_since is None:
            return 0.0
        held = (now - self.on_hold_since).total_seconds()
        self.hold_seconds += held
        self.on_hold_since = None
        return held


@dataclass(frozen=True, slots=True)
class PreviewOffer:
    lead_id: int
    campaign_id: int
    offered_at: datetime
    deadline: datetime


@dataclass(slots=True)
class CampaignRuntime:
    campaign: Campaign
    pacer: Pacer
    last_decision: PacingDecision | None = None
    stats: PacingStats = field(default_factory=PacingStats)
    stats_at: datetime | None = None
    #: The pacer's only input of samples: the simulator feeds its pacer the same way.
    feed: PacerFeed = field(init=False)

    def __post_init__(self) -> None:
        self.feed = PacerFeed(self.pacer)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    #: Unique per process run: claims and leases are owned by it, so a restarted process
    #: never renews what its dead predecessor held.
    dialer_id: str
    #: Stable name (host or service instance): its command consumer group survives restarts.
    dialer_name: str = ""
    claim_ttl: timedelta = timedelta(seconds=60)
    campaign_lease_ms: int = 15_000
    #: Redis lead lease, in real milliseconds (the SQL claim is the durable guarantee).
    lead_lease_ms: int = 60_000
    max_launch_per_tick: int = 20
    stats_refresh: timedelta = timedelta(seconds=10)
    maintenance_interval: float = 5.0  # seconds of loop time between maintenance rounds
    preview_seconds: timedelta = timedelta(seconds=20)  # countdown on the agent's screen
    preview_auto_call: bool = True  # place the call when the countdown ends
    preview_skip_delay: timedelta = timedelta(minutes=15)
    #: Dial-string template per server (``AsteriskServer.trunk``); {number} is the E.164 number.
    trunks: Mapping[str, str] = field(default_factory=dict)
    default_trunk: str = "PJSIP/{number}@trunk"
    #: Agent phone dial-string per server (``AsteriskServer.agent_channel``); {extension}.
    agent_channels: Mapping[str, str] = field(default_factory=dict)
    default_agent_channel: str = "PJSIP/{extension}"
    #: Call recording (docs/recording.md); None: campaigns' record_calls is ignored.
    recording: RecordingPaths | None = None
    #: On shutdown, Redirects in flight and queued state writes get this long (real seconds)
    #: to end before they are cancelled.
    shutdown_grace: float = 5.0
    #: Browser-phone seats (``MARCADOR_WEBRTC__EXTENSIONS`` when browser phones are on): their
    #: session calls are rejoinable (issue 15, :meth:`AgentSession.session_lost`).
    rejoinable_extensions: str = ""
    #: How long a browser-phone agent whose session call ended mid-call may rejoin it.
    rejoin_grace: timedelta = timedelta(seconds=30)


@dataclass(slots=True)
class SpySession:
    """A supervisor listening to (whispering to, barging into) one agent's current call.

    ``ChanSpy``'s ``E`` option only ends with the agent's channel, which is their nailed-up
    session: the spy would follow the agent into the next customer's call. So the spy belongs
    to the spied call (``attempt``): the dialer hangs the supervisor's channel up when that call
    ends, when the supervisor stops it, or when they start another one (one spy each).
    """

    supervisor: str  # "user:<id>" (or "ext:<extension>" for commands without a user id)
    spy_id: str  # ChannelId of the supervisor's call (tracked by the call tracker)
    server: str
    agent_id: int
    attempt: str  # the spied call
    mode: str
    supervisor_extension: str
    campaign_id: int | None
    command_id: str = ""
    answered: bool = False
    stopping: str | None = None  # why the dialer hung it up (call_ended, stopped, replaced)

    def event(self, **extra: Any) -> dict[str, Any]:
        # "spied_agent_id", not "agent_id": the agent's own screen must not receive these.
        return {
            "spy": self.spy_id,
            "supervisor": self.supervisor,
            "spied_agent_id": self.agent_id,
            "attempt": self.attempt,
            "mode": self.mode,
            "campaign_id": self.campaign_id,
            "command_id": self.command_id,
            **extra,
        }
