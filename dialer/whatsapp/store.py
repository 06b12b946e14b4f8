"""SQL side of the WhatsApp fallback: claims, results, webhooks, holds, thread and funnel.

The ``whatsapp_messages`` row is the truth. Every transition of an outbound row is a
*conditional* UPDATE on its current status (and, while sending, on the claiming worker and
attempt number), so two workers, a webhook and a sweep can race without a message ever being
sent twice or a status moving backwards:

    queued/scheduled --claim--> sending --accepted--> sent -> delivered -> read
                \\                  \\--error--> scheduled (retry / hold) | failed
                 \\--rules--> scheduled (not yet) | skipped (never: no consent, DNC...)

A dead worker's ``sending`` row is first reconciled by the status webhooks (every send carries
``biz_opaque_callback_data = "marcador:<message id>:<attempt>"``, which Meta echoes in each
status), and only requeued once nothing came back within the reconcile grace period.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from dialer.db.models import (
    AuditLog,
    Campaign,
    Consent,
    ContactLog,
    Lead,
    LeadEvent,
    Phone,
    WhatsAppHold,
    WhatsAppMessage,
    WhatsAppStatus,
    WhatsAppStatusEvent,
)
from dialer.domain.eligibility import Readiness, evaluate_readiness
from dialer.domain.outcomes import Channel, LeadStatus
from dialer.store import EngineStore, campaign_rules, person_key, revoke_consents
from dialer.whatsapp.client import ImageRef, clean_param
from dialer.whatsapp.policy import Action, Decision, ErrorInfo, Outcome, RetryConfig, decide

OPEN = (WhatsAppStatus.QUEUED, WhatsAppStatus.SCHEDULED)
ACTOR = "whatsapp-worker"
OPAQUE_PREFIX = "marcador"
HELD_PREFIX = "hold:"  # error_detail of a message waiting for a hold to be released

#: Status order for webhooks: a status never moves backwards. ``failed`` beats ``sent`` but
#: not ``delivered``/``read`` (those prove the message arrived).
RANK: dict[WhatsAppStatus, int] = {
    WhatsAppStatus.QUEUED: 0,
    WhatsAppStatus.SCHEDULED: 0,
    WhatsAppStatus.SENDING: 0,
    WhatsAppStatus.SENT: 1,
    WhatsAppStatus.FAILED: 2,
    WhatsAppStatus.DELIVERED: 3,
    WhatsAppStatus.READ: 4,
}
WEBHOOK_STATUSES = {
    "sent": WhatsAppStatus.SENT,
    "delivered": WhatsAppStatus.DELIVERED,
    "read": WhatsAppStatus.READ,
    "failed": WhatsAppStatus.FAILED,
}

CALLBACK_PRIORITY_BUMP = 10


def opaque_for(message_id: int, attempt: int) -> str:
    return f"{OPAQUE_PREFIX}:{message_id}:{attempt}"


def parse_opaque(value: object) -> tuple[int, int] | None:
    if not isinstance(value, str):
        return None
    parts = value.split(":")
    if len(parts) != 3 or parts[0] != OPAQUE_PREFIX:
        return None
    try:
        return int(parts[1]), int(parts[2])
    except ValueError:
        return None


# --------------------------------------------------------------------------- opt-out words

_OPT_OUT_EXACT = frozenset(
    {
        "stop",
        "baja",
        "cancelar",
        "no mas",
        "parar",
        "detener",
        "alto",
        "basta",
        "salir",
        "unsubscribe",
        "desuscribir",
        "desuscribirme",
        "no molestar",
        "no molestar mas",
        "detener promociones",
        "stop promotions",
        "no me interesa recibir mensajes",
    }
)
_OPT_OUT_PHRASES = (
    "no mas mensajes",
    "no me escriban",
    "no me envien",
    "no me manden",
    "no quiero recibir",
    "no quiero mas mensajes",
    "dejen de escribir",
    "dejen de enviar",
    "darme de baja",
    "dar de baja",
    "eliminen mi numero",
    "borren mi numero",
)
_PUNCT = re.compile(r"[^\w\s]")


def normalise_text(text: str) -> str:
    """Lower case, accents and punctuation/emoji removed, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_PUNCT.sub(" ", plain).split())


def is_opt_out(text: str) -> bool:
    """``STOP``, ``no más``, ``baja``, ``cancelar`` and similar (short messages only).

    Exact keywords, a keyword followed by at most two words ("baja por favor"), or an
    unambiguous phrase anywhere ("por favor no me escriban más").
    """
    norm = normalise_text(text)
    if not norm:
        return False
    if norm in _OPT_OUT_EXACT:
        return True
    words = norm.split()
    for kw in _OPT_OUT_EXACT:
        kw_words = kw.split()
        if words[: len(kw_words)] == kw_words and len(words) <= len(kw_words) + 2:
            return True
    return any(p in norm for p in _OPT_OUT_PHRASES)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class SendJob:
    """A claimed message: everything needed for one API call."""

    message_id: int
    attempt: int
    lead_id: int | None
    campaign_id: int | None
    phone: str
    template: str
    language: str
    image: str  # link, media id or local file (resolved by the worker)
    body_params: tuple[str, ...]

    @property
    def opaque(self) -> str:
        return opaque_for(self.message_id, self.attempt)


@dataclass(frozen=True, slots=True)
class Prepared:
    """The verdict of :meth:`WhatsAppStore.prepare`."""

    kind: str  # claimed, deferred, skipped, held, gone
    message_id: int
    job: SendJob | None = None
    until: datetime | None = None
    reason: str = ""
    alert: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """What a result/webhook did, for events and alerts."""

    message_id: int
    lead_id: int | None
    campaign_id: int | None
    status: str
    changed: bool = True
    alert: dict[str, Any] | None = None
    wamid: str | None = None


@dataclass(frozen=True, slots=True)
class InboundResult:
    message_id: int | None  # the stored inbound row (None: duplicate delivery)
    reply_to: int | None
    lead_id: int | None
    campaign_id: int | None
    opt_out: bool
    callback: bool
    duplicate: bool = False
    text: str = ""
    at: datetime | None = None


@dataclass(slots=True)
class Funnel:
    queued: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    replied: int = 0
    failed: int = 0
    skipped: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, int]:
        return {
            "queued": self.queued,
            "sent": self.sent,
            "delivered": self.delivered,
            "read": self.read,
            "replied": self.replied,
            "failed": self.failed,
            "skipped": self.skipped,
        }


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _status_of(value: Any) -> WhatsAppStatus:
    return value if isinstance(value, WhatsAppStatus) else WhatsAppStatus(str(value))


def body_params(payload: dict[str, Any], campaign: Campaign) -> tuple[str, ...]:
    """Positional body parameters {{1}}..{{4}}: name, vehicle, branch, dealer phones."""
    return (
        clean_param(str(payload.get("customer_name") or ""), "cliente"),
        clean_param(str(payload.get("vehicle") or ""), "su vehículo"),
        clean_param(str(payload.get("branch") or ""), "nuestra sede"),
        clean_param(
            campaign.dealer_phones or str(payload.get("dealer_phones") or ""),
            "nuestra línea de atención",
        ),
    )


def image_ref(value: str) -> ImageRef | None:
    """A campaign image setting as a header: http(s) link, numeric media id; else None."""
    v = value.strip()
    if not v:
        return None
    if v.startswith(("https://", "http://")):
        return ImageRef(link=v)
    if v.isdigit():
        return ImageRef(media_id=v)
    return None


class WhatsAppStore:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], retry: RetryConfig | None = None
    ) -> None:
        self.sm = sessionmaker
        self.retry = retry or RetryConfig()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _event(
        s: AsyncSession,
        message_id: int,
        status: str,
        at: datetime,
        raw: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        data = {**(raw or {}), **extra}
        s.add(WhatsAppStatusEvent(message_id=message_id, status=status[:20], at=at, raw=data))

    @staticmethod
    async def _transition(
        s: AsyncSession,
        message_id: int,
        from_: Iterable[WhatsAppStatus],
        values: dict[str, Any],
        *extra: Any,
    ) -> bool:
        res = await s.execute(
            sa.update(WhatsAppMessage)
            .where(
                WhatsAppMessage.id == message_id, WhatsAppMessage.status.in_(list(from_)), *extra
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(res) == 1

    @staticmethod
    async def active_holds(s: AsyncSession, campaign_id: int | None) -> list[WhatsAppHold]:
        q = sa.select(WhatsAppHold).where(
            WhatsAppHold.released_at.is_(None),
            sa.or_(
                WhatsAppHold.scope == "account",
                sa.and_(WhatsAppHold.scope == "campaign", WhatsAppHold.campaign_id == campaign_id),
            ),
        )
        return list(await s.scalars(q))

    async def _hold(
        self,
        s: AsyncSession,
        scope: str,
        campaign_id: int | None,
        code: int | None,
        reason: str,
        now: datetime,
    ) -> dict[str, Any]:
        """Create a hold unless the same one is active; returns the alert to publish."""
        existing = await s.scalar(
            sa.select(WhatsAppHold.id).where(
                WhatsAppHold.released_at.is_(None),
                WhatsAppHold.scope == scope,
                WhatsAppHold.campaign_id == campaign_id
                if campaign_id is not None
                else WhatsAppHold.campaign_id.is_(None),
            )
        )
        alert = {
            "scope": scope,
            "campaign_id": campaign_id,
            "code": code,
            "reason": reason,
            "new": existing is None,
        }
        if existing is None:
            s.add(
                WhatsAppHold(
                    scope=scope, campaign_id=campaign_id, code=code, reason=reason, created_at=now
                )
            )
            s.add(
                AuditLog(
                    at=now,
                    actor=ACTOR,
                    action=f"whatsapp.hold.{scope}",
                    target_type=scope,
                    target_id=str(campaign_id or ""),
                    detail={"code": code, "reason": reason},
                )
            )
        return alert

    # ------------------------------------------------------------------ claim
    async def prepare(
        self, message_id: int, worker: str, now: datetime, lease: timedelta
    ) -> Prepared:
        """Check the contact rules and, when the message may go now, claim it (SENDING)."""
        async with self.sm() as s, s.begin():
            msg = await s.get(WhatsAppMessage, message_id)
            if (
                msg is None
                or msg.direction != "out"
                or _status_of(msg.status) not in OPEN
                or msg.wamid is not None
                or (msg.next_attempt_at is not None and msg.next_attempt_at > now)
            ):
                return Prepared("gone", message_id)
            status_now = [_status_of(msg.status)]
            holds = await self.active_holds(s, msg.campaign_id)
            if holds:
                until = now + timedelta(minutes=15)
                await self._transition(
                    s,
                    message_id,
                    status_now,
                    {
                        "status": WhatsAppStatus.SCHEDULED,
                        "next_attempt_at": until,
                        "error_detail": f"{HELD_PREFIX}{holds[0].scope} {holds[0].reason}"[:300],
                    },
                )
                if not (msg.error_detail or "").startswith(HELD_PREFIX):  # once, not every recheck
                    self._event(s, message_id, "held", now, hold=holds[0].scope, code=holds[0].code)
                return Prepared("held", message_id, until=until, reason=holds[0].reason)
            lead = (
                await s.get(Lead, msg.lead_id, options=[selectinload(Lead.phones)])
                if msg.lead_id is not None
                else None
            )
            campaign = await s.get(Campaign, msg.campaign_id) if msg.campaign_id else None
            if lead is None or campaign is None:
                return await self._skip(s, msg, status_now, "lead_or_campaign_missing", now)
            if not campaign.whatsapp_enabled:
                return await self._skip(s, msg, status_now, "campaign_whatsapp_disabled", now)
            if not campaign.whatsapp_template:
                alert = await self._hold(
                    s, "campaign", campaign.id, None, "La campaña no tiene plantilla", now
                )
                until = now + timedelta(minutes=15)
                await self._transition(
                    s,
                    message_id,
                    status_now,
                    {
                        "status": WhatsAppStatus.SCHEDULED,
                        "next_attempt_at": until,
                        "error_detail": f"{HELD_PREFIX}campaign no_template",
                    },
                )
                self._event(s, message_id, "held", now, reason="no_template")
                return Prepared("held", message_id, until=until, reason="no_template", alert=alert)
            not_on_wa = await s.scalar(
                sa.select(sa.func.count())
                .select_from(Phone)
                .where(Phone.e164 == msg.phone, Phone.whatsapp_capable.is_(False))
            )
            if not_on_wa:
                return await self._skip(s, msg, status_now, "not_on_whatsapp", now)
            readiness = await self._readiness(s, lead, campaign, now)
            phone_row = next((p for p in lead.phones if p.e164 == msg.phone), None)
            if readiness.ready and (
                phone_row is not None and str(phone_row.id) not in readiness.dialable_phone_ids
            ):
                return await self._skip(s, msg, status_now, "phone_excluded", now)
            if not readiness.ready:
                failed = [r.code.value for r in readiness.failed]
                if readiness.ready_at is None:
                    return await self._skip(s, msg, status_now, ",".join(failed), now)
                until = readiness.ready_at
                ok = await self._transition(
                    s,
                    message_id,
                    status_now,
                    {
                        "status": WhatsAppStatus.SCHEDULED,
                        "next_attempt_at": until,
                        "error_detail": readiness.summary_es()[:300],
                    },
                )
                if not ok:
                    return Prepared("gone", message_id)
                self._event(s, message_id, "scheduled", now, rules=failed, until=until.isoformat())
                return Prepared("deferred", message_id, until=until, reason=",".join(failed))
            attempt = msg.send_attempts + 1
            ok = await self._transition(
                s,
                message_id,
                status_now,
                {
                    "status": WhatsAppStatus.SENDING,
                    "claimed_by": worker,
                    "claimed_until": now + lease,
                    "send_attempts": attempt,
                    "next_attempt_at": None,
                },
                WhatsAppMessage.wamid.is_(None),
                WhatsAppMessage.send_attempts == msg.send_attempts,
            )
            if not ok:
                return Prepared("gone", message_id)
            self._event(s, message_id, "sending", now, attempt=attempt, worker=worker)
            payload = dict(msg.payload or {})
            job = SendJob(
                message_id=message_id,
                attempt=attempt,
                lead_id=lead.id,
                campaign_id=campaign.id,
                phone=msg.phone,
                template=campaign.whatsapp_template,
                language=campaign.whatsapp_language or "es_CO",
                image=campaign.whatsapp_image or str(payload.get("image") or ""),
                body_params=body_params(payload, campaign),
            )
            return Prepared("claimed", message_id, job=job)

    async def _readiness(
        self, s: AsyncSession, lead: Lead, campaign: Campaign, now: datetime
    ) -> Readiness:
        # The engine's snapshot: consents, DNC/RNE, the person's contact history across every
        # campaign and channel, complaints. Messages do not ring: no ring time before close.
        snap = await EngineStore(self.sm)._snapshot(s, lead, campaign, now)
        rules = campaign_rules(campaign).model_copy(update={"ring_time": timedelta(0)})
        return evaluate_readiness(snap, rules, now, channel=Channel.WHATSAPP)

    async def _skip(
        self,
        s: AsyncSession,
        msg: WhatsAppMessage,
        status_now: Sequence[WhatsAppStatus],
        reason: str,
        now: datetime,
    ) -> Prepared:
        ok = await self._transition(
            s,
            msg.id,
            status_now,
            {"status": WhatsAppStatus.SKIPPED, "error_detail": reason[:300]},
        )
        if not ok:
            return Prepared("gone", msg.id)
        self._event(s, msg.id, "skipped", now, reason=reason)
        if msg.lead_id is not None:
            s.add(
                LeadEvent(
                    lead_id=msg.lead_id,
                    at=now,
                    kind="whatsapp_skipped",
                    reason=reason[:80],
                    detail={"message_id": msg.id},
                )
            )
        return Prepared("skipped", msg.id, reason=reason)

    async def defer(self, message_id: int, until: datetime, reason: str, now: datetime) -> bool:
        """Push an open message to ``until`` (e.g. the worker is throttled)."""
        async with self.sm() as s, s.begin():
            ok = await self._transition(
                s,
                message_id,
                OPEN,
                {"status": WhatsAppStatus.SCHEDULED, "next_attempt_at": until},
                WhatsAppMessage.direction == "out",
            )
            if ok:
                self._event(s, message_id, "scheduled", now, reason=reason)
            return ok

    # ------------------------------------------------------------------ results
    async def record_accepted(
        self, job: SendJob, worker: str, wamid: str, wa_id: str, now: datetime
    ) -> Applied:
        async with self.sm() as s, s.begin():
            ok = await self._transition(
                s,
                job.message_id,
                [WhatsAppStatus.SENDING],
                {
                    "status": WhatsAppStatus.SENT,
                    "wamid": wamid,
                    "claimed_by": None,
                    "claimed_until": None,
                    "error_code": None,
                    "error_detail": None,
                },
                WhatsAppMessage.claimed_by == worker,
                WhatsAppMessage.send_attempts == job.attempt,
            )
            self._event(
                s, job.message_id, "accepted", now, attempt=job.attempt, wamid=wamid, wa_id=wa_id
            )
            if ok:
                await self._log_contact(s, job.lead_id, job.campaign_id, wamid, now)
            return Applied(
                job.message_id, job.lead_id, job.campaign_id, "sent", changed=ok, wamid=wamid
            )

    async def _log_contact(
        self,
        s: AsyncSession,
        lead_id: int | None,
        campaign_id: int | None,
        ref: str,
        at: datetime,
        direct: bool = False,
    ) -> None:
        if lead_id is None:
            return
        lead = await s.get(Lead, lead_id, options=[selectinload(Lead.phones)])
        if lead is None:
            return
        s.add(
            ContactLog(
                person_key=person_key(lead),
                channel=Channel.WHATSAPP,
                at=at,
                direct_contact=direct,
                campaign_id=campaign_id,
                ref=ref[:64],
            )
        )

    async def record_failure(
        self, job: SendJob, worker: str, error: ErrorInfo, now: datetime, jitter: float = 0.0
    ) -> tuple[Decision, Applied]:
        decision = decide(error, attempt=job.attempt, now=now, config=self.retry, jitter=jitter)
        async with self.sm() as s, s.begin():
            msg = await s.get(WhatsAppMessage, job.message_id, with_for_update=True)
            assert msg is not None
            self._event(
                s,
                job.message_id,
                "send_error",
                now,
                attempt=job.attempt,
                kind=error.kind,
                code=error.code,
                http_status=error.http_status,
                action=decision.action.value,
                detail=error.detail,
            )
            if not (
                _status_of(msg.status) is WhatsAppStatus.SENDING
                and msg.claimed_by == worker
                and msg.send_attempts == job.attempt
            ):
                return decision, Applied(
                    job.message_id, job.lead_id, job.campaign_id, str(msg.status), changed=False
                )
            applied = await self._apply_decision(s, msg, decision, error, now)
            return decision, applied

    async def _apply_decision(
        self,
        s: AsyncSession,
        msg: WhatsAppMessage,
        decision: Decision,
        error: ErrorInfo,
        now: datetime,
    ) -> Applied:
        """Apply the policy to the row (already checked to be the current attempt)."""
        common: dict[str, Any] = {
            "claimed_by": None,
            "claimed_until": None,
            "error_code": error.code,
            "error_detail": f"{decision.reason_es} {error.detail}".strip()[:300],
        }
        alert: dict[str, Any] | None = None
        if decision.outcome is Outcome.FAILED:
            msg.status = WhatsAppStatus.FAILED
            if decision.action is Action.MARK_NOT_ON_WHATSAPP:
                await s.execute(
                    sa.update(Phone)
                    .where(Phone.e164 == msg.phone)
                    .values(whatsapp_capable=False)
                    .execution_options(synchronize_session=False)
                )
            elif decision.action is Action.REVOKE_MARKETING_CONSENT and msg.lead_id is not None:
                lead = await s.get(Lead, msg.lead_id, options=[selectinload(Lead.phones)])
                if lead is not None:
                    await revoke_whatsapp_marketing(s, person_key(lead), "meta_131050", now)
        else:
            msg.status = WhatsAppStatus.SCHEDULED
            msg.next_attempt_at = decision.retry_at
            msg.wamid = None  # a new attempt gets a new wamid; the old one is in the history
            if decision.outcome is Outcome.HELD:
                scope = "account" if decision.action is Action.HALT_ALL else "campaign"
                common["error_detail"] = f"{HELD_PREFIX}{scope} {common['error_detail']}"[:300]
                alert = await self._hold(
                    s,
                    scope,
                    msg.campaign_id if scope == "campaign" else None,
                    error.code,
                    decision.reason_es,
                    now,
                )
        for key, value in common.items():
            setattr(msg, key, value)
        if msg.lead_id is not None and decision.outcome is Outcome.FAILED:
            s.add(
                LeadEvent(
                    lead_id=msg.lead_id,
                    at=now,
                    kind="whatsapp_failed",
                    reason=decision.action.value,
                    detail={"message_id": msg.id, "code": error.code},
                )
            )
        return Applied(msg.id, msg.lead_id, msg.campaign_id, msg.status.value, alert=alert)

    # ------------------------------------------------------------------ sweep
    async def due_ids(self, now: datetime, queued_grace: timedelta, limit: int = 100) -> list[int]:
        """Scheduled messages that are due, and queued ones whose stream entry may be lost."""
        async with self.sm() as s:
            rows = await s.scalars(
                sa.select(WhatsAppMessage.id)
                .where(
                    WhatsAppMessage.direction == "out",
                    sa.or_(
                        sa.and_(
                            WhatsAppMessage.status == WhatsAppStatus.SCHEDULED,
                            WhatsAppMessage.next_attempt_at <= now,
                        ),
                        sa.and_(
                            WhatsAppMessage.status == WhatsAppStatus.QUEUED,
                            WhatsAppMessage.created_at <= now - queued_grace,
                        ),
                    ),
                )
                .order_by(WhatsAppMessage.next_attempt_at, WhatsAppMessage.id)
                .limit(limit)
            )
            return list(rows)

    async def requeue_stale(self, now: datetime, grace: timedelta) -> list[int]:
        """SENDING rows of a dead worker: no webhook reconciled them within ``grace`` after
        their lease, so Meta never accepted them. Back to SCHEDULED (due now)."""
        async with self.sm() as s, s.begin():
            stale = list(
                await s.scalars(
                    sa.select(WhatsAppMessage.id).where(
                        WhatsAppMessage.status == WhatsAppStatus.SENDING,
                        WhatsAppMessage.claimed_until < now - grace,
                    )
                )
            )
            done = []
            for mid in stale:
                ok = await self._transition(
                    s,
                    mid,
                    [WhatsAppStatus.SENDING],
                    {
                        "status": WhatsAppStatus.SCHEDULED,
                        "next_attempt_at": now,
                        "claimed_by": None,
                        "claimed_until": None,
                    },
                    WhatsAppMessage.claimed_until < now - grace,
                    WhatsAppMessage.wamid.is_(None),
                )
                if ok:
                    self._event(s, mid, "requeued", now, reason="worker_lost_no_webhook")
                    done.append(mid)
            return done

    # ------------------------------------------------------------------ webhooks: statuses
    async def apply_status(self, st: dict[str, Any], now: datetime) -> Applied | None:
        """One entry of ``value.statuses``. Idempotent; never moves a status backwards."""
        wamid = st.get("id")
        new = WEBHOOK_STATUSES.get(str(st.get("status", "")))
        if not isinstance(wamid, str) or new is None:
            return None
        at = _ts(st.get("timestamp"), now)
        opaque = parse_opaque(st.get("biz_opaque_callback_data"))
        async with self.sm() as s, s.begin():
            msg = await s.scalar(
                sa.select(WhatsAppMessage).where(WhatsAppMessage.wamid == wamid).with_for_update()
            )
            current_attempt = True
            if msg is None and opaque is not None:
                msg = await s.scalar(
                    sa.select(WhatsAppMessage)
                    .where(WhatsAppMessage.id == opaque[0])
                    .with_for_update()
                )
                if msg is not None:
                    current_attempt = msg.send_attempts == opaque[1] and msg.wamid is None
            if msg is None or msg.direction != "out":
                return None
            if opaque is not None and opaque[0] == msg.id and opaque[1] != msg.send_attempts:
                current_attempt = False
            dup = await s.scalar(
                sa.select(WhatsAppStatusEvent.id).where(
                    WhatsAppStatusEvent.message_id == msg.id,
                    WhatsAppStatusEvent.status == new.value,
                    WhatsAppStatusEvent.at == at,
                )
            )
            if dup is not None:
                return Applied(msg.id, msg.lead_id, msg.campaign_id, str(msg.status), False)
            self._event(s, msg.id, new.value, at, _safe_status(st))
            if not current_attempt:
                return Applied(msg.id, msg.lead_id, msg.campaign_id, str(msg.status), False)
            cur = _status_of(msg.status)
            if (cur is WhatsAppStatus.SENDING or cur in OPEN) and msg.wamid is None:
                # Reconciliation: Meta accepted this very attempt, but the worker died (or is
                # slow) before storing the answer, or the row was already requeued. Take the
                # wamid from the webhook so the message is never sent again.
                msg.wamid = wamid
                msg.claimed_by = None
                msg.claimed_until = None
                msg.next_attempt_at = None
                await self._log_contact(s, msg.lead_id, msg.campaign_id, wamid, at)
                cur = WhatsAppStatus.SENT
                msg.status = cur
                self._event(s, msg.id, "reconciled", now, attempt=msg.send_attempts)
            if cur not in RANK or RANK[new] <= RANK[cur]:
                return Applied(msg.id, msg.lead_id, msg.campaign_id, cur.value, False)
            if new is WhatsAppStatus.FAILED:
                err = (st.get("errors") or [{}])[0]
                code = err.get("code") if isinstance(err, dict) else None
                info = ErrorInfo(
                    "api",
                    code if isinstance(code, int) else None,
                    None,
                    str(err.get("title", "") if isinstance(err, dict) else "")[:200],
                )
                decision = decide(
                    info, attempt=max(msg.send_attempts, 1), now=now, config=self.retry
                )
                return await self._apply_decision(s, msg, decision, info, now)
            msg.status = new
            return Applied(msg.id, msg.lead_id, msg.campaign_id, new.value, wamid=wamid)

    # ------------------------------------------------------------------ webhooks: inbound
    async def store_inbound(
        self, m: dict[str, Any], now: datetime, metadata: dict[str, Any] | None = None
    ) -> InboundResult | None:
        """One entry of ``value.messages``: store it; opt-out or schedule a callback."""
        wamid = m.get("id")
        sender = m.get("from")
        if not isinstance(wamid, str) or not isinstance(sender, str):
            return None
        text = _inbound_text(m)
        at = _ts(m.get("timestamp"), now)
        phone = "+" + sender.lstrip("+")
        key = f"in:{wamid}"[:120]
        ctx = m.get("context")
        reply_wamid = ctx.get("id") if isinstance(ctx, dict) else None
        async with self.sm() as s, s.begin():
            if await s.scalar(
                sa.select(WhatsAppMessage.id).where(WhatsAppMessage.idempotency_key == key)
            ):
                return InboundResult(None, None, None, None, False, False, duplicate=True)
            out: WhatsAppMessage | None = None
            if isinstance(reply_wamid, str):
                out = await s.scalar(
                    sa.select(WhatsAppMessage).where(WhatsAppMessage.wamid == reply_wamid)
                )
            if out is None:
                out = await s.scalar(
                    sa.select(WhatsAppMessage)
                    .where(WhatsAppMessage.direction == "out", WhatsAppMessage.phone == phone)
                    .order_by(WhatsAppMessage.id.desc())
                    .limit(1)
                )
            lead: Lead | None = None
            if out is not None and out.lead_id is not None:
                lead = await s.get(Lead, out.lead_id, options=[selectinload(Lead.phones)])
            if lead is None:
                lead = await s.scalar(
                    sa.select(Lead)
                    .join(Phone, Phone.lead_id == Lead.id)
                    .where(Phone.e164 == phone)
                    .order_by(Lead.id.desc())
                    .limit(1)
                    .options(selectinload(Lead.phones))
                )
            campaign_id = (
                out.campaign_id if out is not None else (lead.campaign_id if lead else None)
            )
            row = WhatsAppMessage(
                idempotency_key=key,
                direction="in",
                lead_id=lead.id if lead else None,
                campaign_id=campaign_id,
                phone=phone,
                text=text[:4000],
                wamid=wamid,
                status=WhatsAppStatus.RECEIVED,
                payload={"type": m.get("type"), "reply_to": reply_wamid},
            )
            s.add(row)
            await s.flush()
            self._event(s, row.id, "received", at, type=str(m.get("type", "")))
            opt_out = is_opt_out(text)
            callback = False
            if lead is not None and opt_out:
                # Opt-out applies at once across all channels (design.md §6, Ley 1581).
                await revoke_consents(s, person_key(lead), "whatsapp_stop", now)
                await s.execute(
                    sa.update(WhatsAppMessage)
                    .where(
                        WhatsAppMessage.phone == phone,
                        WhatsAppMessage.direction == "out",
                        WhatsAppMessage.status.in_(OPEN),
                    )
                    .values(status=WhatsAppStatus.SKIPPED, error_detail="opt_out")
                    .execution_options(synchronize_session=False)
                )
                s.add(
                    LeadEvent(
                        lead_id=lead.id,
                        at=now,
                        kind="opt_out",
                        reason="whatsapp_stop",
                        detail={"message_id": row.id, "channel": "whatsapp"},
                    )
                )
            elif lead is not None:
                s.add(
                    ContactLog(
                        person_key=person_key(lead),
                        channel=Channel.WHATSAPP,
                        at=at,
                        direct_contact=True,
                        campaign_id=campaign_id,
                        ref=wamid[:64],
                    )
                )
                callback = _schedule_callback(s, lead, row.id, now)
            return InboundResult(
                message_id=row.id,
                reply_to=out.id if out is not None else None,
                lead_id=lead.id if lead else None,
                campaign_id=campaign_id,
                opt_out=opt_out,
                callback=callback,
                text=text,
                at=at,
            )

    # ------------------------------------------------------------------ holds (people)
    async def holds(self, include_released: bool = False) -> list[WhatsAppHold]:
        async with self.sm() as s:
            q = sa.select(WhatsAppHold).order_by(WhatsAppHold.id)
            if not include_released:
                q = q.where(WhatsAppHold.released_at.is_(None))
            return list(await s.scalars(q))

    async def release_holds(
        self, by: str, now: datetime, campaign_id: int | None = None, account: bool = False
    ) -> int:
        """Release holds (a person fixed the template or the account); held messages resume
        at the next sweep. ``campaign_id`` None and ``account`` False: release every hold."""
        async with self.sm() as s, s.begin():
            q = sa.select(WhatsAppHold).where(WhatsAppHold.released_at.is_(None))
            if campaign_id is not None:
                q = q.where(WhatsAppHold.campaign_id == campaign_id)
            elif account:
                q = q.where(WhatsAppHold.scope == "account")
            rows = list(await s.scalars(q))
            for h in rows:
                h.released_at = now
                h.released_by = by[:80]
                s.add(
                    AuditLog(
                        at=now,
                        actor=by[:80],
                        action=f"whatsapp.release.{h.scope}",
                        target_type=h.scope,
                        target_id=str(h.campaign_id or ""),
                        detail={"hold_id": h.id, "code": h.code},
                    )
                )
            if rows:
                await s.execute(
                    sa.update(WhatsAppMessage)
                    .where(
                        WhatsAppMessage.status == WhatsAppStatus.SCHEDULED,
                        WhatsAppMessage.next_attempt_at > now,
                        WhatsAppMessage.error_detail.like(f"{HELD_PREFIX}%"),
                        *(
                            [WhatsAppMessage.campaign_id == campaign_id]
                            if campaign_id is not None
                            else []
                        ),
                    )
                    .values(next_attempt_at=now)
                    .execution_options(synchronize_session=False)
                )
            return len(rows)

    # ------------------------------------------------------------------ API helpers
    async def thread(self, lead_id: int) -> list[dict[str, Any]]:
        """Every message of a lead (out and in) with its status history, oldest first."""
        async with self.sm() as s:
            msgs = list(
                await s.scalars(
                    sa.select(WhatsAppMessage)
                    .where(WhatsAppMessage.lead_id == lead_id)
                    .order_by(WhatsAppMessage.created_at, WhatsAppMessage.id)
                )
            )
            ids = [m.id for m in msgs]
            events = (
                list(
                    await s.scalars(
                        sa.select(WhatsAppStatusEvent)
                        .where(WhatsAppStatusEvent.message_id.in_(ids))
                        .order_by(WhatsAppStatusEvent.at, WhatsAppStatusEvent.id)
                    )
                )
                if ids
                else []
            )
        by_msg: dict[int, list[dict[str, Any]]] = {}
        for e in events:
            by_msg.setdefault(e.message_id, []).append({"status": e.status, "at": e.at.isoformat()})
        return [
            {
                "id": m.id,
                "direction": m.direction,
                "status": str(getattr(m.status, "value", m.status)),
                "template": m.template,
                "text": m.text,
                "wamid": m.wamid,
                "error_code": m.error_code,
                "error_detail": m.error_detail,
                "created_at": m.created_at.isoformat(),
                "history": by_msg.get(m.id, []),
            }
            for m in msgs
        ]

    async def funnel(self, campaign_id: int | None = None) -> Funnel:
        """queued, sent, delivered, read, replied, failed (cumulative: read counts as
        delivered and sent) for the reports."""
        async with self.sm() as s:
            q = sa.select(WhatsAppMessage.status, sa.func.count()).where(
                WhatsAppMessage.direction == "out"
            )
            if campaign_id is not None:
                q = q.where(WhatsAppMessage.campaign_id == campaign_id)
            counts = {
                str(getattr(st, "value", st)): int(n)
                for st, n in (await s.execute(q.group_by(WhatsAppMessage.status))).all()
            }
            rq = sa.select(sa.func.count(sa.distinct(WhatsAppMessage.lead_id))).where(
                WhatsAppMessage.direction == "in", WhatsAppMessage.lead_id.is_not(None)
            )
            if campaign_id is not None:
                rq = rq.where(WhatsAppMessage.campaign_id == campaign_id)
            replied = int(await s.scalar(rq) or 0)
        read = counts.get("read", 0)
        delivered = counts.get("delivered", 0) + read
        return Funnel(
            queued=sum(counts.values()),
            sent=counts.get("sent", 0) + delivered,
            delivered=delivered,
            read=read,
            replied=replied,
            failed=counts.get("failed", 0),
            skipped=counts.get("skipped", 0),
        )


def _schedule_callback(s: AsyncSession, lead: Lead, inbound_id: int, now: datetime) -> bool:
    """The lead goes back to its campaign as a callback for an agent, due now."""
    if lead.status in (LeadStatus.IN_PROGRESS, LeadStatus.EXCLUDED):
        return False  # already in a call, or excluded for a reason a reply does not lift
    lead.status = LeadStatus.PENDING
    lead.is_callback = True
    lead.next_attempt_at = now
    lead.priority = (lead.priority or 0) + CALLBACK_PRIORITY_BUMP
    lead.status_reason = "whatsapp_reply"
    s.add(
        LeadEvent(
            lead_id=lead.id,
            at=now,
            kind="callback",
            reason="whatsapp_reply",
            detail={"message_id": inbound_id},
        )
    )
    return True


async def revoke_whatsapp_marketing(s: AsyncSession, pkey: str, reason: str, now: datetime) -> None:
    """Revoke the person's WhatsApp marketing consent (creating a revoked row if none)."""
    consent = await s.scalar(
        sa.select(Consent).where(
            Consent.person_key == pkey,
            Consent.channel == Channel.WHATSAPP,
            Consent.purpose == "marketing",
        )
    )
    if consent is None:
        s.add(
            Consent(
                person_key=pkey,
                channel=Channel.WHATSAPP,
                purpose="marketing",
                granted=False,
                proof=f"revoked:{reason}",
                granted_at=now,
                revoked_at=now,
                revoked_reason=reason,
            )
        )
    elif consent.revoked_at is None:
        consent.revoked_at = now
        consent.revoked_reason = reason


def _ts(value: object, default: datetime) -> datetime:
    try:
        return datetime.fromtimestamp(int(str(value)), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return default


def _safe_status(st: dict[str, Any]) -> dict[str, Any]:
    """The status entry for the history, without the recipient's number."""
    return {k: v for k, v in st.items() if k not in ("recipient_id", "recipient_participant_id")}


def _inbound_text(m: dict[str, Any]) -> str:
    kind = m.get("type")
    body: object = None
    if kind == "text":
        body = (m.get("text") or {}).get("body")
    elif kind == "button":
        btn = m.get("button") or {}
        body = btn.get("text") or btn.get("payload")
    elif kind == "interactive":
        inter = m.get("interactive") or {}
        reply = inter.get("button_reply") or inter.get("list_reply") or {}
        body = reply.get("title")
    return body if isinstance(body, str) else f"[{kind}]"
