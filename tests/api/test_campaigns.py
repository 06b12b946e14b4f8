"""Campaign CRUD, presets, validation and lifecycle; supervisors see only their campaigns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi import FastAPI

from dialer.db.models import AuditLog, Lead, Role
from dialer.domain.clock import FakeClock
from dialer.store import EngineStore
from tests.api.helpers import ApiClient, make_campaign
from tests.engine.factories import make_campaign as engine_campaign
from tests.engine.factories import make_lead as engine_lead

API = "/api/v1/campaigns"


async def test_presets_per_type(admin: ApiClient) -> None:
    presets = {p["type"]: p["values"] for p in (await admin.get(f"{API}/presets")).json()}
    assert presets["contacto_proactivo"]["max_attempts"] == 3
    assert presets["contacto_proactivo"]["whatsapp_enabled"] is True
    assert presets["recuperacion_clientes"]["rules"] == {"recovery_min_days_since_visit": 365}
    sat = presets["seguimiento_satisfaccion"]
    assert sat["max_attempts"] == 5
    assert sat["rules"] == {"satisfaction_first_call_day": 2, "skip_open_complaints": True}
    assert set(presets) == {
        "contacto_proactivo",
        "recuperacion_clientes",
        "seguimiento_satisfaccion",
        "agendamiento_citas",
        "custom",
    }


async def test_script_with_unknown_placeholders_is_refused(admin: ApiClient) -> None:
    """A literal ``{agente}`` on the agent's screen is refused at save, with the valid list."""
    r = await admin.post(
        API,
        json={"name": "Guion", "type": "contacto_proactivo", "script": "Le habla {agente}"},
    )
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "unknown_placeholder"
    assert err["details"]["unknown"] == ["agente"] and "asesor" in err["details"]["valid"]
    r = await admin.post(API, json={"name": "Guion", "type": "contacto_proactivo"})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = await admin.patch(f"{API}/{cid}", json={"script": "Hola {nombre} {x_y}, {asesor}"})
    assert r.status_code == 422 and r.json()["error"]["details"]["unknown"] == ["x_y"]
    r = await admin.patch(f"{API}/{cid}", json={"script": "Hola {nombre}, le habla {asesor}"})
    assert r.status_code == 200, r.text


def test_shipped_scripts_use_known_placeholders() -> None:
    from api.demo import SCRIPT
    from api.presets import preset_for
    from dialer.domain.outcomes import CampaignType
    from dialer.domain.script import unknown_placeholders

    assert unknown_placeholders(SCRIPT) == []
    for campaign_type in CampaignType:
        script = str(preset_for(campaign_type).get("script") or "")
        assert unknown_placeholders(script) == [], campaign_type


async def test_create_uses_preset_and_is_editable(app: FastAPI, admin: ApiClient) -> None:
    r = await admin.post(
        API, json={"name": "Satisfacción Duitama", "type": "seguimiento_satisfaccion"}
    )
    assert r.status_code == 201, r.text
    camp = r.json()
    assert camp["status"] == "draft"
    assert camp["max_attempts"] == 5
    assert camp["rules"]["skip_open_complaints"] is True
    assert camp["call_window"]["sun"] == []
    r = await admin.patch(
        f"{API}/{camp['id']}",
        json={
            "max_attempts": 4,
            "retry_rules": {"busy": "PT30M", "no_answer": 5400},
            "call_window": {"mon": [{"start": "08:00", "end": "12:00"}], "sat": []},
            "rules": {"satisfaction_first_call_day": 3},
            "script": "Hola {nombre}",
        },
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["max_attempts"] == 4
    assert got["retry_rules"] == {"busy": "PT30M", "no_answer": "PT1H30M"}
    assert got["call_window"]["mon"] == [{"start": "08:00:00", "end": "12:00:00"}]
    assert got["rules"] == {"satisfaction_first_call_day": 3}
    async with app.state.sessionmaker() as s:
        actions = list(await s.scalars(sa.select(AuditLog.action).order_by(AuditLog.id)))
    assert actions[-2:] == ["campaign.create", "campaign.update"]


async def test_illegal_call_window_is_422_with_domain_message(admin: ApiClient) -> None:
    r = await admin.post(
        API,
        json={
            "name": "Domingo",
            "type": "custom",
            "call_window": {"sun": [{"start": "09:00", "end": "12:00"}]},
        },
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_call_window"
    assert "Ley 2300" in err["message"]
    r = await admin.post(
        API,
        json={
            "name": "Tarde",
            "type": "custom",
            "call_window": {"mon": [{"start": "06:00", "end": "20:00"}]},
        },
    )
    assert r.status_code == 422
    assert "outside the legal hours" in r.json()["error"]["message"]


async def test_bad_retry_rules_and_rules_are_422(admin: ApiClient) -> None:
    r = await admin.post(
        API, json={"name": "R", "type": "custom", "retry_rules": {"abandoned": "PT1H"}}
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_retry_policy"
    r = await admin.post(API, json={"name": "R", "type": "custom", "retry_rules": {"nope": 1}})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    r = await admin.post(API, json={"name": "R", "type": "custom", "rules": {"window": {}}})
    assert r.status_code == 422
    r = await admin.post(API, json={"name": "R", "type": "custom", "timezone": "Mars/Base"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_time_zone"


async def test_bad_input_errors(admin: ApiClient) -> None:
    r = await admin.post(API, content=b'{"name": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "malformed_json"
    r = await admin.post(API, json={"name": "X", "type": "custom", "max_attempts": "three"})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    assert "max_attempts" in err["message"]
    assert "three" not in r.text  # inputs are not echoed back
    r = await admin.post(API, json={"name": "X", "type": "custom", "abandon_target": 0.05})
    assert r.status_code == 422
    r = await admin.get(f"{API}/999999")
    assert r.status_code == 404
    assert r.json()["error"] == {
        "code": "not_found",
        "message": "campaign 999999 does not exist",
        "details": {},
    }
    r = await admin.get(f"{API}/not-a-number")
    assert r.status_code == 422
    r = await admin.get("/api/v1/nowhere")
    assert r.status_code == 404


async def test_duplicate_name_is_409(admin: ApiClient) -> None:
    assert (await admin.post(API, json={"name": "Dup", "type": "custom"})).status_code == 201
    r = await admin.post(API, json={"name": "Dup", "type": "custom"})
    assert r.status_code == 409


async def test_lifecycle(admin: ApiClient) -> None:
    cid = (await admin.post(API, json={"name": "Ciclo", "type": "agendamiento_citas"})).json()["id"]
    assert (await admin.post(f"{API}/{cid}/pause")).status_code == 409
    r = await admin.post(f"{API}/{cid}/start")
    assert r.status_code == 200 and r.json()["status"] == "running"
    r = await admin.post(f"{API}/{cid}/start")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "invalid_transition"
    assert (await admin.post(f"{API}/{cid}/pause")).json()["status"] == "paused"
    assert (await admin.post(f"{API}/{cid}/start")).json()["status"] == "running"
    assert (await admin.delete(f"{API}/{cid}")).status_code == 409
    assert (await admin.post(f"{API}/{cid}/stop")).json()["status"] == "finished"
    assert (await admin.post(f"{API}/{cid}/start")).status_code == 409
    assert (await admin.patch(f"{API}/{cid}", json={"script": "x"})).status_code == 409
    draft = (await admin.post(API, json={"name": "Borrador", "type": "custom"})).json()["id"]
    assert (await admin.delete(f"{API}/{draft}")).status_code == 204
    assert (await admin.get(f"{API}/{draft}")).status_code == 404


async def test_supervisor_sees_only_assigned_campaigns(
    app: FastAPI, clients: Callable[..., Awaitable[ApiClient]]
) -> None:
    mine = await make_campaign(app.state.sessionmaker, "Mía")
    other = await make_campaign(app.state.sessionmaker, "Ajena")
    sup = await clients("sup", Role.SUPERVISOR, campaigns=(mine,))
    listed = [c["id"] for c in (await sup.get(API)).json()]
    assert listed == [mine]
    assert (await sup.get(f"{API}/{other}")).status_code == 404
    assert (await sup.post(f"{API}/{other}/pause")).status_code == 404
    r = await sup.post(f"{API}/{mine}/pause")
    assert r.status_code == 200
    created = (await sup.post(API, json={"name": "Nueva sup", "type": "custom"})).json()
    assert created["id"] in [c["id"] for c in (await sup.get(API)).json()]
    async with app.state.sessionmaker() as s:
        actor = await s.scalar(sa.select(AuditLog.actor).where(AuditLog.action == "campaign.pause"))
    assert actor == f"user:{sup.user_id}"


async def test_dispositions_and_stats(app: FastAPI, admin: ApiClient) -> None:
    cid = await make_campaign(app.state.sessionmaker)
    codes = [d["code"] for d in (await admin.get(f"{API}/{cid}/dispositions")).json()]
    assert "cita_agendada" in codes and "queja_reclamo" in codes
    stats = (await admin.get(f"{API}/{cid}/stats")).json()
    assert stats["abandon_rate_today"] == 0.0
    assert stats["leads"]["due"] == 0


async def test_time_zone_change_and_back_reschedules_deferred_leads(
    app: FastAPI, admin: ApiClient, clock: FakeClock
) -> None:
    """Issue 14 defect 13: leads deferred by the old zone's window are re-evaluated."""
    sm = app.state.sessionmaker
    sunday = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)  # Sunday: closed in both zones
    clock.set(sunday)
    cid = (await engine_campaign(sm)).id
    lead_id = (await engine_lead(sm, cid, 1)).id
    store = EngineStore(sm)

    async def claim_and_schedule() -> datetime | None:
        camp = await store.campaign(cid)
        assert camp is not None
        ok, _ = await store.claim(lead_id, camp, "d1", clock.now(), timedelta(seconds=60))
        assert not ok
        async with sm() as s:
            when: datetime | None = (await s.get_one(Lead, lead_id)).next_attempt_at
            return when

    bogota_open = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # Monday 07:00 in Bogotá
    assert await claim_and_schedule() == bogota_open
    r = await admin.patch(f"{API}/{cid}", json={"timezone": "Asia/Tokyo"})
    assert r.status_code == 200, r.text
    async with sm() as s:
        assert (await s.get_one(Lead, lead_id)).next_attempt_at == sunday  # due: re-evaluated
    tokyo_open = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)  # Monday 07:00 in Tokyo
    assert await claim_and_schedule() == tokyo_open
    r = await admin.patch(f"{API}/{cid}", json={"timezone": "America/Bogota"})
    assert r.status_code == 200, r.text
    assert await claim_and_schedule() == bogota_open  # not left on Tokyo's morning
    # A retry delay (not a deferral) is kept across a zone change.
    later = sunday + timedelta(hours=3)
    async with sm.begin() as s:
        (await s.get_one(Lead, lead_id)).next_attempt_at = later
    await admin.patch(f"{API}/{cid}", json={"timezone": "Asia/Tokyo"})
    async with sm() as s:
        assert (await s.get_one(Lead, lead_id)).next_attempt_at == later


async def test_script_placeholders_are_listed_for_the_editor(admin: ApiClient) -> None:
    """The supervisor's script editor lists the placeholders the server accepts."""
    from dialer.domain.script import PLACEHOLDERS

    r = await admin.get(f"{API}/script-placeholders")
    assert r.status_code == 200, r.text
    assert r.json() == dict(PLACEHOLDERS) and "asesor" in r.json()
