"""Names shared by the shipped dialplan (``deploy/asterisk/extensions.conf``), the PBX simulator
and the call tracker. Change a name here and in ``extensions.conf`` in the same commit.

Call flow (design.md §3-4):

* **Agent login** - ``Originate Channel: PJSIP/<ext>``, ``Context: marcador-agent``,
  ``Exten: <ext>``. Once the softphone answers, the channel sits in ``ConfBridge(agent-<ext>)``
  with the ``marcador_agent`` user profile (marked user): the *nailed-up room*.
* **Predictive / progressive call** - ``Originate Channel: <trunk dial string>``,
  ``Context: marcador-outbound``, ``Exten: s``, ``ChannelId: <attempt id>`` and the variables
  below. On answer the dialplan optionally runs ``AMD()`` (``MARCADOR_AMD``), then the leg waits in
  ``marcador-hold``. The dialer ``Redirect``s it to ``marcador-agent-room,<ext>,1`` (it joins the
  agent's room). Without a Redirect within ``MARCADOR_CONNECT_TIMEOUT`` seconds (default 2) the
  dialplan jumps to ``marcador-hold,safe-harbor,1``: ``Set(MARCADOR_ABANDONED=1)``, the
  safe-harbor message, ``Hangup(16)``. That holds even when the dialer is dead.
* **Preview** - ``Originate Channel: <customer>``, ``Context: marcador-preview``,
  ``Exten: <agent ext>``: the answered customer joins the agent's room directly.
* **Hold** (agent call control) - ``Redirect`` of the customer to ``marcador-onhold,<ext>,1``
  (music on hold), and back to ``marcador-agent-room,<ext>,1`` on resume.
* **Supervisor** - ``Originate Channel: PJSIP/<supervisor>``, ``Context: marcador-spy``,
  ``Exten: listen`` / ``whisper`` / ``barge`` (literal extensions: a pattern such as
  ``_listen-X.`` would read the ``n`` as the wildcard N), ``Variable: MARCADOR_SPY_AGENT=<ext>``
  (``ChanSpy`` options qE, qwE, qBE). The dialer hangs the supervisor's channel up when the
  spied call ends.

Pure constants and tiny pure helpers: nothing here does IO.
"""

from __future__ import annotations

from typing import Final

# --- contexts -------------------------------------------------------------------------------
CTX_AGENT: Final = "marcador-agent"
"""Nailed-up agent session: ``exten => _X.`` joins ``ConfBridge(agent-${EXTEN})``."""
CTX_OUTBOUND: Final = "marcador-outbound"
"""Entry point of an answered customer leg (exten ``s``): optional AMD, then hold."""
CTX_HOLD: Final = "marcador-hold"
"""Waits ``MARCADOR_CONNECT_TIMEOUT`` seconds for a Redirect, then safe-harbor + hangup."""
CTX_AGENT_ROOM: Final = "marcador-agent-room"
"""Redirect target for a connected customer: ``exten => _X.`` joins agent ``${EXTEN}``'s room."""
CTX_PREVIEW: Final = "marcador-preview"
"""Preview call: the answered customer goes straight into agent ``${EXTEN}``'s room."""
CTX_ONHOLD: Final = "marcador-onhold"
"""Agent's hold: ``exten => _X.`` plays music on hold to the customer of agent ``${EXTEN}``
until the dialer Redirects them back to :data:`CTX_AGENT_ROOM` (or ``MARCADOR_HOLD_MAX`` s)."""
CTX_TRANSFER_ROOM: Final = "marcador-transfer-room"
"""Transfer out of the campaign (to a supervisor or an allowed external number): the customer
is Redirected to ``marcador-transfer-room,<room id>,1`` and joins ``ConfBridge(xfer-<id>)`` with
the customer profile (``end_marked``: when the target leaves, the customer leaves too)."""
CTX_TRANSFER_TARGET: Final = "marcador-transfer-target"
"""The transfer target's leg in ``xfer-<id>`` (marked user): where an Originate of the target
(blind) goes once it answers, or where the consulted leg is Redirected on ``complete``."""
CTX_CONSULT: Final = "marcador-consult"
"""Attended transfer: ``Originate <target> Context=marcador-consult Exten=<agent ext>``; the
answered target joins agent ``${EXTEN}``'s room (customer profile) to talk with the agent while
the customer waits in :data:`CTX_ONHOLD`."""
CTX_RECORD: Final = "marcador-record"
"""Subroutine (``Gosub``) on the connect path: ``MixMonitor`` when ``MARCADOR_RECORD=1``, then
the optional consent prompt. Called from :data:`CTX_AGENT_ROOM` and :data:`CTX_PREVIEW` just
before ``ConfBridge``, so the recording starts even when the dialer is slow or dead."""
CTX_SPY: Final = "marcador-spy"
"""Supervisor listen / whisper / barge via ChanSpy."""
CTX_AGENT_PHONES: Final = "marcador-phones"
"""``context=`` of the agent PJSIP endpoints (calls *from* softphones): dials nothing."""
CTX_CUSTOMERS: Final = "customers"
"""Lab context with the transcripts' simulated customers (3001-3012), for integration tests."""

EXTEN_START: Final = "s"
"""Exten used with :data:`CTX_OUTBOUND` and :data:`CTX_HOLD`."""
EXTEN_SAFE_HARBOR: Final = "safe-harbor"
"""Exten in :data:`CTX_HOLD` reached when ``connect_timeout`` expires (the abandon path)."""
EXTEN_LEAVE_MESSAGE: Final = "leave-message"
"""Exten in :data:`CTX_OUTBOUND` that leaves a message on an answering machine."""

SPY_LISTEN: Final = "listen"
SPY_WHISPER: Final = "whisper"
SPY_BARGE: Final = "barge"
SPY_MODES: Final = (SPY_LISTEN, SPY_WHISPER, SPY_BARGE)
#: ChanSpy options per mode: q = no beep/announcement, E = exit when the agent channel hangs
#: up, w = whisper (agent only hears the supervisor), B = barge (both parties hear).
SPY_OPTIONS: Final = {SPY_LISTEN: "qE", SPY_WHISPER: "qwE", SPY_BARGE: "qBE"}

# --- ConfBridge profiles (deploy/asterisk/confbridge.conf) -----------------------------------
BRIDGE_PROFILE: Final = "marcador_room"
USER_PROFILE_AGENT: Final = "marcador_agent"
USER_PROFILE_AGENT_REJOINABLE: Final = "marcador_agent_rejoinable"
"""A browser-phone agent (``MARCADOR_REJOINABLE=1`` on the session call): NOT marked, so the
customer stays in the room (music on hold) when a page reload drops the agent's session; the
dialer hangs the customer up itself if the agent does not rejoin in time."""
USER_PROFILE_CUSTOMER: Final = "marcador_customer"
USER_PROFILE_SUPERVISOR: Final = "marcador_supervisor"
ROOM_PREFIX: Final = "agent-"
TRANSFER_ROOM_PREFIX: Final = "xfer-"

# --- channel variables ----------------------------------------------------------------------
VAR_ATTEMPT: Final = "MARCADOR_ATTEMPT"
"""Attempt id (also sent as ``ChannelId``)."""
VAR_LEAD: Final = "MARCADOR_LEAD"
VAR_CAMPAIGN: Final = "MARCADOR_CAMPAIGN"
VAR_CONNECT_TIMEOUT: Final = "MARCADOR_CONNECT_TIMEOUT"
"""Seconds an answered customer waits in hold for an agent (default 2)."""
VAR_AMD: Final = "MARCADOR_AMD"
"""``""``/``off``: no AMD; ``hangup``: hang up machines; ``message``: leave a message."""
VAR_SAFE_HARBOR: Final = "MARCADOR_SAFE_HARBOR"
"""Sound file of the campaign's safe-harbor identification message."""
VAR_MACHINE_MESSAGE: Final = "MARCADOR_MACHINE_MESSAGE"
"""Sound file left on answering machines when ``MARCADOR_AMD=message``."""
VAR_SPY_AGENT: Final = "MARCADOR_SPY_AGENT"
"""Agent extension a supervisor's ``marcador-spy`` call listens to (digits only)."""
VAR_HOLD_MAX: Final = "MARCADOR_HOLD_MAX"
"""Seconds a customer stays on hold before going back to the agent's room by themselves."""
VAR_REJOINABLE: Final = "MARCADOR_REJOINABLE"
"""``1`` on a browser-phone agent's session call: the agent joins with
:data:`USER_PROFILE_AGENT_REJOINABLE`."""
VAR_RECORD: Final = "MARCADOR_RECORD"
"""``1``: record this call on connect (campaign ``record_calls``)."""
VAR_RECORD_FILE: Final = "MARCADOR_RECORD_FILE"
"""Absolute path (on the PBX host) of the attempt's recording, ``<dir>/<attempt>.raw``."""
VAR_CONSENT_PROMPT: Final = "MARCADOR_CONSENT_PROMPT"
"""Sound file played to the customer on connect ("Esta llamada puede ser grabada..."); empty:
no prompt."""
VAR_MIXMONITOR_FILENAME: Final = "MIXMONITOR_FILENAME"
"""Set by ``MixMonitor`` (a ``VarSet`` event): the file Asterisk is writing."""
#: MixMonitor options: ``D`` interleaves what the channel hears (the agent) and what it says
#: (the customer) into a 2-channel signed-linear stream; Asterisk requires the ``.raw``
#: extension with ``D``. Marcador wraps the ``.raw`` into a stereo WAV after the call.
MIXMONITOR_OPTIONS: Final = "D"
RECORD_EXTENSION: Final = ".raw"
VAR_ABANDONED: Final = "MARCADOR_ABANDONED"
"""Set to ``1`` by the dialplan on the safe-harbor path: the call is ABANDONED."""
VAR_AMDSTATUS: Final = "AMDSTATUS"
VAR_AMDCAUSE: Final = "AMDCAUSE"
VAR_CONFBRIDGE_RESULT: Final = "CONFBRIDGE_RESULT"

AMD_OFF: Final = "off"
AMD_HANGUP: Final = "hangup"
AMD_MESSAGE: Final = "message"

DEFAULT_CONNECT_TIMEOUT: Final = 2.0
DEFAULT_HOLD_MAX: Final = 600
DEFAULT_SAFE_HARBOR: Final = "marcador/safe-harbor"
DEFAULT_MACHINE_MESSAGE: Final = "marcador/machine-message"


def agent_room(ext: str) -> str:
    """ConfBridge conference name of agent ``ext``'s nailed-up room."""
    return f"{ROOM_PREFIX}{ext}"


def transfer_room(room_id: str) -> str:
    """ConfBridge conference name of transfer room ``room_id`` (digits)."""
    return f"{TRANSFER_ROOM_PREFIX}{room_id}"


def agent_of_room(conference: str) -> str | None:
    """Inverse of :func:`agent_room`; ``None`` for other conferences."""
    if conference.startswith(ROOM_PREFIX) and len(conference) > len(ROOM_PREFIX):
        return conference[len(ROOM_PREFIX) :]
    return None


def spy_exten(mode: str) -> str:
    """Exten in :data:`CTX_SPY` for ``mode`` (listen/whisper/barge): a literal extension; the
    agent goes in :data:`VAR_SPY_AGENT`."""
    if mode not in SPY_MODES:
        raise ValueError(f"unknown spy mode {mode!r}; expected one of {SPY_MODES}")
    return mode
