"""Agents on real softphones for the tier: :class:`dialer.softphone.Softphone` seats registered
to the lab (``LabPbx.agent_passwords``), and what the PBX says about an agent's room.

Used with ``PbxStack(..., virtual_agents=False)``: the dialer then calls ``PJSIP/{extension}``
(the production agent channel) and the softphone auto-answers the login call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dialer.db.engine import make_sessionmaker
from dialer.db.models import Campaign
from dialer.domain.outcomes import CampaignStatus
from dialer.pbx_lab import LabPbx
from dialer.softphone import Extension, Softphone, SoftphoneConfig
from tests.pbx.stack import PbxStack, lab_channels
from tests.pbx.test_softphone import _free_udp_block


def lab_phone(
    lab: LabPbx, seats: Iterable[str], *, record_dir: Path | None = None, answer_delay: float = 1.0
) -> Softphone:
    """A (not yet started) softphone registering ``seats`` with the lab's generated passwords,
    on a free RTP block outside the lab's own range."""
    passwords = lab.agent_passwords
    low, high = _free_udp_block(40)
    return Softphone(
        SoftphoneConfig(
            extensions=tuple(
                Extension(s, passwords[s], server="127.0.0.1", port=lab.ports.sip) for s in seats
            ),
            rtp_port_low=low,
            rtp_port_high=high,
            bind_ip="127.0.0.1",
            record_dir=record_dir,
            answer_delay=answer_delay,
        )
    )


def channels(lab: LabPbx) -> list[str]:
    """Names of every channel up on the lab PBX (``core show channels concise``)."""
    return [c["name"] for c in lab_channels(lab)]


def phone_channels(lab: LabPbx, extension: str) -> list[str]:
    """The channels of the seat's softphone (``PJSIP/<ext>-…``)."""
    return [c for c in channels(lab) if c.startswith(f"PJSIP/{extension}-")]


def room_members(lab: LabPbx, extension: str) -> list[str]:
    """The channels in the agent's room ``agent-<ext>`` (``confbridge list agent-<ext>``)."""
    out = lab.cli(f"confbridge list agent-{extension}")
    members = []
    for line in out.splitlines():
        first = line.split(" ", 1)[0]
        if "/" in first and not first.startswith("="):
            members.append(first)
    return members


def room_count(lab: LabPbx, extension: str) -> int:
    """Members of ``agent-<ext>`` as ``CONFBRIDGE_INFO(parties,…)`` counts them (0: no room)."""
    return len(room_members(lab, extension))


async def in_thread(phone: Softphone) -> Softphone:
    """Start (register) the phone without blocking the event loop."""
    await asyncio.to_thread(phone.start)
    return phone


def live_recording(phone: Softphone, extension: str) -> tuple[float, float]:
    """(seconds, rms) recorded so far on the seat's answered call (0, 0 without one): the
    phone's recorder is written while the call lasts."""
    for call in list(phone._phones[extension].calls.values()):
        recorder = getattr(call, "recorder", None)
        if recorder is not None and not call.ended.is_set():  # type: ignore[attr-defined]
            return recorder.seconds, recorder.rms
    return 0.0, 0.0


async def set_campaign_status(stack: PbxStack, campaign_id: int, status: CampaignStatus) -> None:
    """Change a campaign's status in the store (the dialer sees it on its next round)."""
    await update_campaign(stack, campaign_id, status=status)


async def update_campaign(stack: PbxStack, campaign_id: int, **values: Any) -> None:
    """Change campaign columns in the store (the dialer reads them on its next round)."""
    async with make_sessionmaker(stack.engine).begin() as s:
        await s.execute(sa.update(Campaign).where(Campaign.id == campaign_id).values(**values))
