"""Recordings over the API (issue 16): metadata, access rules, audited playback with HTTP
ranges, the agent's stop control, retention purge and the data-subject deletion."""

from __future__ import annotations

import wave
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dialer.db.models import (
    AuditLog,
    CallAttempt,
    Campaign,
    Lead,
    Phone,
    Recording,
    RecordingStatus,
    Role,
)
from dialer.domain.outcomes import CallOutcome, LeadStatus
from dialer.recordings import RecordingKeeper, RecordingPaths, purge_expired
from dialer.redis_client import Streams
from dialer.redis_keys import Keys
from tests.api.helpers import (
    MONDAY_10AM,
    ApiClient,
    key_client,
    make_campaign,
    make_connected_attempt,
    make_key,
    make_lead,
)

Clients = Callable[..., Awaitable[ApiClient]]


def _wav(path: Path, seconds: float = 1.0) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(range(256)) * int(seconds * 8000 * 4 / 256))


async def _recorded_call(
    sm: async_sessionmaker[AsyncSession], tmp_path: Path, *, n: int = 1, agent: int | None = None
) -> tuple[int, int, int, str]:
    """A campaign that records, a connected attempt and its finished recording (1 s WAV)."""
    camp = await make_campaign(sm, name=f"Rec {n}")
    async with sm.begin() as s:
        await s.execute(sa.update(Campaign).values(record_calls=True, recording_retention_days=30))
    lead = await make_lead(sm, camp, n)
    attempt = await make_connected_attempt(sm, camp, lead, agent)
    paths = RecordingPaths(str(tmp_path), tmp_path, settle_seconds=0)
    keeper = RecordingKeeper(sm, paths)
    rec_id = await keeper.started(attempt, agent, MONDAY_10AM - timedelta(minutes=4))
    assert rec_id is not None
    _wav(paths.local_wav(attempt))
    assert await keeper.finished(attempt, MONDAY_10AM) is RecordingStatus.OK
    return camp, lead, rec_id, attempt


async def test_metadata_and_access_rules(
    app: FastAPI, clients: Clients, admin: ApiClient, tmp_path: Path
) -> None:
    sm = app.state.sessionmaker
    camp, lead, rec_id, attempt = await _recorded_call(sm, tmp_path)
    other_camp, _, other_rec, _ = await _recorded_call(sm, tmp_path, n=2)

    r = await admin.get("/api/v1/recordings", params={"lead_id": lead})
    assert r.status_code == 200, r.text
    [item] = r.json()["items"]
    assert item["id"] == rec_id and item["attempt"] == attempt and item["status"] == "ok"
    assert item["channels"] == 2 and item["duration_s"] == pytest.approx(1.0, abs=0.01)
    assert len(item["sha256"]) == 64 and item["size_bytes"] > 8000 * 4
    assert item["audio_url"] == f"/api/v1/recordings/{rec_id}/audio"
    assert item["retention_until"].startswith("2026-12-23")  # 30 days after the start

    sup = await clients("sup1", Role.SUPERVISOR, campaigns=(camp,))
    assert (await sup.get(f"/api/v1/recordings/{rec_id}")).status_code == 200
    assert (await sup.get(f"/api/v1/recordings/{other_rec}")).status_code == 404
    assert [i["id"] for i in (await sup.get("/api/v1/recordings")).json()["items"]] == [rec_id]

    agent = await clients("ana", Role.AGENT, campaigns=(camp, other_camp), extension="1001")
    for url in (
        "/api/v1/recordings",
        f"/api/v1/recordings/{rec_id}",
        f"/api/v1/recordings/{rec_id}/audio",
    ):
        assert (await agent.get(url)).status_code == 403, url

    no_scope = await make_key(sm, "calls:read")
    async with key_client(app, no_scope) as c:
        assert (await c.get(f"/api/v1/recordings/{rec_id}/audio")).status_code == 403
    scoped = await make_key(sm, "recordings:read")
    async with key_client(app, scoped) as c:
        r = await c.get(f"/api/v1/recordings/{rec_id}/audio")
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        # a read key cannot erase anyone
        r = await c.post(
            "/api/v1/recordings/data-subject-deletion", json={"phone": "+573000000001"}
        )
        assert r.status_code == 403


async def test_playback_supports_ranges_and_every_play_is_audited(
    app: FastAPI, clients: Clients, tmp_path: Path
) -> None:
    sm = app.state.sessionmaker
    camp, _, rec_id, attempt = await _recorded_call(sm, tmp_path)
    sup = await clients("sup1", Role.SUPERVISOR, campaigns=(camp,))
    whole = (tmp_path / f"{attempt}.wav").read_bytes()
    url = f"/api/v1/recordings/{rec_id}/audio"

    r = await sup.get(url)
    assert r.status_code == 200 and r.content == whole
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-length"] == str(len(whole))

    r = await sup.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == whole[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(whole)}"

    r = await sup.get(url, headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == whole[-10:]
    r = await sup.get(url, headers={"Range": f"bytes={len(whole) - 5}-"})
    assert r.status_code == 206 and r.content == whole[-5:]
    r = await sup.get(url, headers={"Range": f"bytes={len(whole)}-"})
    assert r.status_code == 416

    r = await sup.get(url, params={"download": "true"})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]

    async with sm() as s:
        rows = (
            await s.scalars(
                sa.select(AuditLog)
                .where(AuditLog.target_type == "recording", AuditLog.target_id == str(rec_id))
                .order_by(AuditLog.id)
            )
        ).all()
    assert [(a.action, a.actor, a.detail["range"]) for a in rows] == [
        ("recording.play", f"user:{sup.user_id}", ""),
        ("recording.play", f"user:{sup.user_id}", "100-199"),
        ("recording.play", f"user:{sup.user_id}", f"{len(whole) - 10}-{len(whole) - 1}"),
        ("recording.play", f"user:{sup.user_id}", f"{len(whole) - 5}-{len(whole) - 1}"),
        ("recording.download", f"user:{sup.user_id}", ""),
    ]
    assert all(a.detail["attempt"] == attempt for a in rows)


async def test_agent_stop_sends_a_command_and_is_audited(
    app: FastAPI, clients: Clients, redis: object, keys: Keys
) -> None:
    agent = await clients("ana", Role.AGENT, extension="1001")
    r = await agent.post("/api/v1/recordings/stop")
    assert r.status_code == 202, r.text
    entries = await Streams(redis).read(keys.commands_stream, "0", count=100)  # type: ignore[arg-type]
    assert [(e.type, e.data) for e in entries if e.type == "recording_stop"] == [
        ("recording_stop", {"agent_id": agent.user_id, "by": agent.user_id})
    ]
    async with app.state.sessionmaker() as s:
        actions = (await s.scalars(sa.select(AuditLog.action))).all()
    assert "recording.stop_requested" in actions


async def test_retention_purge_deletes_files_and_marks_rows(app: FastAPI, tmp_path: Path) -> None:
    sm = app.state.sessionmaker
    _, _, rec_id, attempt = await _recorded_call(sm, tmp_path)
    wav = tmp_path / f"{attempt}.wav"
    assert wav.exists()
    early = await purge_expired(sm, MONDAY_10AM + timedelta(days=29))
    assert (early.deleted, early.errors) == (0, 0) and wav.exists()
    done = await purge_expired(sm, MONDAY_10AM + timedelta(days=31))
    assert (done.deleted, done.errors) == (1, 0) and not wav.exists()
    async with sm() as s:
        rec = await s.get_one(Recording, rec_id)
        assert rec.status is RecordingStatus.DELETED and rec.deleted_reason == "retention"
        assert rec.duration_s == pytest.approx(1.0, abs=0.01)  # metadata stays
        assert "recordings.purge" in (await s.scalars(sa.select(AuditLog.action))).all()
    again = await purge_expired(sm, MONDAY_10AM + timedelta(days=32))
    assert (again.deleted, again.errors) == (0, 0)  # idempotent


async def test_data_subject_deletion_masks_the_person_and_keeps_counts(
    app: FastAPI, admin: ApiClient, clients: Clients, tmp_path: Path
) -> None:
    sm = app.state.sessionmaker
    camp, lead, rec_id, attempt = await _recorded_call(sm, tmp_path)
    _, other_lead, other_rec, _ = await _recorded_call(sm, tmp_path, n=2)
    sup = await clients("sup1", Role.SUPERVISOR, campaigns=(camp,))
    body = {"national_id": "1001"}
    assert (
        await sup.post("/api/v1/recordings/data-subject-deletion", json=body)
    ).status_code == 403
    r = await admin.post("/api/v1/recordings/data-subject-deletion", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"leads": 1, "attempts": 1, "recordings": 1}
    assert not (tmp_path / f"{attempt}.wav").exists()
    async with sm() as s:
        rec = await s.get_one(Recording, rec_id)
        assert rec.status is RecordingStatus.DELETED and rec.deleted_reason == "data_subject"
        assert (await s.get_one(Recording, other_rec)).status is RecordingStatus.OK
        row = await s.get_one(Lead, lead)
        assert row.national_id is None and row.plate is None and "Cliente" not in row.customer_name
        assert row.status is LeadStatus.EXCLUDED
        phones = (await s.scalars(sa.select(Phone.e164).where(Phone.lead_id == lead))).all()
        assert all(not p.startswith("+") for p in phones)
        a = await s.scalar(sa.select(CallAttempt).where(CallAttempt.uuid == attempt))
        assert a is not None and "300" not in a.number
        # the anonymous counts the reports need are still there
        assert a.outcome is CallOutcome.ANSWERED_CONNECTED and a.campaign_id == camp
        assert (await s.get_one(Lead, other_lead)).national_id == "1002"
        audit = await s.scalar(sa.select(AuditLog).where(AuditLog.action == "data_subject.erase"))
        assert audit is not None and audit.actor == f"user:{admin.user_id}"
        assert "1001" not in str(audit.detail)  # no personal data in the audit entry
    r = await admin.get(f"/api/v1/recordings/{rec_id}/audio")
    assert r.status_code == 409


async def test_campaign_presets_and_settings(admin: ApiClient) -> None:
    r = await admin.post(
        "/api/v1/campaigns", json={"name": "Satisfacción", "type": "seguimiento_satisfaccion"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["record_calls"] is True
    r = await admin.post(
        "/api/v1/campaigns", json={"name": "Proactivo", "type": "contacto_proactivo"}
    )
    assert r.json()["record_calls"] is False
    r = await admin.patch(
        f"/api/v1/campaigns/{r.json()['id']}",
        json={
            "record_calls": True,
            "recording_retention_days": 90,
            "recording_consent_prompt": "marcador/consent",
        },
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["record_calls"], out["recording_retention_days"]) == (True, 90)
    assert out["recording_consent_prompt"] == "marcador/consent"
    r = await admin.patch(
        f"/api/v1/campaigns/{out['id']}", json={"recording_consent_prompt": "x;System(rm)"}
    )
    assert r.status_code == 422


def test_range_parser_edges() -> None:
    from api.errors import ApiError
    from api.routers.recordings import parse_range

    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-", 10) == (0, 9)
    assert parse_range("bytes=2-100", 10) == (2, 9)
    for bad in ("bytes=5-2", "bytes=-", "items=0-1", "bytes=0-1,3-4", "bytes=-0"):
        with pytest.raises(ApiError):
            parse_range(bad, 10)


async def test_links_from_calls_lead_history_and_pqrs(
    app: FastAPI, clients: Clients, tmp_path: Path
) -> None:
    from datetime import date

    from dialer.db.models import Disposition, Pqrs, PqrsType

    sm = app.state.sessionmaker
    camp, lead, rec_id, attempt = await _recorded_call(sm, tmp_path)
    async with sm.begin() as s:
        a = await s.scalar(sa.select(CallAttempt).where(CallAttempt.uuid == attempt))
        assert a is not None
        d = Disposition(attempt_id=a.id, lead_id=lead, code="complaint", created_at=MONDAY_10AM)
        s.add(d)
        await s.flush()
        s.add(
            Pqrs(
                lead_id=lead,
                person_key="1001",
                disposition_id=d.id,
                type=PqrsType.QUEJA,
                description="prometió un descuento",
                deadline=date(2026, 12, 14),
            )
        )
    link = f"/api/v1/recordings/{rec_id}/audio"
    sup = await clients("sup1", Role.SUPERVISOR, campaigns=(camp,))
    calls = (await sup.get("/api/v1/calls", params={"lead_id": lead})).json()["items"]
    assert [(c["recording_id"], c["recording_url"]) for c in calls] == [(rec_id, link)]
    assert (await sup.get(f"/api/v1/calls/{attempt}")).json()["recording_url"] == link
    history = (await sup.get(f"/api/v1/leads/{lead}")).json()["history"]
    assert [x["recording_url"] for x in history["attempts"]] == [link]
    assert [x["recording_url"] for x in history["pqrs"]] == [link]
    pqrs = (await sup.get("/api/v1/pqrs", params={"lead_id": lead})).json()["items"]
    assert [x["recording_url"] for x in pqrs] == [link]

    agent = await clients("ana", Role.AGENT, campaigns=(camp,), extension="1001")
    calls = (await agent.get("/api/v1/calls", params={"lead_id": lead})).json()["items"]
    assert all(c["recording_url"] is None for c in calls)  # agents never get the link


async def test_failed_recording_on_dashboard_and_metrics(
    app: FastAPI, clients: Clients, tmp_path: Path
) -> None:
    sm = app.state.sessionmaker
    camp, lead, _, _ = await _recorded_call(sm, tmp_path)
    attempt = await make_connected_attempt(sm, camp, lead, None, number=2)
    keeper = RecordingKeeper(sm, RecordingPaths(str(tmp_path), tmp_path, settle_seconds=0))
    assert await keeper.started(attempt, None, MONDAY_10AM) is not None
    # no file after the call (path not writable on the PBX, disk full, ...)
    assert await keeper.finished(attempt, MONDAY_10AM) is RecordingStatus.FAILED
    sup = await clients("sup1", Role.SUPERVISOR, campaigns=(camp,))
    live = (await sup.get(f"/api/v1/campaigns/{camp}/live")).json()
    rec = live["recordings"]
    assert (rec["enabled"], rec["ok"], rec["failed"]) == (True, 1, 1)
    assert "missing" in rec["last_failure"]
    key = await make_key(sm, "metrics:read")
    async with key_client(app, key) as c:
        text = (await c.get("/metrics")).text
    assert f'marcador_recordings_today{{campaign_id="{camp}",status="failed"}} 1.0' in text
    assert f'marcador_recordings_today{{campaign_id="{camp}",status="ok"}} 1.0' in text


async def test_sweep_finalises_what_a_dead_dialer_left(app: FastAPI, tmp_path: Path) -> None:
    sm = app.state.sessionmaker
    camp = await make_campaign(sm, name="Sweep")
    async with sm.begin() as s:
        await s.execute(sa.update(Campaign).values(record_calls=True))
    lead = await make_lead(sm, camp, 7)
    attempt = await make_connected_attempt(sm, camp, lead, None)  # ended 10:59
    keeper = RecordingKeeper(sm, RecordingPaths(str(tmp_path), tmp_path, settle_seconds=0))
    assert await keeper.started(attempt, None, MONDAY_10AM - timedelta(minutes=4)) is not None
    _wav(tmp_path / f"{attempt}.wav")
    assert await keeper.sweep(MONDAY_10AM) == 0  # the call ended one minute ago: still settling
    assert await keeper.sweep(MONDAY_10AM + timedelta(minutes=5)) == 1
    async with sm() as s:
        rec = await s.scalar(sa.select(Recording).where(Recording.lead_id == lead))
    assert rec is not None and rec.status is RecordingStatus.OK
    assert await keeper.sweep(MONDAY_10AM + timedelta(minutes=6)) == 0
