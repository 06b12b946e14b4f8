"""Pure cleaning rules: phones, names, ids, dates, corporate detection, grouping, decisions."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.importing.cleaning import (
    CleaningOptions,
    CleanLead,
    CleanPhone,
    ExistingLead,
    PhoneIssue,
    PhoneKind,
    Reason,
    clean_row,
    corporate_marker,
    decide_group,
    group_rows,
    normalize_id,
    normalize_name,
    normalize_phone,
    parse_bool,
    parse_date,
    parse_phone_cell,
)
from dialer.importing.mapping import ColumnMapping, LeadField, MappedRow, normalize_header
from dialer.importing.report import RowStatus, row_results

M, L = PhoneKind.MOBILE, PhoneKind.LANDLINE


@pytest.mark.parametrize(
    ("raw", "e164", "kind"),
    [
        ("3001234567", "+573001234567", M),
        ("300 123 4567", "+573001234567", M),
        ("300-123-4567", "+573001234567", M),
        ("300.123.4567", "+573001234567", M),
        ("+57 300 123 4567", "+573001234567", M),
        ("573001234567", "+573001234567", M),
        ("0057 3001234567", "+573001234567", M),
        ("3001234567.0", "+573001234567", M),  # Excel float as text
        ("3.001234567E+09", "+573001234567", M),  # Excel scientific, every digit kept
        ("Cel: 310 123 4567", "+573101234567", M),
        # Pre-2021 landlines -> 60X (Tunja / Duitama: indicator 8 -> 608)
        ("7401234", "+576087401234", L),
        ("740 1234", "+576087401234", L),
        ("(8) 7401234", "+576087401234", L),
        ("8 7401234", "+576087401234", L),
        ("098 7401234", "+576087401234", L),
        ("03 8 7401234", "+576087401234", L),
        ("08 7401234", "+576087401234", L),
        ("57 8 7401234", "+576087401234", L),
        ("(1) 3456789", "+576013456789", L),  # Bogotá
        ("(4) 4441234", "+576044441234", L),  # Medellín
        ("(2) 5551234", "+576025551234", L),  # Cali
        ("(5) 3601234", "+576053601234", L),  # Barranquilla
        ("(6) 8801234", "+576068801234", L),  # Manizales
        ("(7) 6301234", "+576076301234", L),  # Bucaramanga
        ("608 740 1234", "+576087401234", L),
        ("+57 601 3456789", "+576013456789", L),
        ("601 3456789 ext 123", "+576013456789", L),
        ("7401234 Ext. 12", "+576087401234", L),
    ],
)
def test_phone_normalisation(raw: str, e164: str, kind: PhoneKind) -> None:
    assert normalize_phone(raw) == CleanPhone(e164, kind)


@pytest.mark.parametrize(
    ("raw", "issue"),
    [
        ("123", PhoneIssue.TOO_SHORT),
        ("31234", PhoneIssue.TOO_SHORT),
        ("300123456789012", PhoneIssue.TOO_LONG),
        ("3000000000", PhoneIssue.REPEATED_DIGITS),
        ("6081111111", PhoneIssue.REPEATED_DIGITS),
        ("1111111", PhoneIssue.TOO_SHORT),
        ("+1 212 555 0199", PhoneIssue.FOREIGN),
        ("01 8000 123456", PhoneIssue.UNSUPPORTED_TYPE),
        ("3,00123E+09", PhoneIssue.LOSSY_NUMBER),
        ("llamar a la esposa", PhoneIssue.LETTERS),
        ("6097401234", PhoneIssue.INVALID),  # no 609 area
        ("----", PhoneIssue.INVALID),
    ],
)
def test_phone_rejections(raw: str, issue: PhoneIssue) -> None:
    assert normalize_phone(raw) is issue


@pytest.mark.parametrize("raw", ["", "  ", "N/A", "no tiene", "0", "-", "Sin teléfono"])
def test_phone_placeholders_are_blank(raw: str) -> None:
    assert normalize_phone(raw) is None
    assert parse_phone_cell(raw) == ([], [])


def test_phone_cell_with_several_numbers() -> None:
    phones, issues = parse_phone_cell("300 123 4567 / (8) 7401234; 123")
    assert [p.e164 for p in phones] == ["+573001234567", "+576087401234"]
    assert issues == [PhoneIssue.TOO_SHORT]
    assert len(parse_phone_cell("3001234567 3109876543")[0]) == 2
    assert len(parse_phone_cell("3001234567-3109876543")[0]) == 2


def test_default_landline_prefix_is_configurable() -> None:
    assert normalize_phone("3456789", "601") == CleanPhone("+576013456789", L)
    with pytest.raises(ValueError):
        CleaningOptions(default_landline_prefix="609")


@pytest.mark.parametrize(
    ("name", "marker"),
    [
        ("ALIMENTOS DEL CAMPO S.A.S.", "SAS"),
        ("Alimentos del Campo SAS", "SAS"),
        ("Transportes Duitama Ltda.", "TRANSPORTES"),
        ("Ferretería Pérez LTDA", "LTDA"),
        ("Gas Natural S.A. ESP", "S.A."),
        ("Comercial XYZ S. A.", "S.A."),
        ("Distribuciones Gómez E.U.", "DISTRIBUCIONES"),
        ("Pérez Hermanos & Cía", "CIA"),
        ("Sociedad Agrícola El Roble", "SOCIEDAD"),
        ("Empresa de Energía de Boyacá", "EMPRESA"),
        ("Corporación Autónoma Regional", "CORPORACION"),
        ("Martínez y Asociados S en C", "S EN C"),
        ("Unión Temporal Vías 2024", "UNION TEMPORAL"),
        ("José Sa", None),
        ("Sara Salas", None),
        ("Rosa Sastoque", None),
        ("Luisa Sánchez", None),
        ("Carlos A. S. Gómez", None),
        ("Pedro Sa Rodríguez", None),
        ("María Elena Ltdo", None),
    ],
)
def test_corporate_names(name: str, marker: str | None) -> None:
    assert corporate_marker(name) == marker


def test_corporate_ids() -> None:
    assert corporate_marker("Juan Pérez", id_type="NIT") == "NIT"
    assert corporate_marker("Juan Pérez", national_id="900123456") == "NIT"
    assert corporate_marker("Juan Pérez", national_id="1049612345") is None
    assert corporate_marker("Juan Pérez", national_id="52345678") is None


def test_names_ids_dates_bools() -> None:
    assert normalize_name("  JOSÉ   DE LA PEÑA ") == "José de la Peña"
    assert normalize_name("maría-josé o'neil") == "María-José O'Neil"
    assert normalize_id("001.049.612.345") == ("001049612345", None, False)
    assert normalize_id("900.123.456-7") == ("900123456", None, True)
    assert normalize_id("C.C. 1049612345") == ("1049612345", "CC", False)
    assert normalize_id("1049612345.0") == ("1049612345", None, False)
    assert normalize_id("N/A") == (None, None, False)
    assert normalize_id("0000") == (None, None, False)
    assert parse_date("15/01/2024") == date(2024, 1, 15)
    assert parse_date("2024-01-15 00:00:00") == date(2024, 1, 15)
    assert parse_date("01/15/2024") == date(2024, 1, 15)  # only readable as US
    assert parse_date("15-ene-2024") == date(2024, 1, 15)
    assert parse_date("15 de enero de 2024") == date(2024, 1, 15)
    assert parse_date("45123") == date(2023, 7, 16)  # Excel serial
    assert parse_date("31/02/2024") is None
    assert parse_date("mañana") is None
    assert [parse_bool(v) for v in ("SI", "Sí", "x", "1", "NO", "no autoriza", "tal vez")] == [
        True, True, True, True, False, False, None,
    ]  # fmt: skip


def _lead(row: int, nid: str | None, *phones: str, **kw: object) -> CleanLead:
    lead = CleanLead(row=row, national_id=nid, phones=[CleanPhone(p, M) for p in phones])
    lead.had_phone_input = bool(phones)
    for key, value in kw.items():
        setattr(lead, key, value)
    return lead


def test_grouping_is_transitive_and_respects_different_ids() -> None:
    rows = [
        _lead(2, "1", "+573001000001"),
        _lead(3, None, "+573001000001", "+573001000002"),  # phone of row 2
        _lead(4, None, "+573001000002"),  # via row 3 -> same person as row 2
        _lead(5, "9", "+573001000002", "+573001000003"),  # another id: phone shared, kept
        _lead(6, "1"),  # same id as row 2, no phone
    ]
    groups = group_rows(rows)
    assert [[r.row for r in g.rows] for g in groups] == [[2, 3, 4, 6], [5]]
    assert groups[0].merged_into == {3: (2, "phone"), 4: (2, "phone"), 6: (2, "id")}
    assert groups[1].shared == {5: ["+573001000002"]}
    assert [p.e164 for p in groups[1].rows[0].phones] == ["+573001000002", "+573001000003"]
    assert groups[1].rows[0].phone_issues == [PhoneIssue.SHARED_WITH_OTHER_PERSON]


def test_a_shared_phone_is_the_only_phone_of_both_people() -> None:
    """A household landline: two people (two ids), one phone: both kept, phone on both."""
    rows = [_lead(2, "1", "+576087401234"), _lead(3, "2", "+576087401234")]
    groups = group_rows(rows)
    assert [[r.row for r in g.rows] for g in groups] == [[2], [3]]
    decisions = [decide_group(g, set(), set()) for g in groups]
    assert [d.rejected for d in decisions] == [None, None]
    assert [[p.e164 for p in d.phones] for d in decisions] == [["+576087401234"]] * 2


def test_a_phone_shared_with_an_existing_lead_of_another_person_is_kept() -> None:
    existing = [ExistingLead(10, "1", ("+576087401234",), next_position=1)]
    groups = group_rows([_lead(2, "2", "+576087401234")], existing)
    assert groups[0].existing is None and groups[0].shared == {2: ["+576087401234"]}
    decision = decide_group(groups[0], set(), set())
    assert decision.rejected is None and [p.e164 for p in decision.phones] == ["+576087401234"]


def test_grouping_against_existing_leads() -> None:
    existing = [ExistingLead(10, "1", ("+573001000001",), next_position=1)]
    groups = group_rows([_lead(2, None, "+573001000001", "+573001000009")], existing)
    assert groups[0].existing == existing[0]
    decision = decide_group(groups[0], set(), set())
    assert [p.e164 for p in decision.phones] == ["+573001000009"]  # only the new one
    assert decision.dedupe_key == "id:1"


def test_decisions() -> None:
    group = group_rows([_lead(2, "7", "+573001000001", "+573001000002")])[0]
    dnc = decide_group(group, {"+573001000001"}, set())
    assert dnc.excluded is None and dnc.dnc_phones == ["+573001000001"]
    all_dnc = decide_group(group, {"+573001000001", "+573001000002"}, set())
    assert all_dnc.excluded is Reason.DNC and all_dnc.phones == []
    revoked = decide_group(group, set(), {"7"})
    assert revoked.excluded is Reason.NO_CONSENT
    corp = group_rows([_lead(2, None, "+573001000001", corporate="SAS", consent_voice=False)])
    both = decide_group(corp[0], set(), set())
    assert both.reasons == [Reason.CORPORATE, Reason.NO_CONSENT]
    assert both.dedupe_key == "tel:+573001000001" and both.person_key == "+573001000001"
    many = group_rows([_lead(2, "8", *[f"+57300100000{i}" for i in range(6)])])[0]
    capped = decide_group(many, set(), set(), CleaningOptions(max_phones=4))
    assert len(capped.phones) == 4 and len(capped.overflow_phones) == 2
    nothing = decide_group(group_rows([_lead(2, "5")])[0], set(), set())
    assert nothing.rejected is Reason.NO_PHONE


def test_mobile_first_ordering() -> None:
    lead = CleanLead(
        row=2,
        national_id="1",
        phones=[CleanPhone("+576087401234", L), CleanPhone("+573001234567", M)],
    )
    decision = decide_group(group_rows([lead])[0], set(), set())
    assert [p.kind for p in decision.phones] == [M, L]


HEADERS = ["Cédula", "Nombre", "Teléfono", "Celular", "Placa", "Fecha compra", "Autoriza"]
_CELL = st.one_of(
    st.text(max_size=20),
    st.from_regex(r"\+?[0-9 ().\-]{0,16}", fullmatch=True),
    st.sampled_from(["N/A", "3001234567", "(8) 7401234", "S.A.S.", "0", "SI", "NO", "45123"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_CELL, min_size=0, max_size=9), min_size=1, max_size=12))
def test_cleaning_fuzz_every_row_reported(rows: list[list[str]]) -> None:
    """Random rows go through mapping, cleaning, grouping and decisions without crashing, and
    every row ends with exactly one status; every row not imported carries a reason."""
    resolved = ColumnMapping().resolve(HEADERS)
    cleaned = [clean_row(resolved.apply(i + 2, cells)) for i, cells in enumerate(rows)]
    for lead in cleaned:
        for phone in lead.phones:
            assert re.fullmatch(r"\+57(3\d{9}|60[124-8]\d{7})", phone.e164)
    results = []
    for n, group in enumerate(group_rows(cleaned)):
        decision = decide_group(group, set(), set())
        results.extend(row_results(group, decision, None if decision.rejected else n + 1))
    assert sorted(r.row for r in results) == [lead.row for lead in cleaned]
    for result in results:
        assert result.message
        if result.status is not RowStatus.IMPORTED:
            assert result.reason


def test_mapping_defaults_and_overrides() -> None:
    assert normalize_header("  Teléfono_2 ") == "telefono 2"
    resolved = ColumnMapping().resolve(
        ["CÉDULA", "Nombres", "Apellidos", "TEL", "Celular 2", "Año Modelo", "Sede", "Color"]
    )
    assert resolved.fields == [
        LeadField.NATIONAL_ID, LeadField.FIRST_NAME, LeadField.LAST_NAME, LeadField.PHONE,
        LeadField.PHONE, LeadField.VEHICLE_YEAR, LeadField.BRANCH, None,
    ]  # fmt: skip
    row = resolved.apply(2, ["1", "ana maría", "GÓMEZ", "", "3001234567", "2019", "Tunja", "rojo"])
    assert row == MappedRow(
        2,
        {
            LeadField.NATIONAL_ID: "1",
            LeadField.FIRST_NAME: "ana maría",
            LeadField.LAST_NAME: "GÓMEZ",
            LeadField.VEHICLE_YEAR: "2019",
            LeadField.BRANCH: "Tunja",
        },
        ["3001234567"],
        [],
        {"Color": "rojo"},
    )
    assert clean_row(row).name == "Ana María Gómez"
    custom = ColumnMapping.from_dict({"Color": "ignore", "TEL": "email"})
    assert custom.field_for("color") is LeadField.IGNORE
    assert custom.field_for("Tel") is LeadField.EMAIL
