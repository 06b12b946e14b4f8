"""Call recording end to end on the PBX simulator (issue 16): engine -> dialplan -> file -> row.

The dialplan (``marcador-record``) starts MixMonitor on the connect path; the simulator writes
an interleaved stereo ``.raw`` like Asterisk's option D; the dialer registers the row on connect
and, after the hang-up, turns the file into a stereo WAV with size, checksum and duration. The
agent's "stop recording" ends the file where it was stopped. A recording that fails never stops
the call.
"""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import pytest
import sqlalchemy as sa

from ami_bridge import dialplan
from ami_bridge.simulator import SimulatorConfig
from dialer.db.models import CallAttempt, Recording, RecordingStatus
from dialer.domain.outcomes import CallOutcome
from dialer.settings import Settings

from .factories import make_agent, make_campaign, make_lead
from .sim_rig import first_call, running, sim_config, sim_runtime, sqlite_settings


def _sim_config() -> SimulatorConfig:
    return sim_config("1001", seed=5, consent_prompt_seconds=2.0)


async def _setup(settings: Settings, tmp_path: Path, rec_dir: Path) -> Settings:
    settings = await sqlite_settings(settings, tmp_path / "rec.db")
    return settings.model_copy(
        update={
            "recording": settings.recording.model_copy(
                update={"pbx_dir": str(rec_dir), "settle_seconds": 0.0}
            ),
        }
    )


async def _row(sm: object, attempt: str) -> Recording | None:
    async with sm() as s:  # type: ignore[operator]
        rec: Recording | None = await s.scalar(
            sa.select(Recording)
            .join(CallAttempt, CallAttempt.id == Recording.attempt_id)
            .where(CallAttempt.uuid == attempt)
        )
        return rec


async def _final_row(sm: object, attempt: str, within: float = 20.0) -> Recording:
    """The row once the dialer finalised it (after the hang-up, in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        row = await _row(sm, attempt)
        if row is not None and row.status is not RecordingStatus.RECORDING:
            return row
        if loop.time() > deadline:
            pytest.fail("recording not finalised in time")
        await asyncio.sleep(0.02)


async def test_connected_call_is_recorded_and_stop_keeps_what_came_before(
    settings: Settings, tmp_path: Path
) -> None:
    rec_dir = tmp_path / "rec"
    settings = await _setup(settings, tmp_path, rec_dir)
    async with sim_runtime(settings, _sim_config(), "rec") as (rt, sim):
        engine = rt.engine
        sm = engine.store.sm
        camp = await make_campaign(
            sm,
            name=f"Rec {tmp_path.name}",
            record_calls=True,
            recording_retention_days=30,
            recording_consent_prompt="marcador/consent",
        )
        await make_agent(sm, 901, "1001")
        await make_lead(sm, camp.id, 1)
        async with running(engine):
            attempt, customer = await first_call(engine, 901, "1001", camp.id)
            ch = sim.pbx.find_channel(customer)
            assert ch is not None
            # started by the dialplan, with the file name from the Originate's variables
            assert ch.variables[dialplan.VAR_RECORD] == "1"
            assert ch.mixmonitor is not None
            assert ch.mixmonitor[0] == str(rec_dir / f"{attempt}.raw")
            for _ in range(200):  # registered by the dialer right after the connect
                row = await _row(sm, attempt)
                if row is not None:
                    break
                await asyncio.sleep(0.02)
            assert row is not None and row.status is RecordingStatus.RECORDING
            assert row.agent_id == 901
            assert (row.retention_until - row.started_at).days == 30

            began = ch.mixmonitor[1]
            await asyncio.sleep(0.1)  # ~2 simulated seconds of conversation
            before = sim.pbx.clock.now() - began
            assert await engine.stop_recording(901, by=901)
            assert ch.mixmonitor is None  # StopMixMonitor reached the PBX: the file is closed
            after = sim.pbx.clock.now() - began
            await asyncio.sleep(0.1)  # the call goes on, unrecorded
            assert sim.hangup_from_far_end(customer)
            row = await _final_row(sm, attempt)
        assert row.status is RecordingStatus.OK, row.failure_reason
        assert row.stopped_at is not None and row.stopped_by == 901
        assert row.channels == 2 and row.size_bytes and row.sha256 and len(row.sha256) == 64
        wav_path = Path(row.path)
        assert wav_path == rec_dir / f"{attempt}.wav"
        assert not (rec_dir / f"{attempt}.raw").exists()
        with wave.open(str(wav_path), "rb") as w:
            assert w.getnchannels() == 2 and w.getframerate() == 8000
            seconds = w.getnframes() / 8000
        assert row.duration_s == pytest.approx(seconds, abs=0.01)
        assert before - 0.01 <= seconds <= after + 0.01  # consent prompt + talk, until stopped
        # the file ends where it was stopped: the call itself lasted longer
        async with sm() as s:
            a = await s.scalar(sa.select(CallAttempt).where(CallAttempt.uuid == attempt))
        assert a is not None and a.outcome is CallOutcome.ANSWERED_CONNECTED
        assert a.connected_at is not None and a.ended_at is not None
        talk = (a.ended_at - a.connected_at).total_seconds()
        assert 0 < seconds < talk


async def test_a_recording_that_fails_never_stops_the_call(
    settings: Settings, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    settings = await _setup(settings, tmp_path, blocker / "rec")
    async with sim_runtime(settings, _sim_config(), "rec2") as (rt, sim):
        engine = rt.engine
        sm = engine.store.sm
        camp = await make_campaign(sm, name=f"Rec2 {tmp_path.name}", record_calls=True)
        await make_agent(sm, 902, "1001")
        await make_lead(sm, camp.id, 1)
        async with running(engine):
            attempt, customer = await first_call(engine, 902, "1001", camp.id)
            await asyncio.sleep(0.05)
            assert sim.hangup_from_far_end(customer)
            row = await _final_row(sm, attempt)
        assert row.status is RecordingStatus.FAILED
        assert row.failure_reason and "missing" in row.failure_reason
        async with sm() as s:
            a = await s.scalar(sa.select(CallAttempt).where(CallAttempt.uuid == attempt))
        assert a is not None and a.outcome is CallOutcome.ANSWERED_CONNECTED
