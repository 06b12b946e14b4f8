"""``GET /clock``: the API's clock for the pages (one clock for every time on screen).

The pages show times in a campaign's time zone and run their timers on this clock: in the
demo the API runs on a scaled clock (``dialer.runtime.ScaledClock``, ``--speed``), so the
agent's wrap-up timer and the dashboard's event list follow the same simulated time as the
dialer and the charts.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import ClockDep, PrincipalDep, SettingsDep

router = APIRouter(tags=["clock"])

#: City names with their Spanish spelling, for the time-zone label ("19:00 (Bogotá)").
_CITY_ES = {
    "Bogota": "Bogotá",
    "Mexico_City": "Ciudad de México",
    "Panama": "Panamá",
    "Sao_Paulo": "São Paulo",
    "New_York": "Nueva York",
}


def zone_label(tz: str) -> str:
    """A short Spanish label for a time zone: ``America/Bogota`` -> ``Bogotá``."""
    city = tz.rsplit("/", 1)[-1]
    return _CITY_ES.get(city, city.replace("_", " "))


class ClockOut(BaseModel):
    now: datetime
    speed: float
    timezone: str
    timezone_label: str


@router.get("/clock", summary="The API's clock: now, its speed (demo) and default time zone")
async def api_clock(_: PrincipalDep, clock: ClockDep, settings: SettingsDep) -> ClockOut:
    speed = getattr(clock, "speed", 1.0)
    return ClockOut(
        now=clock.now(),
        speed=float(speed) if isinstance(speed, int | float) else 1.0,
        timezone=settings.timezone,
        timezone_label=zone_label(settings.timezone),
    )
