"""Lead import benchmark: a realistic 100k-row dealer export, end to end.

    .venv/bin/python scripts/bench_import.py               # 100k rows, SQLite (+ PostgreSQL)
    .venv/bin/python scripts/bench_import.py --rows 20000  # smaller run while iterating
    .venv/bin/python scripts/bench_import.py --pg --json   # + a throw-away PostgreSQL DB, JSON

``--json``: progress and tables go to stderr; the last line of stdout is ONE JSON object:
``rows``, ``seconds``, ``cpu_seconds``, ``rows_per_s``, ``backend`` and
``server_cpu_seconds`` of the last run (PostgreSQL when it ran), ``runs`` (one such object
per backend), ``floor_seconds``, ``floor_cpu_seconds``, ``load_avg`` (1-minute load before and
after) and ``goal_seconds``. ``--pg`` creates a throw-away database on the local PostgreSQL
(``--pg-admin-url``, default ``postgresql://postgres@127.0.0.1:5432/test``) and drops it after.
``--pg-direct`` also runs PostgreSQL's direct path (``COPY`` straight into the tables, backend
``postgresql-direct``) before the default staging path (backend ``postgresql``).

Server CPU (``server_cpu_seconds``): the CPU time (utime + stime from ``/proc/<pid>/stat``)
of the PostgreSQL backends that served the import's own connections (their pids from asyncpg's
``get_server_pid()``, the same as ``pg_backend_pid()``), so other clients of a shared server
are not counted; background processes (WAL writer, checkpointer, autovacuum) are not either.
``server_cpu_all_seconds``: every ``postgres`` process on the machine over the same time.

Generates a seeded semicolon/Latin-1 CSV like the dealer system's export (old and new landline
formats, +57 prefixes, Excel floats, duplicates by id and phone, corporate rows, invalid
numbers, DNC numbers), then imports it with ``import_file`` into a fresh SQLite database and,
when ``MARCADOR_DATABASE__URL`` is set, into that PostgreSQL database (in a throw-away
campaign that is deleted afterwards). It prints rows, seconds and rows/s per backend, and the
ratio against a floor measured in the same run: reading the same CSV with ``csv`` and
normalising every phone cell with ``phonenumbers`` alone, no cleaning and no database.
Goal (issue 4): 100k rows in <= 20 s.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dialer.db.engine import make_engine, make_sessionmaker  # noqa: E402
from dialer.db.migrate import upgrade  # noqa: E402
from dialer.db.models import Campaign, Consent, DncEntry, DncSource  # noqa: E402
from dialer.domain.outcomes import CampaignType  # noqa: E402
from dialer.importing import ImportReport, import_file  # noqa: E402
from dialer.logging import configure_logging  # noqa: E402
from dialer.settings import load_settings  # noqa: E402

GOAL_SECONDS = 20.0
NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
HEADER = [
    "Código", "Cédula", "Nombre", "Teléfono", "Celular", "Placa", "Marca", "Modelo", "Año",
    "Sede", "Fecha última visita", "Habeas data", "Observación",
]  # fmt: skip
FIRST = ["JOSÉ", "MARÍA", "LUIS", "ANA", "CARLOS", "SANDRA", "JORGE", "PAOLA", "ANDRÉS", "LUZ",
         "DIEGO", "ÁNGELA", "FABIO", "NUBIA", "ÓSCAR", "YOLANDA", "IVÁN", "GLORIA"]  # fmt: skip
LAST = ["PEÑA", "GÓMEZ", "RODRÍGUEZ", "MARTÍNEZ", "LÓPEZ", "SUÁREZ", "PÉREZ", "CASTRO",
        "VARGAS", "ROJAS", "MORENO", "NIÑO", "SALAS", "BECERRA", "CUERVO", "DE LA TORRE",
        "SA"]  # fmt: skip
COMPANIES = ["TRANSPORTES {} S.A.S.", "INVERSIONES {} LTDA", "COMERCIALIZADORA {} SAS",
             "{} & CIA S. EN C.", "DISTRIBUIDORA {} S.A."]  # fmt: skip
BRANDS = [("Chevrolet", "Spark GT"), ("Renault", "Logan"), ("Mazda", "CX-30"), ("Kia", "Picanto"),
          ("Toyota", "Hilux"), ("Nissan", "Versa")]  # fmt: skip
DNC_COUNT = 1000


MOBILE_PREFIXES = [*(f"30{d}" for d in "01245"), *(str(p) for p in range(310, 325)), "350", "351"]


def _mobile(rng: random.Random) -> str:
    return f"{rng.choice(MOBILE_PREFIXES)}{rng.randint(1000000, 9999999)}"


def _landline(rng: random.Random) -> str:
    return str(rng.randint(7100000, 7999999))


def _format_mobile(rng: random.Random, number: str) -> str:
    style = rng.random()
    if style < 0.45:
        return number
    if style < 0.6:
        return f"{number[:3]} {number[3:6]} {number[6:]}"
    if style < 0.7:
        return f"+57 {number}"
    if style < 0.78:
        return f"57{number}"
    if style < 0.86:
        return f"{number}.0"  # Excel float exported as text
    if style < 0.93:
        return f"{number[:3]}-{number[3:6]}-{number[6:]}"
    return f"0057{number}"


def _format_landline(rng: random.Random, seven: str) -> str:
    style = rng.random()
    if style < 0.3:
        return seven  # bare local Tunja/Duitama number
    if style < 0.5:
        return f"(8) {seven}"
    if style < 0.6:
        return f"098 {seven}"
    if style < 0.7:
        return f"03 8 {seven}"
    if style < 0.9:
        return f"608 {seven[:3]} {seven[3:]}"
    return f"{seven} ext 12"


def generate(path: Path, rows: int, seed: int = 4) -> list[str]:
    """Write the CSV; return the E.164 numbers to put on the DNC list."""
    rng = random.Random(seed)
    people: list[dict[str, str]] = []
    dnc: list[str] = []
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";")
    writer.writerow(HEADER)
    start = date(2019, 1, 1)
    for index in range(rows):
        roll = rng.random()
        if people and roll < 0.05:  # duplicate of an earlier person (same id or same phone)
            person = dict(rng.choice(people))
            if rng.random() < 0.5:
                person["Cédula"] = ""
            person["Observación"] = "registro repetido"
        else:
            mobile = _mobile(rng)
            landline = _landline(rng)
            corporate = roll > 0.98
            brand, model = rng.choice(BRANDS)
            if corporate:
                name = rng.choice(COMPANIES).format(rng.choice(LAST))
                national_id = f"{rng.randint(800000000, 901999999)}-{rng.randint(0, 9)}"
            else:
                name = f"{rng.choice(FIRST)} {rng.choice(LAST)} {rng.choice(LAST)}"
                national_id = str(
                    rng.randint(1000000, 99999999)
                    if rng.random() < 0.6
                    else rng.randint(1000000000, 1099999999)
                )
                if rng.random() < 0.03:
                    national_id = national_id.zfill(12)
            mobile_cell = _format_mobile(rng, mobile)
            if rng.random() < 0.03:
                mobile_cell = rng.choice(["123", "3000000000", "N/A", "no tiene", "31234"])
            person = {
                "Código": f"C{index:07d}",
                "Cédula": national_id,
                "Nombre": name,
                "Teléfono": _format_landline(rng, landline) if rng.random() < 0.6 else "",
                "Celular": mobile_cell,
                "Placa": f"{rng.choice('BCDFGHJ')}{rng.choice('AEIOU')}{rng.choice('KLMNPRST')}"
                f"{rng.randint(100, 999)}",
                "Marca": brand,
                "Modelo": model,
                "Año": str(rng.randint(2008, 2025)),
                "Sede": rng.choice(["Tunja", "Duitama"]),
                "Fecha última visita": (start + timedelta(days=rng.randint(0, 2400))).strftime(
                    "%d/%m/%Y"
                ),
                "Habeas data": rng.choice(["SI", "SI", "SI", "Sí", "NO", ""]),
                "Observación": "",
            }
            people.append(person)
            if len(dnc) < DNC_COUNT and rng.random() < 0.02:
                dnc.append("+57" + mobile)
        writer.writerow([person[h] for h in HEADER])
    path.write_bytes(buf.getvalue().encode("cp1252"))
    return dnc


def baseline(path: Path) -> tuple[float, float]:
    """The floor: csv parsing plus phonenumbers on every phone cell, nothing else."""
    started, cpu_started = time.perf_counter(), time.process_time()
    with path.open("r", encoding="cp1252", newline="") as fh:
        reader = csv.reader(fh, delimiter=";")
        header = next(reader)
        columns = [header.index("Teléfono"), header.index("Celular")]
        valid = 0
        for row in reader:
            for col in columns:
                cell = row[col]
                if not cell:
                    continue
                try:
                    number = phonenumbers.parse(cell, "CO")
                except phonenumbers.NumberParseException:
                    continue
                valid += phonenumbers.is_valid_number(number)
    return time.perf_counter() - started, time.process_time() - cpu_started


@dataclass
class Run:
    backend: str
    seconds: float
    cpu: float  # CPU seconds of this process (all threads): contention-independent
    report: ImportReport
    server_cpu: float | None = None  # the import's PostgreSQL backends, when /proc shows them
    server_cpu_all: float | None = None  # every postgres process on the machine
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after


def postgres_cpu() -> float | None:
    """CPU seconds used so far by the local ``postgres`` processes (Linux /proc), or None.

    Counts every backend of the server, so other clients' work during the run is included.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total, found = 0, False
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm_end = stat.rfind(")")
        if stat[stat.find("(") + 1 : comm_end] != "postgres":
            continue
        fields = stat[comm_end + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)
        found = True
    return total / ticks if found else None


def process_cpu(pid: int) -> float | None:
    """CPU seconds (utime + stime) of one process from /proc, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_import(
    url: str, path: Path, dnc: list[str], backend: str, *, staging: bool = True
) -> Run:
    settings = load_settings(database={"url": url})
    engine = make_engine(settings, url)
    sessionmaker = make_sessionmaker(engine)
    backend_pids: set[int] = set()  # the server processes behind this engine's connections
    if engine.dialect.name == "postgresql":

        @sa.event.listens_for(engine.sync_engine, "connect")
        def remember_pid(dbapi_connection: Any, _record: Any) -> None:
            backend_pids.add(dbapi_connection.driver_connection.get_server_pid())

    def backends_cpu() -> dict[int, float]:
        return {pid: cpu for pid in backend_pids if (cpu := process_cpu(pid)) is not None}

    name = f"bench-import-{os.getpid()}-{backend}"
    try:
        async with sessionmaker.begin() as s:
            campaign = Campaign(name=name, type=CampaignType.RECUPERACION)
            s.add(campaign)
            existing = set(
                await s.scalars(
                    sa.select(DncEntry.e164).where(
                        DncEntry.e164.in_(dnc), DncEntry.source == DncSource.RNE
                    )
                )
            )
            s.add_all(
                DncEntry(e164=e, source=DncSource.RNE, reason="bench_import", added_at=NOW)
                for e in dnc
                if e not in existing
            )
            await s.flush()
            campaign_id = campaign.id
        server_started = postgres_cpu() if backend != "sqlite" else None
        backends_started = backends_cpu()
        load_before = os.getloadavg()[0]
        started, cpu_started = time.perf_counter(), time.process_time()
        report = await import_file(
            sessionmaker, campaign_id, path, now=NOW, postgres_staging=staging
        )
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        load = (load_before, os.getloadavg()[0])
        backends_ended = backends_cpu()  # before dispose(): the backends exit with it
        server_ended = postgres_cpu() if server_started is not None else None
        server_all = (
            server_ended - server_started
            if server_started is not None and server_ended is not None
            else None
        )
        server_cpu = (
            sum(cpu - backends_started.get(pid, 0.0) for pid, cpu in backends_ended.items())
            if backend_pids and backends_ended
            else None
        )
        if backend != "sqlite":  # shared database: remove what the run created
            async with sessionmaker.begin() as s:
                await s.execute(sa.delete(Campaign).where(Campaign.id == campaign_id))
                await s.execute(
                    sa.delete(Consent).where(Consent.proof.like(f"import:{path.name}:%"))
                )
                await s.execute(sa.delete(DncEntry).where(DncEntry.reason == "bench_import"))
        return Run(backend, seconds, cpu, report, server_cpu, server_all, load)
    finally:
        await engine.dispose()


async def pg_admin(admin_url: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def run_json(run: Run, rows: int) -> dict[str, object]:
    return {
        "backend": run.backend,
        "rows": rows,
        "seconds": round(run.seconds, 3),
        "cpu_seconds": round(run.cpu, 3),
        "rows_per_s": round(rows / run.seconds, 1) if run.seconds > 0 else None,
        "server_cpu_seconds": None if run.server_cpu is None else round(run.server_cpu, 3),
        "server_cpu_source": None if run.server_cpu is None else "backend_pids",
        "server_cpu_all_seconds": (
            None if run.server_cpu_all is None else round(run.server_cpu_all, 3)
        ),
        "run_load_avg": [round(run.load[0], 2), round(run.load[1], 2)],
        "phases": run.report.timings,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout's last line")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run")
    parser.add_argument("--pg", action="store_true", help="also a throw-away PostgreSQL database")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--pg-direct",
        action="store_true",
        help="also PostgreSQL's direct path (COPY straight into the tables), before the default",
    )
    args = parser.parse_args(argv)
    # one line per row, also when piped to a file; with --json everything human goes to stderr
    console = Console(width=120, stderr=args.json)
    configure_logging()  # structured logs on stderr, never on the JSON line's stdout
    load_before = os.getloadavg()[0]
    pg_db = f"bench_import_{os.getpid()}" if args.pg else None
    with tempfile.TemporaryDirectory(prefix="bench_import_") as tmp:
        tmp_dir = Path(tmp)
        path = tmp_dir / f"bench_clientes_{args.rows}.csv"
        dnc = generate(path, args.rows, args.seed)
        floor, floor_cpu = min(baseline(path) for _ in range(2))
        runs: list[Run] = []
        if not args.no_sqlite:
            sqlite_url = f"sqlite+aiosqlite:///{tmp_dir / 'bench.db'}"
            upgrade(sqlite_url)
            runs.append(asyncio.run(run_import(sqlite_url, path, dnc, "sqlite")))
        pg_url = os.environ.get("MARCADOR_DATABASE__URL")
        if pg_db is not None:
            admin = sa.make_url(args.pg_admin_url)
            asyncio.run(pg_admin(args.pg_admin_url, f'CREATE DATABASE "{pg_db}"'))
            pg_url = admin.set(drivername="postgresql+asyncpg", database=pg_db).render_as_string(
                hide_password=False
            )
        try:
            if pg_url and not pg_url.startswith("sqlite"):
                upgrade(pg_url)
                if args.pg_direct:
                    direct = run_import(pg_url, path, dnc, "postgresql-direct", staging=False)
                    runs.append(asyncio.run(direct))
                runs.append(asyncio.run(run_import(pg_url, path, dnc, "postgresql")))
        finally:
            if pg_db is not None:
                drop = f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)'
                asyncio.run(pg_admin(args.pg_admin_url, drop))
        size_mb = path.stat().st_size / 1e6
    if not runs:
        parser.error("nothing to run: --no-sqlite needs --pg or MARCADOR_DATABASE__URL")

    table = Table(title=f"Lead import: {args.rows:,} rows ({size_mb:.1f} MB CSV, seed {args.seed})")
    columns = (
        "run",
        "rows",
        "seconds",
        "cpu s",
        "server cpu s",
        "rows/s",
        "x floor",
        "cpu x floor",
        f"goal <= {GOAL_SECONDS:.0f} s",
    )
    for col in columns:
        table.add_column(col, justify="left" if col == "run" else "right")
    table.add_row(
        "floor: csv + phonenumbers only",
        f"{args.rows:,}",
        f"{floor:.2f}",
        f"{floor_cpu:.2f}",
        "",
        f"{args.rows / floor:,.0f}",
        "1.00",
        "1.00",
        "",
    )
    for run in runs:
        table.add_row(
            f"import_file -> {run.backend}",
            f"{args.rows:,}",
            f"{run.seconds:.2f}",
            f"{run.cpu:.2f}",
            "" if run.server_cpu is None else f"{run.server_cpu:.2f}",
            f"{args.rows / run.seconds:,.0f}",
            f"{run.seconds / floor:.2f}",
            f"{run.cpu / floor_cpu:.2f}",
            "[green]ok[/]" if run.seconds <= GOAL_SECONDS * args.rows / 100_000 else "[red]slow[/]",
        )
    console.print(table)
    console.print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
        "(wall time suffers when the machine is shared; cpu s does not)"
    )
    report = runs[0].report
    if args.json:
        last = run_json(runs[-1], args.rows)
        print(
            json.dumps(
                {
                    **last,
                    "runs": [run_json(run, args.rows) for run in runs],
                    "floor_seconds": round(floor, 3),
                    "floor_cpu_seconds": round(floor_cpu, 3),
                    "goal_seconds": GOAL_SECONDS * args.rows / 100_000,
                    "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                    "cores": os.cpu_count(),
                },
                separators=(",", ":"),
            ),
            flush=True,
        )
    console.print(
        f"rows: imported {report.imported:,} · merged {report.merged:,} · excluded "
        f"{report.excluded} · rejected {report.rejected} · phones {report.phones_added:,} · "
        f"DNC phones dropped {report.phones_dropped_dnc:,}"
    )
    for run in runs:
        phases = " · ".join(f"{k} {v:.2f} s" for k, v in run.report.timings.items())
        console.print(f"{run.backend} phases: {phases}")
        if run.server_cpu is not None:
            every = "" if run.server_cpu_all is None else f", {run.server_cpu_all:.2f} cpu s"
            console.print(
                f"{run.backend} server: {run.server_cpu:.2f} cpu s in the import's backends "
                f"(/proc of their pids){every} in every postgres process (all clients)"
            )
    for run in runs:
        console.print(f"{run.backend} load average: {run.load[0]:.1f} -> {run.load[1]:.1f}")


if __name__ == "__main__":
    main()
