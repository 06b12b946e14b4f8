"""The dialer engine: campaigns -> claimed leads -> originates -> outcomes -> retries.

This is the IO shell that ties together the pure pieces (pacing, agent state machine, rules,
call tracker) with SQL (:class:`dialer.store.EngineStore`), Redis (events, commands, leases)
and the AMI bridge (:class:`Telephony`). Call flow (design.md §4), one module each:

* :mod:`~dialer.engine.sessions`: an agent logs in; their softphone's nailed-up call joins
  their ConfBridge room; READY, PAUSED, logout (:mod:`~dialer.engine.agent_state` publishes
  and logs each state, in order per agent);
* :mod:`~dialer.engine.pacing_loop`: campaigns are owned and paced; the pacer's decision
  launches calls through :mod:`~dialer.engine.dialing` (claim, attempt row, Originate);
  :mod:`~dialer.engine.previews`: preview offers and agents' manual dials;
* :mod:`~dialer.engine.routing`: the customer answers and waits in hold;
  :mod:`~dialer.engine.connect` reserves an agent and Redirects the customer into their room;
  the call ends: outcome, wrap-up, retry decision, :mod:`~dialer.engine.outbox` (WhatsApp);
* during the call: :mod:`~dialer.engine.controls` (hang up, mute, hold, DTMF, transfer),
  :mod:`~dialer.engine.recording`, :mod:`~dialer.engine.supervision` (supervisors' spy);
* :mod:`~dialer.engine.commands`: the API's commands reach the dialer that owns their subject;
* :mod:`~dialer.engine.reconcile`: what dead dialers left (restart evidence);
* :mod:`~dialer.engine.lanes`: the background tasks and ordered lanes of all of the above.

:class:`Engine` (:mod:`~dialer.engine.core`) wires the parts together and owns the loops; the
parts share one :class:`~dialer.engine.state.EngineState`. Each ordering guarantee is stated
next to the code that keeps it (dialing, outbox, connect, lanes).
"""

from dialer.engine.commands import (
    COMMAND_MAX_AGE_S,
    COMMAND_RESULT_TTL_S,
    COMMAND_RETRY_S,
    command_age,
)
from dialer.engine.controls import CALL_CONTROLS, DTMF_DIGITS, DTMF_MAX, CallControlRefused
from dialer.engine.core import Engine
from dialer.engine.model import (
    AGENT_SESSION_PREFIX,
    SPY_PREFIX,
    CampaignRuntime,
    EngineConfig,
    LiveCall,
    PreviewOffer,
    SpySession,
)
from dialer.engine.pacing_loop import pacing_config, pacing_live_fields
from dialer.engine.port import Telephony, TelephonyItem
from dialer.engine.supervision import SpyRefused, spy_key

__all__ = [
    "AGENT_SESSION_PREFIX",
    "CALL_CONTROLS",
    "COMMAND_MAX_AGE_S",
    "COMMAND_RESULT_TTL_S",
    "COMMAND_RETRY_S",
    "DTMF_DIGITS",
    "DTMF_MAX",
    "SPY_PREFIX",
    "CallControlRefused",
    "CampaignRuntime",
    "Engine",
    "EngineConfig",
    "LiveCall",
    "PreviewOffer",
    "SpyRefused",
    "SpySession",
    "Telephony",
    "TelephonyItem",
    "command_age",
    "pacing_config",
    "pacing_live_fields",
    "spy_key",
]
