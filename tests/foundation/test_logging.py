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
