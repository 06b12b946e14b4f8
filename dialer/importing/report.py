"""The import's results: per-row report (CSV/XLSX file), terminal summary, progress bar.

The per-row report carries no phone numbers or national ids: the row number points back to
the user's own file, so the report can be shared and archived without personal data.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from dialer.cells import csv_row, write_only_row
from dialer.importing.cleaning import CleanLead, Group, GroupDecision, PhoneIssue, Reason

__all__ = [
    "REPORT_COLUMNS",
    "ImportReport",
    "ProgressCallback",
    "RecoveryCount",
    "RowResult",
    "RowStatus",
    "default_report_path",
    "message_for",
    "print_summary",
    "rich_progress",
    "row_results",
    "write_report",
]

#: ``progress(phase, done, total)``; phases: "read" (total None), "save" (total = groups).
ProgressCallback = Callable[[str, int, int | None], None]


class RowStatus(StrEnum):
    IMPORTED = "imported"  # a new lead (dialable)
    ALREADY_IMPORTED = "already_imported"  # matched a lead imported earlier (upsert)
    MERGED = "merged"  # duplicate folded into another row's lead
    EXCLUDED = "excluded"  # stored as a lead with status EXCLUDED (never dialed)
    REJECTED = "rejected"  # bad data: nothing stored


STATUS_ES = {
    RowStatus.IMPORTED: "importado",
    RowStatus.ALREADY_IMPORTED: "ya importado",
    RowStatus.MERGED: "fusionado",
    RowStatus.EXCLUDED: "excluido",
    RowStatus.REJECTED: "rechazado",
}

REASON_ES: dict[str, str] = {
    Reason.CORPORATE: "Cliente corporativo",
    Reason.DNC: "Todos sus teléfonos están en la lista de no llamar (DNC/RNE)",
    Reason.NO_CONSENT: "Sin autorización para llamadas (Ley 1581)",
    Reason.NO_PHONE: "Sin teléfono",
    Reason.INVALID_PHONE: "Ningún teléfono válido",
    Reason.DUPLICATE: "Registro duplicado",
    Reason.ALREADY_IMPORTED: "Ya estaba en la campaña; se actualizó",
}

NOTE_ES: dict[str, str] = {
    PhoneIssue.TOO_SHORT: "teléfono demasiado corto",
    PhoneIssue.TOO_LONG: "teléfono demasiado largo",
    PhoneIssue.INVALID: "teléfono inválido",
    PhoneIssue.REPEATED_DIGITS: "teléfono de dígitos repetidos",
    PhoneIssue.FOREIGN: "teléfono extranjero (no se marca)",
    PhoneIssue.UNSUPPORTED_TYPE: "número no marcable (01 8000, tarifa especial)",
    PhoneIssue.LETTERS: "teléfono con letras",
    PhoneIssue.LOSSY_NUMBER: "teléfono en notación científica de Excel (perdió dígitos)",
    PhoneIssue.SHARED_WITH_OTHER_PERSON: (
        "teléfono compartido con otra persona (otra cédula): se asignó a ambas; "
        "ese número se llama como máximo una vez al día"
    ),
    PhoneIssue.TOO_MANY_PHONES: "más teléfonos que el máximo; los adicionales no se marcan",
    PhoneIssue.DNC: "teléfono en lista de no llamar, descartado",
    "bad_national_id": "documento inválido",
    "bad_email": "correo inválido",
    "bad_vehicle_year": "año del vehículo inválido",
    "bad_date:last_visit_date": "fecha de última visita inválida",
    "bad_date:event_date": "fecha de compra/servicio inválida",
    "bad_consent:consent": "valor de autorización no reconocido",
    "bad_consent:consent_voice": "valor de autorización de llamadas no reconocido",
    "bad_consent:consent_whatsapp": "valor de autorización de WhatsApp no reconocido",
    "extra_cells": "la fila tiene más celdas que el encabezado",
    "consent_revoked_kept": "el cliente había revocado la autorización; se mantiene revocada",
}


@dataclass(slots=True)
class RowResult:
    row: int
    status: RowStatus
    reason: str = ""  # a Reason code, "" for imported rows
    lead_id: int | None = None
    into_row: int | None = None  # merged rows: the row whose lead they joined
    via: str | None = None  # merged rows: "id" or "phone"
    detail: str = ""  # e.g. the corporate marker found ("S.A.S.", "NIT")
    notes: list[str] = field(default_factory=list)  # warning codes (PhoneIssue values, ...)

    @property
    def message(self) -> str:
        return message_for(self)


def message_for(result: RowResult) -> str:
    """The Spanish message shown in the report for one row."""
    if result.status is RowStatus.IMPORTED:
        text = "Importado"
    elif result.status is RowStatus.MERGED:
        how = "misma cédula" if result.via == "id" else "mismo teléfono"
        text = f"Duplicado ({how}): fusionado con la fila {result.into_row}"
    else:
        text = REASON_ES.get(result.reason, result.reason)
        if result.detail:
            text += f" ({result.detail})"
    notes = [NOTE_ES.get(n, n) for n in dict.fromkeys(result.notes)]
    return text + (". Avisos: " + "; ".join(notes) if notes else "")


def _note_codes(row: CleanLead) -> list[str]:
    return [str(i) for i in row.phone_issues] + list(row.notes)


def row_results(group: Group, decision: GroupDecision, lead_id: int | None) -> list[RowResult]:
    """One :class:`RowResult` per row of a decided group (pure; ``lead_id`` None if rejected)."""
    if decision.rejected is not None or lead_id is None:
        return [
            RowResult(
                row.row,
                RowStatus.REJECTED,
                (Reason.INVALID_PHONE if row.had_phone_input else Reason.NO_PHONE).value,
                notes=_note_codes(row),
            )
            for row in group.rows
        ]
    primary = group.primary
    notes = _note_codes(primary)
    if decision.dnc_phones:
        notes.append(PhoneIssue.DNC.value)
    if decision.overflow_phones:
        notes.append(PhoneIssue.TOO_MANY_PHONES.value)
    detail = ""
    if group.existing is not None:
        status, reason = RowStatus.ALREADY_IMPORTED, Reason.ALREADY_IMPORTED.value
    elif decision.excluded is not None:
        status, reason = RowStatus.EXCLUDED, decision.excluded.value
        if decision.excluded is Reason.CORPORATE:
            detail = decision.corporate_marker or ""
    else:
        status, reason = RowStatus.IMPORTED, ""
    out = [RowResult(primary.row, status, reason, lead_id, None, None, detail, notes)]
    for row in group.rows[1:]:
        into, via = group.merged_into[row.row]
        out.append(
            RowResult(
                row.row,
                RowStatus.MERGED,
                Reason.DUPLICATE.value,
                lead_id,
                into,
                via,
                "",
                _note_codes(row),
            )
        )
    return out


@dataclass(slots=True)
class RecoveryCount:
    """Dialable people of a recovery list by their last workshop visit, as of ``as_of``.

    ``eligible``: more than ``min_days`` days since the last visit on the import date (the
    same test as the dial-time rule ``campaign_start``); ``not_yet``: a visit within that
    time (they become eligible later); ``no_visit_date``: no usable date (never dialed).
    """

    as_of: date
    min_days: int
    eligible: int = 0
    not_yet: int = 0
    no_visit_date: int = 0

    def add(self, last_visit: date | None) -> None:
        if last_visit is None:
            self.no_visit_date += 1
        elif (self.as_of - last_visit).days > self.min_days:
            self.eligible += 1
        else:
            self.not_yet += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "min_days_since_visit": self.min_days,
            "eligible": self.eligible,
            "not_yet": self.not_yet,
            "no_visit_date": self.no_visit_date,
        }


@dataclass(slots=True)
class ImportReport:
    """What an import did. ``rows`` holds one :class:`RowResult` per data row, in file order."""

    campaign_id: int
    batch_id: int | None
    filename: str
    sha256: str
    file_format: str
    encoding: str | None
    delimiter: str | None
    mapping: dict[str, str]  # original header -> field ("extra" when unmapped)
    rows: list[RowResult] = field(default_factory=list)
    leads_created: int = 0
    leads_updated: int = 0
    phones_added: int = 0
    phones_dropped_dnc: int = 0
    consents_granted: int = 0
    consents_revoked: int = 0
    #: People (one per group of duplicate rows), apart from rows: a duplicate row of an
    #: excluded or rejected person counts once, under that person's reason.
    people_new: int = 0  # new dialable leads
    people_updated: int = 0  # leads imported earlier, matched again
    people_excluded: Counter[str] = field(default_factory=Counter)  # reason -> people
    people_rejected: Counter[str] = field(default_factory=Counter)  # reason -> people
    #: Recovery campaigns (recuperación de clientes): the indicator's denominator as of the
    #: import date (GSC-PRO-04); None for other campaign types.
    recovery: RecoveryCount | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds
    report_path: Path | None = None

    @property
    def rows_total(self) -> int:
        return len(self.rows)

    def _count(self, status: RowStatus) -> int:
        return sum(1 for r in self.rows if r.status is status)

    @property
    def imported(self) -> int:
        return self._count(RowStatus.IMPORTED)

    @property
    def already_imported(self) -> int:
        return self._count(RowStatus.ALREADY_IMPORTED)

    @property
    def merged(self) -> int:
        return self._count(RowStatus.MERGED)

    @property
    def excluded(self) -> dict[str, int]:
        return dict(Counter(r.reason for r in self.rows if r.status is RowStatus.EXCLUDED))

    @property
    def rejected(self) -> dict[str, int]:
        return dict(Counter(r.reason for r in self.rows if r.status is RowStatus.REJECTED))

    @property
    def excluded_total(self) -> int:
        return self._count(RowStatus.EXCLUDED)

    @property
    def rejected_total(self) -> int:
        return self._count(RowStatus.REJECTED)

    @property
    def people_total(self) -> int:
        return (
            self.people_new
            + self.people_updated
            + sum(self.people_excluded.values())
            + sum(self.people_rejected.values())
        )

    def rows_by_result(self) -> dict[str, int]:
        counts = Counter(r.status.value for r in self.rows)
        return {status.value: counts.get(status.value, 0) for status in RowStatus}

    def people(self) -> dict[str, Any]:
        return {
            "total": self.people_total,
            "new": self.people_new,
            "updated": self.people_updated,
            "excluded": dict(sorted(self.people_excluded.items())),
            "rejected": dict(sorted(self.people_rejected.items())),
        }

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts (stored in ImportBatch.summary; no personal data).

        ``rows`` counts rows by result; ``people`` counts people (a group of duplicate rows
        is one person); ``recovery`` (recovery campaigns only) the people eligible as of the
        import date. The flat row keys (``imported``, ``merged``...) are kept for old readers.
        """
        return {
            "rows": {"total": self.rows_total, **self.rows_by_result()},
            "people": self.people(),
            "recovery": self.recovery.to_dict() if self.recovery is not None else None,
            "rows_total": self.rows_total,
            "imported": self.imported,
            "already_imported": self.already_imported,
            "merged": self.merged,
            "excluded": self.excluded,
            "rejected": self.rejected,
            "leads_created": self.leads_created,
            "leads_updated": self.leads_updated,
            "phones_added": self.phones_added,
            "phones_dropped_dnc": self.phones_dropped_dnc,
            "consents_granted": self.consents_granted,
            "consents_revoked": self.consents_revoked,
            "format": self.file_format,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "unmapped_columns": [h for h, f in self.mapping.items() if f == "extra"],
            "rejected_rows": [
                [r.row, r.reason] for r in self.rows if r.status is RowStatus.REJECTED
            ],
        }


REPORT_COLUMNS = (
    "fila",
    "estado",
    "motivo",
    "mensaje",
    "lead_id",
    "fusionado_con_fila",
    "avisos",
)


def _report_rows(report: ImportReport) -> Iterator[list[Any]]:
    for r in report.rows:
        yield [
            r.row,
            STATUS_ES[r.status],
            r.reason,
            r.message,
            r.lead_id if r.lead_id is not None else "",
            r.into_row if r.into_row is not None else "",
            ",".join(dict.fromkeys(r.notes)),
        ]


def default_report_path(source: Path) -> Path:
    """``clientes.csv`` -> ``clientes.reporte.csv`` next to the input (XLSX for XLSX input)."""
    suffix = ".xlsx" if source.suffix.lower() == ".xlsx" else ".csv"
    return source.with_name(f"{source.stem}.reporte{suffix}")


def write_report(report: ImportReport, path: Path) -> Path:
    """Write the per-row report as CSV (UTF-8 with BOM, opens cleanly in Excel) or XLSX."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".xlsx":
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("Reporte")
        sheet.append(write_only_row(sheet, REPORT_COLUMNS))
        for values in _report_rows(report):
            sheet.append(write_only_row(sheet, values))
        workbook.save(path)
    else:
        with path.open("w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.writer(fh, delimiter=";")
            writer.writerow(csv_row(REPORT_COLUMNS))
            writer.writerows(csv_row(values) for values in _report_rows(report))
    report.report_path = path
    return path


def print_summary(report: ImportReport, console: Console) -> None:
    """The terminal summary table (Spanish)."""
    table = Table(title=f"Importación: {report.filename} · filas", show_lines=False)
    table.add_column("Resultado")
    table.add_column("Motivo")
    table.add_column("Filas", justify="right")
    table.add_row("[green]importados[/]", "", str(report.imported))
    if report.already_imported:
        table.add_row("[cyan]ya importados[/]", "actualizados", str(report.already_imported))
    table.add_row("[blue]fusionados[/]", REASON_ES[Reason.DUPLICATE], str(report.merged))
    for reason, count in sorted(report.excluded.items()):
        table.add_row("[yellow]excluidos[/]", REASON_ES.get(reason, reason), str(count))
    for reason, count in sorted(report.rejected.items()):
        table.add_row("[red]rechazados[/]", REASON_ES.get(reason, reason), str(count))
    table.add_section()
    table.add_row("[bold]total[/]", "", f"[bold]{report.rows_total}[/]")
    console.print(table)
    people = Table(title="Personas (filas duplicadas = una persona)", show_lines=False)
    people.add_column("Resultado")
    people.add_column("Motivo")
    people.add_column("Personas", justify="right")
    people.add_row("[green]nuevas[/]", "", str(report.people_new))
    people.add_row("[cyan]actualizadas[/]", "ya estaban en la campaña", str(report.people_updated))
    for reason, count in sorted(report.people_excluded.items()):
        people.add_row("[yellow]excluidas[/]", REASON_ES.get(reason, reason), str(count))
    for reason, count in sorted(report.people_rejected.items()):
        people.add_row("[red]rechazadas[/]", REASON_ES.get(reason, reason), str(count))
    people.add_section()
    people.add_row("[bold]total[/]", "", f"[bold]{report.people_total}[/]")
    console.print(people)
    recovery = report.recovery
    if recovery is not None:
        console.print(
            f"Recuperación de clientes al {recovery.as_of.isoformat()}: "
            f"[bold]{recovery.eligible}[/] personas elegibles (más de {recovery.min_days} días "
            f"sin visitar el taller) · aún no: {recovery.not_yet} · sin fecha de última "
            f"visita: {recovery.no_visit_date}. Es el denominador del indicador (GSC-PRO-04)."
        )
    console.print(
        f"Teléfonos agregados: {report.phones_added} · descartados por DNC: "
        f"{report.phones_dropped_dnc} · autorizaciones: +{report.consents_granted} / "
        f"revocadas {report.consents_revoked} · {duration_es(report.seconds, report.rows_total)}"
    )
    if report.report_path is not None:
        console.print(f"Reporte por fila: [bold]{report.report_path}[/]")


def duration_es(seconds: float, rows: int) -> str:
    """Duration and rate in es-CO, e.g. ``2,4 s (41.667 filas/s)``; none under 0,1 s."""
    if seconds < 0.1:
        return "menos de 0,1 s"
    rate = f"{rows / seconds:,.0f}".replace(",", ".")
    return f"{seconds:.1f} s ({rate} filas/s)".replace(".", ",", 1)


@contextmanager
def rich_progress(console: Console) -> Iterator[ProgressCallback]:
    """A rich progress bar driven by :data:`ProgressCallback` calls."""
    labels = {"read": "Leyendo y limpiando filas", "save": "Guardando leads"}
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        tasks: dict[str, Any] = {}

        def callback(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(labels.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield callback
