"""Call recording on the real PBX (issue 16): real ``marcador api`` + ``marcador dialer`` on the
lab Asterisk, a talking virtual agent and a talking lab customer.

* A connected call leaves a stereo WAV whose two channels both carry audio, and whose length
  matches the talk time within 1 s.
* A recording the agent stops ends where it was stopped; the call goes on.
"""

from __future__ import annotations

import array
import asyncio
import math
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dialer.db.engine import make_sessionmaker
from dialer.db.models import CallAttempt, Campaign, Recording, RecordingStatus
from dialer.lab_pstn import TALKING_AGENT_CHANNEL, TALKING_CUSTOMER_TRUNK, lab_number
from dialer.pbx_lab import LabPbx
from tests.pbx.stack import AgentClient, PbxStack, wait_until

TALK = 5.0  # seconds of conversation the test lets happen


@pytest.fixture
async def talking_stack(lab_pbx: LabPbx, tmp_path: Path) -> AsyncIterator[PbxStack]:
    stack = PbxStack(lab_pbx, tmp_path, agent_channel=TALKING_AGENT_CHANNEL).start()
    try:
        yield stack
    finally:
        await stack.aclose()


def _channel_rms(path: Path) -> tuple[float, float, float]:
    """(left RMS, right RMS, seconds) of a 16-bit stereo WAV."""
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 2 and w.getsampwidth() == 2
        frames = w.getnframes()
        rate = w.getframerate()
        samples = array.array("h", w.readframes(frames))

    def rms(values: array.array[int]) -> float:
        return math.sqrt(sum(v * v for v in values) / max(1, len(values)))

    return rms(samples[0::2]), rms(samples[1::2]), frames / rate


async def _start_recorded_call(stack: PbxStack, serial: int) -> tuple[str, AgentClient]:
    number = lab_number("0", serial)
    camp, _ = await stack.seed_campaign([number], max_attempts=1)
    async with make_sessionmaker(stack.engine).begin() as s:
        await s.execute(
            sa.update(Campaign)
            .where(Campaign.id == camp)
            .values(record_calls=True, trunk=TALKING_CUSTOMER_TRUNK)
        )
    users = await stack.add_agents(camp, ["1001"])
    [client] = await stack.login_agents(camp, users)

    async def recording_started() -> str | None:
        async with make_sessionmaker(stack.engine)() as s:
            row = (
                await s.execute(
                    sa.select(CallAttempt.uuid)
                    .join(Recording, Recording.attempt_id == CallAttempt.id)
                    .where(CallAttempt.campaign_id == camp)
                )
            ).first()
        return None if row is None else str(row[0])

    attempt = await wait_until(recording_started, within=60, what="the call connects")
    return attempt, client


def _hangup_customer(lab: LabPbx) -> None:
    for line in lab.cli("core show channels concise").splitlines():
        name = line.split("!", 1)[0]
        if "@marcador-lab-customer-talk-" in name:
            lab.cli(f"channel request hangup {name}")


async def _finished(stack: PbxStack, attempt: str) -> tuple[Recording, CallAttempt]:
    async def done() -> tuple[Recording, CallAttempt] | None:
        async with make_sessionmaker(stack.engine)() as s:
            row = (
                await s.execute(
                    sa.select(Recording, CallAttempt)
                    .join(CallAttempt, CallAttempt.id == Recording.attempt_id)
                    .where(CallAttempt.uuid == attempt)
                )
            ).first()
        if row is None or row[0].status is RecordingStatus.RECORDING or row[1].ended_at is None:
            return None
        return row[0], row[1]

    return await wait_until(done, within=60, what="the recording is finalised")


async def test_connected_call_leaves_a_stereo_recording_of_the_talk(
    talking_stack: PbxStack,
) -> None:
    stack = talking_stack
    attempt, _ = await _start_recorded_call(stack, 910)
    await asyncio.sleep(TALK)  # the conversation being recorded
    _hangup_customer(stack.lab)
    rec, call = await _finished(stack, attempt)
    assert rec.status is RecordingStatus.OK, (rec.failure_reason, stack.log("dialer-1")[-3000:])
    path = Path(rec.path)
    left, right, seconds = _channel_rms(path)
    assert left > 100 and right > 100, (left, right)  # customer and agent both audible
    assert call.connected_at is not None and call.ended_at is not None
    talk = (call.ended_at - call.connected_at).total_seconds()
    assert abs(seconds - talk) <= 1.0, (seconds, talk)
    assert rec.channels == 2 and rec.duration_s == pytest.approx(seconds, abs=0.01)
    assert not path.with_suffix(".raw").exists()


async def test_a_stopped_recording_ends_where_it_was_stopped(talking_stack: PbxStack) -> None:
    stack = talking_stack
    attempt, client = await _start_recorded_call(stack, 911)
    await asyncio.sleep(2.0)
    r = await client.post("/recordings/stop")
    assert r.status_code == 202, r.text

    async def stopped() -> bool | None:
        async with make_sessionmaker(stack.engine)() as s:
            at = await s.scalar(
                sa.select(Recording.stopped_at)
                .join(CallAttempt, CallAttempt.id == Recording.attempt_id)
                .where(CallAttempt.uuid == attempt)
            )
        return True if at is not None else None

    await wait_until(stopped, within=30, what="the dialer stops the recording")
    await asyncio.sleep(3.0)  # the call goes on, unrecorded
    _hangup_customer(stack.lab)
    rec, call = await _finished(stack, attempt)
    assert rec.status is RecordingStatus.OK, rec.failure_reason
    assert rec.stopped_at is not None
    _, _, seconds = _channel_rms(Path(rec.path))
    assert abs(seconds - (rec.stopped_at - rec.started_at).total_seconds()) <= 1.0
    assert call.connected_at is not None and call.ended_at is not None
    talk = (call.ended_at - call.connected_at).total_seconds()
    assert talk - seconds >= 2.5, (talk, seconds)  # the rest of the call is not in the file
