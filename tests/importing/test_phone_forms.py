"""Every unambiguous Colombian phone form a dealer export contains (issue 19).

One test per form; docs/import.md lists the same forms. Each expected E.164 is also checked
with ``phonenumbers`` itself (a valid Colombian number of the expected type).
"""

from __future__ import annotations

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType

from dialer.importing.cleaning import CleanPhone, PhoneKind, parse_phone_cell

MOBILE = "+573139281487"
BOGOTA = "+576017401234"
BOYACA = "+576087401234"

# (form id, cell as written, expected numbers in order)
FORMS: list[tuple[str, str, list[str]]] = [
    # country code, every way it is written
    ("plus57", "+573139281487", [MOBILE]),
    ("plus57_spaced", "+57 313 928 1487", [MOBILE]),
    ("bare57", "573139281487", [MOBILE]),
    ("trunk057", "0573139281487", [MOBILE]),
    ("trunk057_spaced", "057 313 928 1487", [MOBILE]),
    ("trunk057_parenthesised", "(057) 313 928 1487", [MOBILE]),
    ("trunk057_landline_old", "057 (8) 740 1234", [BOYACA]),
    ("trunk057_landline_60x", "0576017401234", [BOGOTA]),
    ("idd0057", "00573139281487", [MOBILE]),
    ("idd0057_landline_old", "0057 8 7401234", [BOYACA]),
    ("parenthesised57", "(57) 3139281487", [MOBILE]),
    ("parenthesised_plus57", "(+57) 3139281487", [MOBILE]),
    ("plus57_area1", "+57(1) 7401234", [BOGOTA]),
    ("plus57_area1_spaced", "+57 (1) 740 1234", [BOGOTA]),
    ("plus57_60x", "+57(601)7401234", [BOGOTA]),
    # separators
    ("spaces", "313 928 1487", [MOBILE]),
    ("dots", "313.928.1487", [MOBILE]),
    ("dashes", "313-928-1487", [MOBILE]),
    ("slashes", "313/928/1487", [MOBILE]),
    ("plus57_dashes", "+57-313-928-1487", [MOBILE]),
    ("landline_dots", "601.740.1234", [BOGOTA]),
    # extensions
    ("ext", "7401234 ext 12", [BOYACA]),
    ("ext_dot_capital", "(1) 7401234 Ext. 105", [BOGOTA]),
    ("x", "6017401234 x 23", [BOGOTA]),
    ("mobile_ext", "313 928 1487 ext. 5", [MOBILE]),
    # two numbers in one cell
    ("two_slash", "3101234567 / 3209876543", ["+573101234567", "+573209876543"]),
    ("two_dash", "3101234567-3209876543", ["+573101234567", "+573209876543"]),
    ("two_semicolon", "3101234567;3209876543", ["+573101234567", "+573209876543"]),
    ("two_comma", "3101234567,3209876543", ["+573101234567", "+573209876543"]),
    ("two_spaced_groups", "310 123 4567 / 320 987 6543", ["+573101234567", "+573209876543"]),
    ("mobile_and_old_landline", "3101234567 / (8) 7401234", ["+573101234567", BOYACA]),
    # old 7-digit landlines with a 1-digit area code -> 60X
    ("old_area_parenthesised", "(8) 7401234", [BOYACA]),
    ("old_area_spaced", "8 7401234", [BOYACA]),
    ("old_area_dash", "8-7401234", [BOYACA]),
    ("old_area_bogota", "(1)7401234", [BOGOTA]),
    ("old_area_medellin", "(4) 4441234", ["+576044441234"]),
    ("old_carrier_prefix", "098 7401234", [BOYACA]),
    ("old_bare_local", "7401234", [BOYACA]),
    # landlines already in 60X form
    ("landline_60x", "6087401234", [BOYACA]),
    ("landline_60x_parenthesised", "(608) 7401234", [BOYACA]),
    ("landline_60x_spaced", "608 740 1234", [BOYACA]),
    # mobiles with a leading 0 or an Excel float's trailing .0
    ("mobile_leading_zero", "03139281487", [MOBILE]),
    ("mobile_trailing_dot_zero", "3139281487.0", [MOBILE]),
    ("mobile_trailing_comma_zero", "3139281487,0", [MOBILE]),
    ("mobile_leading_zero_and_dot_zero", "03139281487.0", [MOBILE]),
]


def _phonenumbers_kind(e164: str) -> PhoneKind:
    number = phonenumbers.parse(e164, None)
    assert phonenumbers.is_valid_number(number), e164
    assert phonenumbers.region_code_for_number(number) == "CO", e164
    kind = phonenumbers.number_type(number)
    assert kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE), e164
    return PhoneKind.MOBILE if kind == PhoneNumberType.MOBILE else PhoneKind.LANDLINE


@pytest.mark.parametrize(("cell", "expected"), [f[1:] for f in FORMS], ids=[f[0] for f in FORMS])
def test_phone_form(cell: str, expected: list[str]) -> None:
    phones, issues = parse_phone_cell(cell)
    assert issues == []
    assert [p.e164 for p in phones] == expected
    for phone in phones:
        assert phone == CleanPhone(phone.e164, _phonenumbers_kind(phone.e164))


def test_forms_are_listed_in_the_docs() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "import.md").read_text("utf-8")
    missing = [cell for _, cell, _ in FORMS if f"`{cell}`" not in doc]
    assert missing == []
