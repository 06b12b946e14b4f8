"""A supervisor plays a call recording on the dashboard and seeks in it (issue 16), in a real
headless Chromium against the live stack: the ``<audio>`` element streams from
``/api/v1/recordings/{id}/audio`` (HTTP ranges) and every request is audited."""

from __future__ import annotations

import math
import struct
import wave
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dialer.db.models import AuditLog, CallAttempt, Lead, Phone, Recording, RecordingStatus
from dialer.domain.outcomes import CallOutcome, DialMode
from tests.web.stack import PASSWORD, LiveStack

pytestmark = pytest.mark.slow

SECONDS = 20


def _tone_wav(path: Path) -> None:
    frames = b"".join(
        struct.pack(
            "<hh",
            int(3000 * math.sin(2 * math.pi * 440 * i / 8000)),
            int(3000 * math.sin(2 * math.pi * 660 * i / 8000)),
        )
        for i in range(8000)
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames * SECONDS)


def _seed_recording(stack: LiveStack, path: Path) -> int:
    size = path.stat().st_size

    async def seed() -> int:
        assert stack.clock is not None
        now = stack.clock.now()
        cid = stack.seeded.web_campaign
        async with stack.sessionmaker.begin() as s:
            lead = Lead(campaign_id=cid, dedupe_key="rec:player", customer_name="Grabada")
            lead.phones = [Phone(e164="+573009990001")]
            s.add(lead)
            await s.flush()
            attempt = CallAttempt(
                lead_id=lead.id,
                campaign_id=cid,
                number="+573009990001",
                attempt_number=1,
                mode=DialMode.PROGRESSIVE,
                created_at=now - timedelta(minutes=2),
                connected_at=now - timedelta(minutes=2),
                ended_at=now - timedelta(minutes=1),
                outcome=CallOutcome.ANSWERED_CONNECTED,
            )
            s.add(attempt)
            await s.flush()
            rec = Recording(
                attempt_id=attempt.id,
                campaign_id=cid,
                lead_id=lead.id,
                started_at=now - timedelta(minutes=2),
                ended_at=now - timedelta(minutes=1),
                duration_s=float(SECONDS),
                size_bytes=size,
                channels=2,
                pbx_path=str(path.with_suffix(".raw")),
                path=str(path),
                retention_until=now + timedelta(days=30),
                status=RecordingStatus.OK,
            )
            s.add(rec)
            await s.flush()
            return int(rec.id)

    return stack.call(seed)


def test_supervisor_plays_a_recording_and_seeks(
    stack: LiveStack, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    from tests.web.browser import body_data, sign_in, wait

    wav = tmp_path / "grabacion.wav"
    _tone_wav(wav)
    rec_id = _seed_recording(stack, wav)
    sign_in(browser, stack.base_url, LiveStack.SUPERVISOR, PASSWORD)
    wait(browser, 15, "the dashboard").until(
        lambda d: d.current_url.endswith("/supervisor") and body_data(d, "ready") == "1"
    )
    css = f'li[data-recording-id="{rec_id}"] audio'
    wait(browser, 20, "the recording in the list").until(
        lambda d: d.find_elements(By.CSS_SELECTOR, css)
    )
    panel = f'section.campaign[data-campaign-id="{stack.seeded.web_campaign}"]'
    browser.find_element(By.CSS_SELECTOR, f"{panel} details.recordings summary").click()
    audio = browser.find_element(By.CSS_SELECTOR, css)
    wait(browser, 20, "the audio metadata").until(
        lambda d: d.execute_script("return arguments[0].readyState >= 1;", audio)
    )
    duration = browser.execute_script("return arguments[0].duration;", audio)
    assert duration == pytest.approx(SECONDS, abs=0.1)
    browser.execute_script(
        "const a = arguments[0]; a.muted = true; a.dataset.seeked = '';"
        "a.addEventListener('seeked', () => { a.dataset.seeked = String(a.currentTime); });"
        "a.play().catch(() => {}); a.currentTime = 15;",
        audio,
    )
    wait(browser, 20, "the seek").until(
        lambda d: d.execute_script("return arguments[0].dataset.seeked;", audio)
    )
    seeked = float(browser.execute_script("return arguments[0].dataset.seeked;", audio))
    assert seeked == pytest.approx(15, abs=0.5)
    assert browser.execute_script("return arguments[0].error;", audio) is None

    async def audits() -> list[tuple[str, str, str]]:
        async with stack.sessionmaker() as s:
            rows = await s.execute(
                sa.select(AuditLog.action, AuditLog.actor, AuditLog.detail).where(
                    AuditLog.target_type == "recording", AuditLog.target_id == str(rec_id)
                )
            )
            return [(a, actor, str(d.get("range", ""))) for a, actor, d in rows.all()]

    played = stack.call(audits)
    assert played and all(
        a == "recording.play" and actor == f"user:{stack.seeded.supervisor}"
        for a, actor, _ in played
    )
