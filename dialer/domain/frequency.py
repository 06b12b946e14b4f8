"""Contact frequency caps (Ley 2300 de 2023; design.md §6). Shared by calls and WhatsApp.

After a **direct contact** (the person was actually reached), a person may receive:

* at most ``max_contacts_per_day`` contacts per local calendar day (default 1), and
* contacts through at most ``max_channels_per_week`` channels per week (default 1).

Both are counted **per person** (national id, or phone when there is no id) across every
campaign and channel: the caller gathers the person's history, this module only judges it.

Interpretation written down here (see also docs):

* "Day" is the local calendar day in the person's zone. Once a direct contact happened on a
  day, the contacts of that day from that direct contact on are counted (it included).
* "Week" is, by default, a rolling 7 x 24 h window (``WeekMode.ROLLING``), which is never less
  strict than the calendar week; ``WeekMode.CALENDAR`` uses the Monday-Sunday week instead.
  Within it, the channels used from the first direct contact on are counted.
* Contacts the customer asked for (a callback they requested, a reply to their message) are
  exempt when ``exempt_customer_requested`` is true (the default; set it false to be stricter).
* Events later than ``now`` are ignored: a scheduled contact is not a contact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from dialer.domain.outcomes import Channel
from dialer.domain.windows import DEFAULT_TZ, TzLike, require_aware, resolve_tz

__all__ = [
    "ContactEvent",
    "FrequencyPolicy",
    "FrequencyRule",
    "FrequencyVerdict",
    "WeekMode",
    "check_frequency",
]

_CHANNEL_ES = {
    Channel.VOICE: "llamada",
    Channel.WHATSAPP: "WhatsApp",
    Channel.SMS: "SMS",
    Channel.EMAIL: "correo",
}


@dataclass(frozen=True, slots=True)
class ContactEvent:
    """One contact (or contact attempt) made to a person, on any campaign."""

    at: datetime
    channel: Channel
    direct: bool  # the person was actually reached (answered call, replied message...)
    campaign_id: str | None = None


class WeekMode(StrEnum):
    ROLLING = "rolling"  # the last 7 x 24 h
    CALENDAR = "calendar"  # Monday 00:00 to Sunday 24:00, local


class FrequencyRule(StrEnum):
    DAILY_LIMIT = "daily_limit"
    CHANNEL_WEEK = "channel_per_week"


class FrequencyPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # The law's caps; a campaign may not loosen them (``le=1``). Kept as fields so the
    # explanation can quote them and a future, stricter reading can reuse the machinery.
    max_contacts_per_day: int = Field(default=1, ge=1, le=1)
    max_channels_per_week: int = Field(default=1, ge=1, le=1)
    week: WeekMode = WeekMode.ROLLING
    exempt_customer_requested: bool = True


@dataclass(frozen=True, slots=True)
class FrequencyVerdict:
    allowed: bool
    next_allowed_at: datetime  # == now (UTC) when allowed
    rule: FrequencyRule | None  # the rule that blocks now
    reason_es: str
    reason_en: str


def _local_midnight(at: datetime, tz: TzLike, days: int = 0) -> datetime:
    zone = resolve_tz(tz)
    day = at.astimezone(zone).date() + timedelta(days=days)
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _day_blocked(
    events: Sequence[ContactEvent], t: datetime, tz: TzLike, policy: FrequencyPolicy
) -> bool:
    day_start = _local_midnight(t, tz)
    todays = [e for e in events if day_start <= e.at <= t]
    first_direct = next((e.at for e in todays if e.direct), None)
    if first_direct is None:
        return False
    counted = sum(1 for e in todays if e.at >= first_direct)
    return counted >= policy.max_contacts_per_day


def _week_start(t: datetime, tz: TzLike, policy: FrequencyPolicy) -> datetime:
    if policy.week is WeekMode.ROLLING:
        return t - timedelta(days=7)
    local = t.astimezone(resolve_tz(tz))
    return _local_midnight(t, tz, days=-local.weekday())


def _week_blocked(
    events: Sequence[ContactEvent],
    channel: Channel,
    t: datetime,
    tz: TzLike,
    policy: FrequencyPolicy,
) -> bool:
    start = _week_start(t, tz, policy)
    in_week = [
        e
        for e in events
        if (start < e.at <= t if policy.week is WeekMode.ROLLING else start <= e.at <= t)
    ]
    first_direct = next((e.at for e in in_week if e.direct), None)
    if first_direct is None:
        return False
    channels = {e.channel for e in in_week if e.at >= first_direct} | {channel}
    return len(channels) > policy.max_channels_per_week


def _week_candidates(
    events: Sequence[ContactEvent], t: datetime, tz: TzLike, policy: FrequencyPolicy
) -> Iterable[datetime]:
    if policy.week is WeekMode.CALENDAR:
        return [_week_start(t, tz, policy) + timedelta(days=7)]
    # The rolling window changes only when an event drops out of it.
    return [e.at + timedelta(days=7) for e in events if e.at + timedelta(days=7) > t]


def check_frequency(
    history: Iterable[ContactEvent],
    channel: Channel,
    now: datetime,
    tz: TzLike = DEFAULT_TZ,
    *,
    policy: FrequencyPolicy | None = None,
    customer_requested: bool = False,
) -> FrequencyVerdict:
    """May the person be contacted on ``channel`` at ``now``? If not, from when?

    ``history`` is the person's contact history across every campaign and channel.
    """
    pol = policy if policy is not None else FrequencyPolicy()
    utc_now = require_aware(now).astimezone(UTC)
    resolve_tz(tz)  # fail early on a bad zone
    if customer_requested and pol.exempt_customer_requested:
        return FrequencyVerdict(
            allowed=True,
            next_allowed_at=utc_now,
            rule=None,
            reason_es="Contacto solicitado por el cliente: exento del límite de frecuencia.",
            reason_en="Contact requested by the customer: exempt from the frequency caps.",
        )
    events = sorted(
        (
            ContactEvent(require_aware(e.at, "contact.at").astimezone(UTC), e.channel, e.direct)
            for e in history
        ),
        key=lambda e: e.at,
    )
    events = [e for e in events if e.at <= utc_now]

    first_rule: FrequencyRule | None = None
    t = utc_now
    for _ in range(64):  # each step moves t forward past an event or a day; bounded
        if _day_blocked(events, t, tz, pol):
            first_rule = first_rule or FrequencyRule.DAILY_LIMIT
            t = _local_midnight(t, tz, days=1)
            continue
        if _week_blocked(events, channel, t, tz, pol):
            first_rule = first_rule or FrequencyRule.CHANNEL_WEEK
            t = min(c for c in _week_candidates(events, t, tz, pol) if c > t)
            continue
        break

    if first_rule is None:
        return FrequencyVerdict(
            allowed=True,
            next_allowed_at=utc_now,
            rule=None,
            reason_es="Dentro de los límites de frecuencia de la Ley 2300.",
            reason_en="Within the Ley 2300 contact frequency caps.",
        )
    local = t.astimezone(resolve_tz(tz))
    when = f"{local:%Y-%m-%d %H:%M} ({local.tzname()})"
    if first_rule is FrequencyRule.DAILY_LIMIT:
        es = (
            f"Ya hubo contacto directo hoy: máximo {pol.max_contacts_per_day} contacto(s) "
            f"por día (Ley 2300). Permitido desde {when}."
        )
        en = (
            f"Already reached today: at most {pol.max_contacts_per_day} contact(s) a day "
            f"(Ley 2300). Allowed from {when}."
        )
    else:
        es = (
            f"Contacto directo esta semana por otro canal: máximo {pol.max_channels_per_week} "
            f"canal(es) por semana; {_CHANNEL_ES[channel]} permitido desde {when} (Ley 2300)."
        )
        en = (
            f"Reached this week through another channel: at most {pol.max_channels_per_week} "
            f"channel(s) a week; {channel.value} allowed from {when} (Ley 2300)."
        )
    return FrequencyVerdict(
        allowed=False, next_allowed_at=t, rule=first_rule, reason_es=es, reason_en=en
    )
