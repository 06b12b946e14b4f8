"""Lead import service: file -> cleaned, deduplicated leads in a campaign.

Used by ``marcador import`` and (later) the API. Steps:

1. read and clean every row (pure, in a worker thread);
2. load the campaign's existing leads, the DNC/RNE numbers and the consents that concern the
   file (a few set-based queries);
3. group duplicates (same national id or phone, transitively, also against existing leads);
4. decide each group's fate and write in batches (``batch_size`` groups per transaction, bulk
   inserts): new leads with their phones, phones appended to existing leads, a LeadEvent for
   every excluded lead, merged row and dropped phone, consents from the authorisation
   columns, and one ImportBatch. On a SQLite file a worker thread with its own connection
   writes each batch while the next one is decided and built. On PostgreSQL each batch is
   copied into temporary staging tables and moved into the real ones by set-based
   statements, which the server runs while the next batch is decided and built
   (:class:`_PgStaging`).

Idempotent: ``Lead.dedupe_key`` (``id:<national id>``, else ``tel:<first E.164>``) is unique
per campaign; re-importing matches the same leads and only appends phones they lack.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import hashlib
import json
import operator
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault

from dialer.db.models import Campaign, Consent, DncEntry, ImportBatch, Lead, LeadEvent, Phone
from dialer.domain.eligibility import CampaignRules
from dialer.domain.outcomes import CampaignType, Channel, LeadStatus
from dialer.domain.windows import DEFAULT_TZ_NAME
from dialer.importing.cleaning import (
    CleaningOptions,
    CleanLead,
    ExistingLead,
    Group,
    GroupDecision,
    PhoneIssue,
    PhoneKind,
    Reason,
    clean_row,
    decide_group,
    group_rows,
)
from dialer.importing.errors import CampaignNotFound
from dialer.importing.mapping import ColumnMapping
from dialer.importing.reader import XlsxLimits, open_table
from dialer.importing.report import (
    ImportReport,
    ProgressCallback,
    RecoveryCount,
    RowResult,
    row_results,
)
from dialer.logging import get_logger

__all__ = ["import_file", "resolve_campaign"]

log = get_logger(__name__)

_IN_CHUNK = 500  # bound parameters per IN (...) query
_LEADS = cast(sa.Table, Lead.__table__)
_PHONES = cast(sa.Table, Phone.__table__)
_EVENTS = cast(sa.Table, LeadEvent.__table__)
_CONSENTS = cast(sa.Table, Consent.__table__)
CONSENT_PURPOSE = "marketing"


async def resolve_campaign(sessionmaker: async_sessionmaker[AsyncSession], ref: str | int) -> int:
    """A campaign id from an id or a name (case-insensitive); raises :class:`CampaignNotFound`."""
    async with sessionmaker() as session:
        campaign_id: int | None = None
        text = str(ref).strip()
        if text.isdigit():
            campaign_id = await session.scalar(
                sa.select(Campaign.id).where(Campaign.id == int(text))
            )
        if campaign_id is None:
            campaign_id = await session.scalar(
                sa.select(Campaign.id).where(sa.func.lower(Campaign.name) == text.lower())
            )
    if campaign_id is None:
        raise CampaignNotFound(
            f"La campaña {text!r} no existe. Créela primero.",
            f"Campaign {text!r} does not exist. Create it first.",
            campaign=text,
        )
    return campaign_id


async def _recovery_count(
    sessionmaker: async_sessionmaker[AsyncSession], campaign_id: int, now: datetime
) -> RecoveryCount | None:
    """For a recovery campaign, an empty :class:`RecoveryCount` as of the import date (the
    campaign's local day) with the campaign's minimum days since the last visit."""
    async with sessionmaker() as session:
        row = (
            await session.execute(
                sa.select(Campaign.type, Campaign.rules, Campaign.timezone).where(
                    Campaign.id == campaign_id
                )
            )
        ).one()
    kind, rules, timezone = row
    if kind is not CampaignType.RECUPERACION:
        return None
    min_days = CampaignRules(campaign_type=kind).recovery_min_days_since_visit
    value = (rules or {}).get("recovery_min_days_since_visit")
    if isinstance(value, int) and value >= 1:
        min_days = value
    try:
        zone = ZoneInfo(timezone or DEFAULT_TZ_NAME)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo(DEFAULT_TZ_NAME)
    return RecoveryCount(as_of=now.astimezone(zone).date(), min_days=min_days)


_gc_lock = threading.Lock()
_gc_pauses = 0  # imports running with the cyclic collector paused
_gc_was_enabled = False


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while an import runs.

    An import keeps a few hundred thousand small objects alive (cleaned rows, groups,
    decisions, row tuples); with the collector on, every allocation-triggered collection
    walks them again, which cost about a third of the import's CPU time at 100k rows.
    Reference counting still frees everything that is not cyclic; the collector is
    re-enabled (if it was on) when the last concurrent import ends.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(slots=True)
class _Parsed:
    rows: list[CleanLead]
    file_format: str
    encoding: str | None
    delimiter: str | None
    mapping: dict[str, str]
    sha256: str


def _read_and_clean(
    path: Path,
    mapping: ColumnMapping,
    options: CleaningOptions,
    progress: ProgressCallback | None,
    limits: XlsxLimits | None = None,
) -> _Parsed:
    sha = _sha256(path)
    rows: list[CleanLead] = []
    with open_table(path, limits) as table:
        resolved = mapping.resolve(table.headers)
        for raw in table:
            rows.append(clean_row(resolved.apply(raw.number, raw.cells), options))
            if progress is not None and len(rows) % 2000 == 0:
                progress("read", len(rows), None)
        if progress is not None:
            progress("read", len(rows), len(rows))
        return _Parsed(rows, table.format, table.encoding, table.delimiter, resolved.used, sha)


# ---------------------------------------------------------------------------- bulk writes

# Columns each bulk insert fills from the import, in row-tuple order. The table's other
# columns get their model defaults (computed once per import), except autoincrement ids.
_LEAD_COLUMNS = (
    "id", "campaign_id", "dedupe_key", "external_id", "customer_name", "national_id",
    "id_type", "email", "plate", "brand", "model", "vehicle_year", "branch",
    "last_visit_date", "event_date", "status", "status_reason", "import_batch_id", "extra",
    "created_at", "updated_at",
)  # fmt: skip
_PHONE_COLUMNS = ("lead_id", "e164", "kind", "position")
_EVENT_COLUMNS = ("lead_id", "at", "kind", "reason", "detail")
_CONSENT_COLUMNS = (
    "person_key", "channel", "purpose", "granted", "proof", "granted_at", "revoked_at",
    "revoked_reason",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Spec:
    """One table's bulk insert: the columns written and the driver values of the defaults."""

    table: sa.Table
    columns: tuple[str, ...]  # the given columns, then the defaulted ones
    defaults: tuple[Any, ...]  # driver-ready values appended to every row

    @classmethod
    def build(cls, table: sa.Table, given: tuple[str, ...], dialect: Dialect) -> _Spec:
        names: list[str] = []
        values: list[Any] = []
        for column in table.c:
            if column.key in given or (column.primary_key and column.autoincrement):
                continue
            default = column.default
            if default is None:
                if not column.nullable:  # pragma: no cover - a model change the importer missed
                    raise RuntimeError(f"{table.name}.{column.key} needs a value on import")
                value: Any = None
            elif isinstance(default, ScalarElementColumnDefault):
                value = default.arg
            elif isinstance(default, CallableColumnDefault):
                value = cast(Any, default.arg)(None)
            else:  # pragma: no cover - server/sequence defaults are not used by these tables
                raise RuntimeError(f"{table.name}.{column.key}: unsupported default")
            processor = column.type._cached_bind_processor(dialect)
            names.append(column.key)
            values.append(processor(value) if processor is not None else value)
        return cls(table, given + tuple(names), tuple(values))


class _Store:
    """How a batch reaches one database backend: lead ids, then bulk inserts.

    Rows are plain tuples already in the driver's representation (no ORM objects, no
    per-row SQLAlchemy parameter processing); :meth:`begin` opens the batch's transaction.
    """

    def __init__(self, dialect: Dialect, now: datetime) -> None:
        self.dialect = dialect
        serializer = getattr(dialect, "_json_serializer", None)
        self.dumps: Callable[[Any], str] = serializer or json.dumps
        stamp = cast(sa.Column[datetime], _LEADS.c.created_at).type
        processor = stamp._cached_bind_processor(dialect)
        self.now: Any = processor(now) if processor is not None else now
        self.leads = _Spec.build(_LEADS, _LEAD_COLUMNS, dialect)
        self.phones = _Spec.build(_PHONES, _PHONE_COLUMNS, dialect)
        self.events = _Spec.build(_EVENTS, _EVENT_COLUMNS, dialect)
        self.consents = _Spec.build(_CONSENTS, _CONSENT_COLUMNS, dialect)

    def day(self, value: date | None) -> Any:
        return value

    async def begin(self, conn: AsyncConnection, new_leads: int) -> Sequence[int]:
        """Start the batch's transaction; return ``new_leads`` unused lead ids."""
        raise NotImplementedError

    async def insert(self, conn: AsyncConnection, spec: _Spec, rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    @staticmethod
    def for_dialect(dialect: Dialect, now: datetime) -> _Store:
        if dialect.name == "sqlite":
            return _SqliteStore(dialect, now)
        if dialect.name == "postgresql":
            return _PostgresStore(dialect, now)
        raise NotImplementedError(f"lead import supports SQLite and PostgreSQL, not {dialect.name}")


class _SqliteStore(_Store):
    """SQLite: ``BEGIN IMMEDIATE`` takes the write lock before the ids are chosen (max + 1...,
    so no other writer can interleave), then one ``executemany`` per table."""

    def __init__(self, dialect: Dialect, now: datetime) -> None:
        super().__init__(dialect, now)
        self._sql: dict[str, str] = {}

    def day(self, value: date | None) -> Any:
        return None if value is None else value.isoformat()  # SQLAlchemy's SQLite DATE text

    async def begin(self, conn: AsyncConnection, new_leads: int) -> Sequence[int]:
        await conn.exec_driver_sql("BEGIN IMMEDIATE")
        top = (await conn.exec_driver_sql("SELECT max(id) FROM leads")).scalar() or 0
        return range(top + 1, top + 1 + new_leads)

    def statement(self, spec: _Spec) -> str:
        """The ``INSERT ... VALUES (?, ...)`` of one table (rows: given values + defaults)."""
        sql = self._sql.get(spec.table.name)
        if sql is None:
            quote = self.dialect.identifier_preparer.quote
            names = ", ".join(quote(c) for c in spec.columns)
            marks = ", ".join("?" for _ in spec.columns)
            # Only the model's own table and column names, quoted: no user data in the SQL.
            table = quote(spec.table.name)
            sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608
            self._sql[spec.table.name] = sql
        return sql

    async def insert(self, conn: AsyncConnection, spec: _Spec, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        defaults = spec.defaults
        await conn.exec_driver_sql(self.statement(spec), [row + defaults for row in rows])


def _sqlite_file(url: sa.URL) -> str | None:
    """The database file of a SQLite URL; None for in-memory and URI-style databases (which
    a second connection would not see the same way)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if url.query.get("mode") == "memory" or url.query.get("uri"):
        return None
    return database


@dataclass(slots=True)
class _Batch:
    """One transaction's rows, built by :meth:`_Writer.build` (row tuples without defaults)."""

    groups: int
    first_id: int  # the first new lead id used (new leads have first_id, first_id + 1, ...)
    new_leads: int
    leads: list[tuple[Any, ...]]
    phones: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    consents: list[tuple[Any, ...]]
    revocations: list[tuple[str, str]]
    new_results: list[RowResult]  # report rows that point at the new leads


class _SqliteThread:
    """SQLite batches written through one sync ``sqlite3`` connection in one worker thread.

    The event loop decides and builds batch N+1 while this thread writes batch N (sqlite3
    releases the GIL while SQLite works), and no statement waits for the event loop. Each
    batch is one ``BEGIN IMMEDIATE`` transaction. The builder predicts the new lead ids
    (``max(id) + 1``, ...); when another writer has inserted leads meanwhile, :meth:`_write`
    moves the batch's new ids past them and returns the shift, under the write lock.
    """

    # The same per-connection settings as dialer.db.engine gives every SQLite connection.
    _PRAGMAS = (
        "PRAGMA foreign_keys=ON",
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA busy_timeout=30000",
    )

    def __init__(self, database: str, store: _SqliteStore, revoked_reason: str) -> None:
        self._database = database
        self._store = store
        self._revoked_reason = revoked_reason
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lead-import")
        self._conn: sqlite3.Connection | None = None
        quote = store.dialect.identifier_preparer.quote
        table = quote(_CONSENTS.name)
        revoked_at, reason, key, channel, purpose = (
            quote(c) for c in ("revoked_at", "revoked_reason", "person_key", "channel", "purpose")
        )
        self._revoke_sql = (
            f"UPDATE {table} SET {revoked_at} = ?, {reason} = ? "  # noqa: S608 - model names
            f"WHERE {key} = ? AND {channel} = ? AND {purpose} = ?"
        )

    def submit(self, batch: _Batch) -> concurrent.futures.Future[int]:
        return self._pool.submit(self._write, batch)

    def close(self) -> None:
        """Wait for the batch in flight, close the connection and stop the thread."""
        try:
            self._pool.submit(self._close).result()
        finally:
            self._pool.shutdown(wait=True)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._database, timeout=30, isolation_level=None)
            for pragma in self._PRAGMAS:
                conn.execute(pragma)
            self._conn = conn
        return self._conn

    def _write(self, batch: _Batch) -> int:
        conn, store = self._connection(), self._store
        conn.execute("BEGIN IMMEDIATE")
        try:
            top = conn.execute("SELECT max(id) FROM leads").fetchone()[0] or 0
            shift = max(0, top + 1 - batch.first_id)
            if shift:
                _shift_batch(batch, shift)
            for spec, rows in (
                (store.leads, batch.leads),
                (store.phones, batch.phones),
                (store.events, batch.events),
                # person_key order: both consents indexes start with it
                (store.consents, sorted(batch.consents, key=operator.itemgetter(0))),
            ):
                if rows:
                    defaults = spec.defaults
                    conn.executemany(store.statement(spec), [row + defaults for row in rows])
            if batch.revocations:
                now, reason = store.now, self._revoked_reason
                conn.executemany(
                    self._revoke_sql,
                    [(now, reason, key, ch, CONSENT_PURPOSE) for key, ch in batch.revocations],
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return shift


def _shift_batch(batch: _Batch, shift: int) -> None:
    """Move the batch's new lead ids (``>= first_id``) up by ``shift``."""
    first = batch.first_id
    batch.leads = [(row[0] + shift, *row[1:]) for row in batch.leads]
    batch.phones = [(r[0] + shift, *r[1:]) if r[0] >= first else r for r in batch.phones]
    batch.events = [(r[0] + shift, *r[1:]) if r[0] >= first else r for r in batch.events]
    batch.first_id = first + shift


class _PostgresStore(_Store):
    """PostgreSQL: ids from the leads sequence, rows through ``COPY`` (asyncpg's
    ``copy_records_to_table``) inside the SQLAlchemy transaction."""

    async def begin(self, conn: AsyncConnection, new_leads: int) -> Sequence[int]:
        # The first statement through SQLAlchemy opens the transaction that COPY joins.
        result = await conn.execute(
            sa.text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": _LEADS.fullname, "n": new_leads},
        )
        ids = sorted(result.scalars())
        driver = await self._driver(conn)
        if not driver.is_in_transaction():  # pragma: no cover - guards the COPY below
            raise RuntimeError("import batch must run inside a transaction")
        return ids

    @staticmethod
    async def _driver(conn: AsyncConnection) -> Any:
        raw = await conn.get_raw_connection()
        return raw.driver_connection

    async def insert(self, conn: AsyncConnection, spec: _Spec, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        driver = await self._driver(conn)
        defaults = spec.defaults
        await driver.copy_records_to_table(
            spec.table.name,
            records=[row + defaults for row in rows] if defaults else rows,
            columns=list(spec.columns),
            schema_name=spec.table.schema,
        )


# Provisional ids of a staged batch's new leads: int4 and below every real id, so a staged
# phone or event row says by its sign whether it points at a new lead (-> its staged row) or
# at an existing one.
_PROVISIONAL_ID = -(2**31) + 1


def _default_literal(column: sa.Column[Any], dialect: Dialect) -> str:
    """The SQL literal of a column's model default (constants only: None, numbers, flags)."""
    default = column.default
    if default is None:
        value: Any = None
    elif isinstance(default, ScalarElementColumnDefault):
        value = default.arg
    elif isinstance(default, CallableColumnDefault):
        value = cast(Any, default.arg)(None)
    else:  # pragma: no cover - server/sequence defaults are not used by these tables
        raise RuntimeError(f"{column.table.name}.{column.key}: unsupported default")
    if value is None:
        return "NULL"
    if not isinstance(value, bool | int | str):  # pragma: no cover - a model change
        raise RuntimeError(f"{column.table.name}.{column.key}: default {value!r} is not a constant")
    literal = sa.literal(value, column.type).compile(
        dialect=dialect, compile_kwargs={"literal_binds": True}
    )
    return str(literal)


class _PgStaging:
    """PostgreSQL's bulk path: each batch is copied (asyncpg ``copy_records_to_table``) into
    temporary staging tables, then moved into the real tables by a few set-based statements.

    One transaction per batch, as on the other paths; the next batch is copied on a second
    connection while the server applies one, and applied once that one committed
    (:meth:`write`'s ``after``). The staging tables are created in that
    transaction with ``ON COMMIT DROP``, so they vanish at its commit or rollback and never
    outlive the batch on a pooled connection. New leads are built with provisional ids
    (``_PROVISIONAL_ID + n``); the staged leads draw their real ids from the leads sequence
    as they are copied (a column default, in row order), and the phones and events of a new
    lead are joined to it. Rows keep the order they were built in (``ORDER BY`` the staged
    id or ``ctid``), so ids follow the same order as on the direct path.

    Conflicts with a concurrent writer: a lead whose ``(campaign_id, dedupe_key)`` or a phone
    whose ``(lead_id, e164)`` exists already fails the batch, as on the direct path (it rolls
    back and the file can be imported again; ``ON CONFLICT`` on phones cost about 12 % more
    server CPU for a case that needs a second import of the same people at the same time). A
    consent that appeared since the lookup is kept (``ON CONFLICT``), unless the file refuses
    it: then it is revoked (a refusal always wins; a grant never overrides a revocation).
    Without concurrent writers no conflict can happen, and the result is row for row the one
    the direct path writes.
    """

    LEADS = "import_stage_leads"
    PHONES = "import_stage_phones"
    EVENTS = "import_stage_events"
    CONSENTS = "import_stage_consents"
    REVOCATIONS = "import_stage_revocations"
    _REVOCATION_COLUMNS = ("person_key", "channel", "revoked_at", "revoked_reason")

    def __init__(self, store: _PostgresStore, revoked_reason: str, sequence_oid: int) -> None:
        self.store = store
        self.revoked_reason = revoked_reason
        dialect = store.dialect
        quote = dialect.identifier_preparer.quote

        def names(columns: Iterable[str], prefix: str = "") -> str:
            return ", ".join(f"{prefix}{quote(c)}" for c in columns)

        def stage(name: str, table: sa.Table, columns: tuple[str, ...]) -> str:
            # Only the model's own table/column names: no user data in the SQL.
            return (
                f"CREATE TEMP TABLE {name} ON COMMIT DROP AS "  # noqa: S608
                f"SELECT {names(columns)} FROM {quote(table.name)} WITH NO DATA"
            )

        def defaults(table: sa.Table, given: tuple[str, ...]) -> tuple[list[str], list[str]]:
            cols = [c for c in table.c if c.key not in given and not c.primary_key]
            return [c.key for c in cols], [_default_literal(c, dialect) for c in cols]

        self.ddl = [
            stage(self.LEADS, _LEADS, _LEAD_COLUMNS),
            # the real id of each new lead, drawn from the sequence as the row is copied
            f"ALTER TABLE {self.LEADS} ADD COLUMN new_id integer "
            f"DEFAULT nextval({int(sequence_oid)}::regclass)",
            stage(self.PHONES, _PHONES, _PHONE_COLUMNS),
            stage(self.EVENTS, _EVENTS, _EVENT_COLUMNS),
            stage(self.CONSENTS, _CONSENTS, _CONSENT_COLUMNS),
            stage(self.REVOCATIONS, _CONSENTS, self._REVOCATION_COLUMNS),
        ]

        lead_defaults, lead_values = defaults(_LEADS, _LEAD_COLUMNS)
        lead_cols = _LEAD_COLUMNS[1:]  # after "id"
        insert_leads = (
            f"INSERT INTO {quote(_LEADS.name)} (id, {names(lead_cols)}, {names(lead_defaults)}) "  # noqa: S608 - model names
            f"SELECT s.new_id, {names(lead_cols, 's.')}, {', '.join(lead_values)} "
            f"FROM {self.LEADS} s ORDER BY s.id"
        )

        def linked(table: sa.Table, given: tuple[str, ...], alias: str) -> str:
            """INSERT ... SELECT for rows that point at a lead (its first column)."""
            extra, values = defaults(table, given)
            target = names(given + tuple(extra))
            rest = [names(given[1:], f"{alias}."), *values]
            stage_name = self.PHONES if table is _PHONES else self.EVENTS
            return (
                f"INSERT INTO {quote(table.name)} ({target}) "  # noqa: S608 - model names
                f"SELECT coalesce(l.new_id, {alias}.lead_id), {', '.join(rest)} "
                f"FROM {stage_name} {alias} LEFT JOIN {self.LEADS} l ON l.id = {alias}.lead_id "
                f"ORDER BY {alias}.ctid"
            )

        insert_phones = linked(_PHONES, _PHONE_COLUMNS, "p")
        insert_events = linked(_EVENTS, _EVENT_COLUMNS, "e")
        purpose = str(
            sa.literal(CONSENT_PURPOSE, sa.String()).compile(
                dialect=dialect, compile_kwargs={"literal_binds": True}
            )
        )
        consents = quote(_CONSENTS.name)
        insert_consents = (
            f"INSERT INTO {consents} ({names(_CONSENT_COLUMNS)}) "  # noqa: S608 - model names
            f"SELECT {names(_CONSENT_COLUMNS, 'c.')} FROM {self.CONSENTS} c ORDER BY c.ctid "
            "ON CONFLICT (person_key, channel, purpose) DO UPDATE "
            "SET revoked_at = EXCLUDED.revoked_at, revoked_reason = EXCLUDED.revoked_reason "
            f"WHERE NOT EXCLUDED.granted AND {consents}.revoked_at IS NULL"
        )
        revoke = (
            f"UPDATE {consents} AS c SET revoked_at = r.revoked_at, "  # noqa: S608 - model names
            f"revoked_reason = r.revoked_reason FROM {self.REVOCATIONS} r "
            "WHERE c.person_key = r.person_key AND c.channel = r.channel "
            f"AND c.purpose = {purpose}"
        )
        self.apply = ";\n".join(
            (insert_leads, insert_phones, insert_events, insert_consents, revoke)
        )
        self.new_ids = f"SELECT array_agg(new_id ORDER BY id) FROM {self.LEADS}"  # noqa: S608

    @staticmethod
    async def sequence_oid(conn: AsyncConnection) -> int:
        """The oid of the leads id sequence."""
        oid = await conn.scalar(
            sa.text("SELECT pg_get_serial_sequence(:table, 'id')::regclass::oid"),
            {"table": _LEADS.fullname},
        )
        if oid is None:  # pragma: no cover - the schema always has it
            raise RuntimeError("leads.id has no sequence")
        return int(oid)

    async def write(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        batch: _Batch,
        staged: asyncio.Event | None = None,
        after: asyncio.Future[None] | None = None,
    ) -> None:
        """Write one batch in its own transaction; the report's new leads get their ids.

        ``staged`` is set once the rows are copied into the staging tables (their new lead
        ids drawn). ``after``: the previous batch's write; the set-based statements wait for
        it to commit, and if it failed this batch rolls back too. So the next batch is copied
        on a second connection while the server applies this one, the statements that touch
        the real tables still run one batch at a time, in order, and lead ids follow the
        order of the file.
        """
        async with sessionmaker.begin() as session:
            conn = await session.connection()
            # The first statement through SQLAlchemy opens the transaction the rest joins.
            await conn.exec_driver_sql(self.ddl[0])
            driver = await _PostgresStore._driver(conn)
            if not driver.is_in_transaction():  # pragma: no cover - guards the statements below
                raise RuntimeError("import batch must run inside a transaction")
            await driver.execute(";\n".join(self.ddl[1:]))
            revocations = [
                (key, channel, self.store.now, self.revoked_reason)
                for key, channel in batch.revocations
            ]
            for name, columns, rows in (
                (self.LEADS, _LEAD_COLUMNS, batch.leads),
                (self.PHONES, _PHONE_COLUMNS, batch.phones),
                (self.EVENTS, _EVENT_COLUMNS, batch.events),
                (self.CONSENTS, _CONSENT_COLUMNS, batch.consents),
                (self.REVOCATIONS, self._REVOCATION_COLUMNS, revocations),
            ):
                if rows:
                    await driver.copy_records_to_table(name, records=rows, columns=list(columns))
            if staged is not None:
                staged.set()
            if after is not None:
                await after  # raises if the previous batch failed: this one rolls back
            await driver.execute(self.apply)
            ids: list[int] = await driver.fetchval(self.new_ids) if batch.new_leads else []
            if len(ids) != batch.new_leads:  # pragma: no cover - the statements above
                raise RuntimeError("staged leads and new ids differ")
        first = batch.first_id
        for result in batch.new_results:
            if result.lead_id is not None:
                result.lead_id = ids[result.lead_id - first]


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _among(
    column: sa.ColumnElement[str] | InstrumentedAttribute[str], values: Sequence[str], dialect: str
) -> Any:
    """``column IN values`` as one statement with one parameter, whatever the list's size."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=ARRAY(sa.String())))
    # SQLite: the list as one JSON array parameter, unpacked by json_each.
    each = sa.func.json_each(sa.bindparam(None, json.dumps(list(values)), type_=sa.String()))
    return column.in_(sa.select(each.table_valued("value").c.value))


async def _find(
    session: AsyncSession,
    query: Callable[[Any], sa.Select[Any]],
    column: sa.ColumnElement[str] | InstrumentedAttribute[str],
    values: Sequence[str],
) -> list[sa.Row[Any]]:
    """Run ``query(condition)`` for ``column IN values``: one statement on SQLite and
    PostgreSQL, IN (...) chunks elsewhere."""
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        return list(await session.execute(query(_among(column, values, dialect))))
    found: list[sa.Row[Any]] = []
    for chunk in _chunks(values):
        found.extend(await session.execute(query(column.in_(chunk))))
    return found


@dataclass(slots=True)
class _ConsentState:
    active: bool  # granted and not revoked


async def _load_existing(session: AsyncSession, campaign_id: int) -> list[ExistingLead]:
    leads = (
        await session.execute(
            sa.select(Lead.id, Lead.national_id, Lead.dedupe_key).where(
                Lead.campaign_id == campaign_id
            )
        )
    ).all()
    if not leads:
        return []
    phones: dict[int, list[tuple[int, str]]] = {}
    rows = await session.execute(
        sa.select(Phone.lead_id, Phone.position, Phone.e164)
        .join(Lead, Lead.id == Phone.lead_id)
        .where(Lead.campaign_id == campaign_id)
    )
    for lead_id, position, e164 in rows:
        phones.setdefault(lead_id, []).append((position, e164))
    out: list[ExistingLead] = []
    for lead_id, national_id, dedupe_key in leads:
        mine = sorted(phones.get(lead_id, []))
        numbers = tuple(e for _, e in mine)
        key_phone = dedupe_key[4:] if dedupe_key.startswith("tel:") else None
        out.append(
            ExistingLead(
                lead_id=lead_id,
                national_id=national_id
                or (dedupe_key[3:] if dedupe_key.startswith("id:") else None),
                phones=numbers,
                next_position=(mine[-1][0] + 1) if mine else 0,
                match_phones=(key_phone,) if key_phone and key_phone not in numbers else (),
            )
        )
    return out


async def _load_dnc(session: AsyncSession, numbers: Sequence[str], now: datetime) -> set[str]:
    if not numbers:
        return set()
    active = sa.or_(DncEntry.expires_at.is_(None), DncEntry.expires_at > now)
    size = await session.scalar(sa.select(sa.func.count()).select_from(DncEntry)) or 0
    if size <= 2 * len(numbers):  # small list: one scan beats an indexed lookup per number
        wanted = set(numbers)
        result = await session.scalars(sa.select(DncEntry.e164).where(active))
        return {e for e in result if e in wanted}
    rows = await _find(
        session, lambda cond: sa.select(DncEntry.e164).where(cond, active), DncEntry.e164, numbers
    )
    return {e for (e,) in rows}


async def _load_consents(
    session: AsyncSession, keys: Sequence[str]
) -> dict[tuple[str, str], _ConsentState]:
    """(person key, channel value) -> state, for the marketing consents of ``keys``."""
    out: dict[tuple[str, str], _ConsentState] = {}
    if not keys:
        return out
    columns = (Consent.person_key, Consent.channel, Consent.granted, Consent.revoked_at)
    mine = Consent.purpose == CONSENT_PURPOSE
    size = await session.scalar(sa.select(sa.func.count()).select_from(Consent).where(mine)) or 0
    rows: Iterable[sa.Row[Any]]
    if size <= 2 * len(keys):  # few consents so far: read them all
        wanted = set(keys)
        rows = [r for r in await session.execute(sa.select(*columns).where(mine)) if r[0] in wanted]
    else:
        rows = await _find(
            session, lambda cond: sa.select(*columns).where(cond, mine), Consent.person_key, keys
        )
    for person_key, channel, granted, revoked_at in rows:
        out[(person_key, str(channel))] = _ConsentState(bool(granted) and revoked_at is None)
    return out


_VOICE = str(Channel.VOICE)
_WHATSAPP = str(Channel.WHATSAPP)
_NEW = str(LeadStatus.NEW)
_EXCLUDED = str(LeadStatus.EXCLUDED)
_REIMPORTED = str(Reason.ALREADY_IMPORTED)
_DUPLICATE = str(Reason.DUPLICATE)
_DNC = str(Reason.DNC)
_SHARED = str(PhoneIssue.SHARED_WITH_OTHER_PERSON)
_KIND_TEXT = {kind: str(kind) for kind in PhoneKind}


class _Writer:
    """Turns decided groups into row tuples (:meth:`build`) and, for the async stores, writes
    them (:meth:`write`), one transaction per batch."""

    def __init__(
        self,
        store: _Store,
        campaign_id: int,
        batch_id: int,
        filename: str,
        now: datetime,
        consents: dict[tuple[str, str], _ConsentState],
        assume_consent: str | None,
        report: ImportReport,
    ) -> None:
        self.store = store
        self.campaign_id = campaign_id
        self.batch_id = batch_id
        self.filename = filename
        self.now = now
        self.consents = consents
        self.assume_consent = assume_consent
        self.report = report
        self.new_consents: list[tuple[Any, ...]] = []
        self.revocations: list[tuple[str, str]] = []
        self.assumed_proof = f"{assume_consent} (import:{filename})"[:300]
        self.revoked_reason = self.revoked_reason_for(filename)

    @staticmethod
    def revoked_reason_for(filename: str) -> str:
        """``revoked_reason`` of a consent the file's NO revokes."""
        return f"autorización NO en {filename}"[:120]

    @staticmethod
    def new_leads(items: Sequence[tuple[Group, GroupDecision]]) -> int:
        return sum(1 for g, d in items if d.rejected is None and g.existing is None)

    def build(self, items: Sequence[tuple[Group, GroupDecision]], first_id: int) -> _Batch:
        """The batch's rows; its new leads get ids ``first_id``, ``first_id + 1``, ...
        Updates the report (rows and counters) as if the batch were written."""
        report = self.report
        next_id = first_id
        leads: list[tuple[Any, ...]] = []
        phones: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        new_results: list[RowResult] = []
        recovery = report.recovery
        for group, decision in items:
            if decision.rejected is not None:
                report.rows.extend(row_results(group, decision, None))
                report.people_rejected[decision.rejected.value] += 1
                continue
            existing = group.existing
            if existing is None:
                lead_id = next_id
                next_id += 1
                leads.append(self._lead(lead_id, decision))
                start = 0
                if decision.excluded is not None:
                    report.people_excluded[decision.excluded.value] += 1
                else:
                    report.people_new += 1
            else:
                lead_id, start = existing.lead_id, existing.next_position
                report.leads_updated += 1
                if decision.excluded is not None:
                    report.people_excluded[decision.excluded.value] += 1
                else:
                    report.people_updated += 1
            if recovery is not None and decision.excluded is None:
                recovery.add(decision.merged.last_visit_date)
            kinds = _KIND_TEXT
            for offset, phone in enumerate(decision.phones, start):
                phones.append((lead_id, phone.e164, kinds[phone.kind], offset))
            report.phones_added += len(decision.phones)
            report.phones_dropped_dnc += len(decision.dnc_phones)
            self._events(events, group, decision, lead_id)
            results = row_results(group, decision, lead_id)
            report.rows.extend(results)
            if existing is None:
                new_results.extend(results)
            if decision.person_key is not None:
                self._consents(decision, decision.person_key)
        report.leads_created += len(leads)
        batch = _Batch(
            groups=len(items),
            first_id=first_id,
            new_leads=len(leads),
            leads=leads,
            phones=phones,
            events=events,
            consents=self.new_consents,
            revocations=self.revocations,
            new_results=new_results,
        )
        self.new_consents, self.revocations = [], []
        return batch

    async def write(
        self, session: AsyncSession, items: Sequence[tuple[Group, GroupDecision]]
    ) -> None:
        """Write one batch in ``session``'s transaction (the async stores)."""
        store = self.store
        conn = await session.connection()
        ids = await store.begin(conn, self.new_leads(items))
        batch = self.build(items, ids[0] if ids else 0)
        if ids and list(ids) != list(range(ids[0], ids[0] + len(ids))):
            batch = self._renumber(batch, ids)  # PostgreSQL: the sequence may skip values
        await store.insert(conn, store.leads, batch.leads)
        await store.insert(conn, store.phones, batch.phones)
        await store.insert(conn, store.events, batch.events)
        await store.insert(conn, store.consents, batch.consents)
        if batch.revocations:
            await conn.execute(
                sa.update(_CONSENTS)
                .where(
                    _CONSENTS.c.person_key == sa.bindparam("b_key"),
                    _CONSENTS.c.channel == sa.bindparam("b_channel"),
                    _CONSENTS.c.purpose == CONSENT_PURPOSE,
                )
                .values(revoked_at=self.now, revoked_reason=self.revoked_reason),
                [{"b_key": key, "b_channel": channel} for key, channel in batch.revocations],
            )

    @staticmethod
    def _renumber(batch: _Batch, ids: Sequence[int]) -> _Batch:
        """Give the batch's new leads the ``ids`` given (built with ``ids[0] + n``)."""
        first = batch.first_id
        end = first + batch.new_leads
        real = {first + n: lead_id for n, lead_id in enumerate(ids)}

        def fix(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
            return [(real[r[0]], *r[1:]) if first <= r[0] < end else r for r in rows]

        batch.leads, batch.phones, batch.events = (
            fix(batch.leads),
            fix(batch.phones),
            fix(batch.events),
        )
        for result in batch.new_results:
            if result.lead_id is not None:
                result.lead_id = real[result.lead_id]
        return batch

    def _lead(self, lead_id: int, decision: GroupDecision) -> tuple[Any, ...]:
        store = self.store
        merged = decision.merged
        extra: dict[str, Any] = merged.extra
        if decision.overflow_phones:
            extra = {**extra, "otros_telefonos": list(decision.overflow_phones)}
        excluded = decision.excluded
        return (
            lead_id,
            self.campaign_id,
            decision.dedupe_key or "",
            merged.external_id,
            merged.name,
            merged.national_id,
            merged.id_type,
            merged.email,
            merged.plate,
            merged.brand,
            merged.model,
            merged.vehicle_year,
            merged.branch,
            store.day(merged.last_visit_date),
            store.day(merged.event_date),
            _EXCLUDED if excluded else _NEW,
            str(excluded) if excluded else None,
            self.batch_id,
            store.dumps(extra) if extra else "{}",
            store.now,
            store.now,
        )

    def _event(
        self, lead_id: int, kind: str, reason: str, detail: dict[str, Any]
    ) -> tuple[Any, ...]:
        detail["batch"] = self.batch_id
        detail["file"] = self.filename
        return (lead_id, self.store.now, kind, reason, self.store.dumps(detail))

    def _events(
        self, out: list[tuple[Any, ...]], group: Group, decision: GroupDecision, lead_id: int
    ) -> None:
        primary = group.primary.row
        event = self._event
        if group.existing is not None:
            detail: dict[str, Any] = {"row": primary, "phones_added": len(decision.phones)}
            out.append(event(lead_id, "reimported", _REIMPORTED, detail))
        elif decision.excluded is not None:
            detail = {
                "row": primary,
                "reasons": [str(r) for r in decision.reasons],
                "marker": decision.corporate_marker,
            }
            out.append(event(lead_id, "excluded", str(decision.excluded), detail))
        for row, (into, via) in group.merged_into.items():
            detail = {"row": row, "into_row": into, "via": via}
            out.append(event(lead_id, "merged", _DUPLICATE, detail))
        if decision.dnc_phones:
            out.append(event(lead_id, "phone_dropped", _DNC, {"phones": decision.dnc_phones}))
        for row, numbers in group.shared.items():
            detail = {"row": row, "phones": numbers}
            out.append(event(lead_id, "phone_shared", _SHARED, detail))

    def _consents(self, decision: GroupDecision, key: str) -> None:
        for channel, value, row in (
            (_VOICE, decision.consent_voice, decision.consent_voice_row),
            (_WHATSAPP, decision.consent_whatsapp, decision.consent_whatsapp_row),
        ):
            if value is None:
                if not self.assume_consent:
                    continue
                value, proof = True, self.assumed_proof
            else:
                proof = f"import:{self.filename}:{row}"[:300]
            state = self.consents.get((key, channel))
            now = self.store.now
            if value:
                if state is None:
                    self.new_consents.append(
                        (key, channel, CONSENT_PURPOSE, True, proof, now, None, None)
                    )
                    self.consents[(key, channel)] = _ConsentState(True)
                    self.report.consents_granted += 1
                elif not state.active and row is not None:
                    self._note(row, "consent_revoked_kept")
            elif state is None:
                self.new_consents.append(
                    (key, channel, CONSENT_PURPOSE, False, proof, now, now, _REFUSED_IN_FILE)
                )
                self.consents[(key, channel)] = _ConsentState(False)
                self.report.consents_revoked += 1
            elif state.active:
                self.revocations.append((key, channel))
                state.active = False
                self.report.consents_revoked += 1

    def _note(self, row: int, code: str) -> None:
        for result in reversed(self.report.rows):
            if result.row == row:
                result.notes.append(code)
                return


_REFUSED_IN_FILE = "autorización NO en el archivo importado"


async def import_file(
    sessionmaker: async_sessionmaker[AsyncSession],
    campaign_id: int,
    path: Path | str,
    mapping: ColumnMapping | None = None,
    *,
    now: datetime | None = None,
    progress: ProgressCallback | None = None,
    options: CleaningOptions | None = None,
    assume_consent: str | None = None,
    batch_size: int = 5000,
    created_by: int | None = None,
    limits: XlsxLimits | None = None,
    job_id: str | None = None,
    postgres_staging: bool = True,
) -> ImportReport:
    """Import a CSV/XLSX lead list into a campaign; returns the per-row :class:`ImportReport`.

    ``assume_consent``: proof text (e.g. "habeas data firmado en taller") used to grant voice
    and WhatsApp consent to people whose row has no authorisation value; without it only the
    file's authorisation columns create consents. Raises :class:`ImportFileError`,
    :class:`MappingError` or :class:`CampaignNotFound`; nothing is written in those cases.

    ``batch_size``: groups (leads) written per transaction. Each transaction rewrites the
    index pages it touched (``leads``, ``phones`` and ``consents`` have random-key indexes),
    so bigger batches are much cheaper per row; 5,000 keeps one SQLite write lock under
    about a second.

    ``limits``: what the file may unpack to (:class:`XlsxLimits`). ``job_id``: the API's
    background job, recorded on the batch in the same transaction, so the job's state can
    be read from the database.

    ``postgres_staging``: on PostgreSQL, write each batch through temporary staging tables
    (``COPY`` + set-based statements, pipelined with building the next batch). False: the
    direct path (``COPY`` straight into the tables, one batch after the other), kept as the
    reference the staging path is tested against.
    """
    with _gc_paused():
        return await _import(
            sessionmaker,
            campaign_id,
            path,
            mapping,
            now=now,
            progress=progress,
            options=options,
            assume_consent=assume_consent,
            batch_size=batch_size,
            created_by=created_by,
            limits=limits,
            job_id=job_id,
            postgres_staging=postgres_staging,
        )


async def _import(
    sessionmaker: async_sessionmaker[AsyncSession],
    campaign_id: int,
    path: Path | str,
    mapping: ColumnMapping | None,
    *,
    now: datetime | None,
    progress: ProgressCallback | None,
    options: CleaningOptions | None,
    assume_consent: str | None,
    batch_size: int,
    created_by: int | None,
    limits: XlsxLimits | None = None,
    job_id: str | None = None,
    postgres_staging: bool = True,
) -> ImportReport:
    started = time.perf_counter()
    source = Path(path)
    stamp = now or datetime.now(UTC)
    if stamp.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    opts = options or CleaningOptions()
    column_mapping = mapping or ColumnMapping()
    await resolve_campaign(sessionmaker, campaign_id)
    recovery = await _recovery_count(sessionmaker, campaign_id, stamp)

    parsed = await asyncio.to_thread(
        _read_and_clean, source, column_mapping, opts, progress, limits
    )
    timings = {"read_clean": time.perf_counter() - started}
    report = ImportReport(
        campaign_id=campaign_id,
        batch_id=None,
        filename=source.name,
        sha256=parsed.sha256,
        file_format=parsed.file_format,
        encoding=parsed.encoding,
        delimiter=parsed.delimiter,
        mapping=parsed.mapping,
        recovery=recovery,
    )

    mark = time.perf_counter()
    async with sessionmaker() as session:
        bind = session.get_bind()
        store = _Store.for_dialect(bind.dialect, stamp)
        database = _sqlite_file(bind.engine.url) if isinstance(store, _SqliteStore) else None
        existing = await _load_existing(session, campaign_id)
        groups = group_rows(parsed.rows, existing)
        # unsorted: the lookups match sets of values, in any order
        numbers = list({p.e164 for g in groups for r in g.rows for p in r.phones})
        dnc = await _load_dnc(session, numbers, stamp)
        ids = {r.national_id for g in groups for r in g.rows if r.national_id}
        ids.update(e.national_id for g in groups if (e := g.existing) and e.national_id)
        ids.update(p for g in groups if (e := g.existing) for p in e.phones)
        consents = await _load_consents(session, list(ids.union(numbers)))
    revoked_voice = {k for (k, ch), st in consents.items() if ch == _VOICE and not st.active}
    by_key = {
        (f"id:{e.national_id}" if e.national_id else f"tel:{(e.phones + e.match_phones)[0]}"): e
        for e in existing
        if e.national_id or e.phones or e.match_phones
    }
    timings["lookup_group"] = time.perf_counter() - mark
    decide_s = 0.0

    def decide(chunk: Sequence[Group]) -> list[tuple[Group, GroupDecision]]:
        nonlocal decide_s
        begun = time.perf_counter()
        out: list[tuple[Group, GroupDecision]] = []
        for group in chunk:
            decision = decide_group(group, dnc, revoked_voice, opts)
            if group.existing is None and decision.dedupe_key in by_key:
                group.existing = by_key[decision.dedupe_key]  # same key, no shared phone/id left
                decision = decide_group(group, dnc, revoked_voice, opts)
            out.append((group, decision))
        decide_s += time.perf_counter() - begun
        return out

    async with sessionmaker.begin() as session:
        batch = ImportBatch(
            campaign_id=campaign_id,
            filename=source.name[:300],
            sha256=parsed.sha256,
            rows_total=len(parsed.rows),
            created_at=stamp,
            created_by=created_by,
            summary={"status": "running"},
            job_id=job_id,
        )
        session.add(batch)
        await session.flush()
        report.batch_id = batch.id
        next_id = (await session.scalar(sa.select(sa.func.max(Lead.id))) or 0) + 1
        staging: _PgStaging | None = None
        if postgres_staging and isinstance(store, _PostgresStore):
            oid = await _PgStaging.sequence_oid(await session.connection())
            staging = _PgStaging(store, _Writer.revoked_reason_for(source.name), oid)
    assert report.batch_id is not None

    mark = time.perf_counter()
    writer = _Writer(
        store,
        campaign_id,
        report.batch_id,
        source.name,
        stamp,
        consents,
        assume_consent,
        report,
    )
    total = len(groups)
    done = 0
    thread = (
        _SqliteThread(database, store, writer.revoked_reason)
        if database is not None and isinstance(store, _SqliteStore)
        else None
    )
    in_flight: tuple[concurrent.futures.Future[int], _Batch] | None = None
    # PostgreSQL: the batches written through the staging tables and not yet counted, oldest
    # first; at most two (one applied by the server, the next copied and waiting for it).
    staged: list[tuple[asyncio.Task[None], int]] = []

    async def stage(batch: _Batch) -> None:
        """Start writing a batch through the staging tables, after the one before it; return
        once its rows are copied (or the write has ended)."""
        assert staging is not None
        copied = asyncio.Event()
        after = staged[-1][0] if staged else None
        task = asyncio.create_task(staging.write(sessionmaker, batch, copied, after))
        staged.append((task, batch.groups))
        signal = asyncio.ensure_future(copied.wait())
        try:
            await asyncio.wait({task, signal}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            signal.cancel()

    async def settle(keep: int = 0) -> None:
        """Wait for the staged batches in flight but the newest ``keep``; count each once
        committed."""
        nonlocal done
        while len(staged) > keep:
            task, groups_in_task = staged[0]
            await task
            staged.pop(0)
            done += groups_in_task
            if progress is not None:
                progress("save", done, total)

    async def finish(job: tuple[concurrent.futures.Future[int], _Batch]) -> None:
        """Wait for a batch the SQLite thread is writing; count it once committed."""
        nonlocal done, in_flight
        future, written = job
        shift = await asyncio.wrap_future(future)
        in_flight = None
        if shift:  # another writer inserted leads meanwhile: the report follows the ids
            for result in written.new_results:
                if result.lead_id is not None:
                    result.lead_id += shift
        done += written.groups
        if progress is not None:
            progress("save", done, total)

    try:
        for start in range(0, total, batch_size):
            if staging is not None:
                # decided and built while the server applies the previous batch, then copied
                # while it still does (a second connection); applied once it committed
                built = writer.build(decide(groups[start : start + batch_size]), _PROVISIONAL_ID)
                await settle(keep=1)
                await stage(built)
                continue
            chunk = decide(groups[start : start + batch_size])
            if thread is None:
                async with sessionmaker.begin() as session:
                    await writer.write(session, chunk)
                done += len(chunk)
                if progress is not None:
                    progress("save", done, total)
                continue
            built = writer.build(chunk, next_id)  # while the thread writes the previous one
            next_id += built.new_leads
            if in_flight is not None:
                await finish(in_flight)
            in_flight = (thread.submit(built), built)
        if in_flight is not None:
            await finish(in_flight)
        await settle()
    except BaseException:
        if in_flight is not None:  # let the batch in flight commit or roll back first
            future, written = in_flight
            concurrent.futures.wait([future])
            if not future.cancelled() and future.exception() is None:
                done += written.groups
        for task, groups_in_task in staged:  # the same for the staged batches, in order
            await asyncio.wait({task})
            if not task.cancelled() and task.exception() is None:
                done += groups_in_task
        async with sessionmaker.begin() as session:
            await session.execute(
                sa.update(ImportBatch)
                .where(ImportBatch.id == report.batch_id)
                .values(summary={"status": "failed", "groups_written": done})
            )
        raise
    finally:
        if thread is not None:
            thread.close()
    if progress is not None and total == 0:
        progress("save", 0, 0)

    timings["decide"] = decide_s
    timings["write"] = time.perf_counter() - mark - decide_s
    report.rows.sort(key=lambda r: r.row)
    report.seconds = time.perf_counter() - started
    report.timings = {k: round(v, 3) for k, v in timings.items()}
    summary = report.summary()  # counted once: each count is a pass over every row
    summary["status"] = "done"
    excluded = sum(summary["excluded"].values())
    rejected = sum(summary["rejected"].values())
    async with sessionmaker.begin() as session:
        await session.execute(
            sa.update(ImportBatch)
            .where(ImportBatch.id == report.batch_id)
            .values(
                rows_total=summary["rows_total"],
                rows_imported=summary["imported"],
                rows_merged=summary["merged"],
                rows_rejected=excluded + rejected,
                summary=summary,
            )
        )
    log.info(
        "import_done",
        campaign_id=campaign_id,
        batch_id=report.batch_id,
        rows=summary["rows_total"],
        imported=summary["imported"],
        already_imported=summary["already_imported"],
        merged=summary["merged"],
        excluded=excluded,
        rejected=rejected,
        seconds=round(report.seconds, 2),
    )
    return report
