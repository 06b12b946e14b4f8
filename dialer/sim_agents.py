"""Simulated agents for the demo and end-to-end tests.

They use the same paths as real agents: log in (the dialer calls their simulated softphone,
which auto-answers into the nailed-up room), go ready, and after each call submit a disposition
through :meth:`dialer.store.EngineStore.record_disposition` before going ready again. Seeded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dialer.domain.dispositions import DispositionCode, validate_disposition
from dialer.domain.outcomes import AgentState, CampaignType
from dialer.engine import Engine
from dialer.logging import get_logger
from dialer.store import DispositionConflict

log = get_logger("marcador.sim_agents")

#: Disposition mix of a typical proactive-contact day (weights).
DEFAULT_MIX: dict[DispositionCode, float] = {
    DispositionCode.CITA_AGENDADA: 0.35,
    DispositionCode.NO_INTERESADO: 0.25,
    DispositionCode.VOLVER_A_LLAMAR: 0.12,
    DispositionCode.SERVICIO_EN_OTRO_TALLER: 0.12,
    DispositionCode.NUMERO_EQUIVOCADO: 0.06,
    DispositionCode.QUEJA_RECLAMO: 0.05,
    DispositionCode.NO_VOLVER_A_LLAMAR: 0.05,
}
SATISFACTION_MIX: dict[DispositionCode, float] = {
    DispositionCode.SATISFECHO: 0.7,
    DispositionCode.EXPECTATIVAS_NO_CUMPLIDAS: 0.2,
    DispositionCode.QUEJA_RECLAMO: 0.05,
    DispositionCode.VOLVER_A_LLAMAR: 0.05,
}


@dataclass(slots=True)
class SimAgent:
    user_id: int
    extension: str
    wrap_seconds: float = 0.0
    calls: int = 0


@dataclass(slots=True)
class SimulatedAgents:
    engine: Engine
    campaign_id: int
    campaign_type: CampaignType
    agents: list[SimAgent]
    seed: int = 7
    wrap_range: tuple[float, float] = (5.0, 20.0)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    async def login_all(self) -> None:
        for a in self.agents:
            await self.engine.agent_login(a.user_id, a.extension, self.campaign_id)

    def _details(self, code: DispositionCode, now: datetime) -> dict[str, object]:
        if code is DispositionCode.CITA_AGENDADA:
            return {
                "appointment_at": now + timedelta(days=self.rng.randint(1, 6), hours=2),
                "branch": self.rng.choice(["Tunja", "Duitama"]),
                "service": self.rng.choice(
                    ["Mantenimiento 10.000 km", "Alineación y balanceo", "Revisión de frenos"]
                ),
            }
        if code is DispositionCode.NO_INTERESADO:
            return {"reason": self.rng.choice(["precio", "tiempo", "distancia", "no_requiere"])}
        if code is DispositionCode.VOLVER_A_LLAMAR:
            return {"callback_at": now + timedelta(hours=3), "callback_scope": "anyone"}
        if code is DispositionCode.QUEJA_RECLAMO:
            return {"description": "Cliente inconforme con el tiempo de entrega del vehículo"}
        if code is DispositionCode.EXPECTATIVAS_NO_CUMPLIDAS:
            return {"opportunity_areas": (self.rng.choice(["tiempo_entrega", "precio"]),)}
        return {}

    def _pick(self) -> DispositionCode:
        mix = SATISFACTION_MIX if self.campaign_type is CampaignType.SATISFACCION else DEFAULT_MIX
        codes = list(mix)
        return self.rng.choices(codes, weights=[mix[c] for c in codes])[0]

    async def step(self) -> None:
        """Act for every agent whose state asks for it (call every tick)."""
        now = self.engine.clock.now()
        for a in self.agents:
            session = self.engine.agents.get(a.user_id)
            if session is None:
                continue
            if session.state is AgentState.PAUSED and session.room_joined:
                await self.engine.agent_command(a.user_id, "ready")
            elif session.state is AgentState.WRAP_UP:
                if a.wrap_seconds <= 0:
                    a.wrap_seconds = self.rng.uniform(*self.wrap_range)
                if session.time_in_state(now).total_seconds() < a.wrap_seconds:
                    continue
                await self._disposition(a, session.call_attempt, now)

    async def _disposition(self, a: SimAgent, attempt: str | None, now: datetime) -> None:
        a.wrap_seconds = 0.0
        a.calls += 1
        if attempt:
            code = self._pick()
            record = validate_disposition(
                self.campaign_type, code.value, self._details(code, now), now
            )
            try:
                await self.engine.store.record_disposition(attempt, record, now, a.user_id)
            except DispositionConflict as exc:
                log.info("sim_disposition_skipped", code=exc.code)
        await self.engine.agent_command(a.user_id, "dispositioned")
