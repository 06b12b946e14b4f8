"""Every Redis key and stream name Marcador uses, in one place (arq-style).

Redis is the live layer only (design.md §2): losing it loses at most the live view, never a
lead or an outcome. Everything here can be rebuilt from SQL.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder bound to a deployment prefix (``MARCADOR_REDIS__KEY_PREFIX``)."""

    prefix: str = "marcador"

    # ---- streams --------------------------------------------------------------------------
    @property
    def commands_stream(self) -> str:
        """api/CLI -> dialer: agent log-in/ready/pause, campaign start/pause, spy requests."""
        return f"{self.prefix}:stream:commands"

    @property
    def events_stream(self) -> str:
        """dialer -> api, dashboard, webhooks: call and agent events, screen-pops."""
        return f"{self.prefix}:stream:events"

    @property
    def whatsapp_stream(self) -> str:
        """dialer -> WhatsApp worker: exhausted leads for the fallback message."""
        return f"{self.prefix}:stream:whatsapp"

    # ---- consumer groups ------------------------------------------------------------------
    dialer_group: str = "dialers"
    whatsapp_group: str = "whatsapp-workers"
    webhook_group: str = "webhooks"

    # ---- leases ---------------------------------------------------------------------------
    def lead_lease(self, lead_id: int) -> str:
        return f"{self.prefix}:lease:lead:{lead_id}"

    def campaign_lease(self, campaign_id: int) -> str:
        return f"{self.prefix}:lease:campaign:{campaign_id}"

    def dialer_heartbeat(self, dialer_id: str) -> str:
        return f"{self.prefix}:dialer:{dialer_id}:heartbeat"

    def command_result(self, command_id: str) -> str:
        """String (JSON): what the dialer did with a command (accepted or rejected, and why)."""
        return f"{self.prefix}:command:{command_id}:result"

    # ---- hoppers --------------------------------------------------------------------------
    def hopper(self, campaign_id: int) -> str:
        """Sorted set of ready lead ids for a campaign (score: order of dialing)."""
        return f"{self.prefix}:hopper:{campaign_id}"

    # ---- live state -----------------------------------------------------------------------
    def agent_state(self, user_id: int) -> str:
        """Hash: state, since, extension, campaign, pause_code, call."""
        return f"{self.prefix}:agent:{user_id}"

    def disposition_draft(self, user_id: int, attempt: str) -> str:
        """String (JSON): the disposition an agent saved during a call, applied when the call
        ends (api/routers/agent.py; expires after ``DRAFT_TTL_S``)."""
        return f"{self.prefix}:agent:{user_id}:draft:{attempt}"

    @property
    def agents_online(self) -> str:
        """Set of user ids with a live agent session."""
        return f"{self.prefix}:agents:online"

    def campaign_live(self, campaign_id: int) -> str:
        """Hash of live counters for the dashboard (dialing, ringing, dial level...)."""
        return f"{self.prefix}:campaign:{campaign_id}:live"

    def ami_link(self, server: str) -> str:
        """Hash: AMI link status of one Asterisk server."""
        return f"{self.prefix}:ami:{server}"

    def login_attempts(self, who: str) -> str:
        """Counter for login rate limiting (per username or IP)."""
        return f"{self.prefix}:ratelimit:login:{who}"

    # ---- api ------------------------------------------------------------------------------
    def web_session(self, session_hash: str) -> str:
        """Hash: one web (cookie) session, keyed by the SHA-256 of its id (api/auth.py)."""
        return f"{self.prefix}:session:{session_hash}"

    def user_sessions(self, user_id: int) -> str:
        """Set of a user's session hashes (revoked together on password change/deactivation)."""
        return f"{self.prefix}:user:{user_id}:sessions"

    def import_job(self, job_id: str) -> str:
        """Hash: progress and result of a background lead import (GET /api/v1/imports/{id})."""
        return f"{self.prefix}:import:{job_id}"

    def pattern(self) -> str:
        """Match every key of this deployment (tests, admin flush)."""
        return f"{self.prefix}:*"
