from __future__ import annotations

import pytest

from dialer.logging import configure_logging, get_logger, mask_digits


def test_mask_digits() -> None:
    assert mask_digits("+573001234567") == "+**********67"
    assert mask_digits("cc 1049612345 llamó") == "cc ********45 llamó"
    assert mask_digits("attempt 42 at 2026") == "attempt 42 at 2026"


def test_logs_never_show_phones_or_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", json_logs=True)
    log = get_logger("t")
    log.info(
        "originate",
        number="+573001234567",
        secret="hunter2",
        detail={"to": "3001234567", "password": "x"},
    )
    err = capsys.readouterr().err
    assert "3001234567" not in err
    assert "hunter2" not in err
    assert '"password": "***"' in err or '"password":"***"' in err
    assert "originate" in err


def test_attempt_ids_are_not_masked_but_phones_next_to_them_are() -> None:
    """An attempt id (uuid hex) with a run of digits is not a phone: logs stay traceable."""
    from dialer.logging import mask_digits

    uid = "99b54a12345678934d419080a67dbeca"
    assert mask_digits(f"attempt={uid}") == f"attempt={uid}"
    assert mask_digits(f"{uid} +573001234567") == f"{uid} +**********67"
