from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from dialer.settings import Environment, load_settings, mask_url


def test_embedded_default_needs_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("MARCADOR_DATABASE__URL", "MARCADOR_REDIS__URL"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings(data_dir=tmp_path)
    assert s.is_embedded
    assert s.asterisk.use_simulator
    assert s.database_url == f"sqlite+aiosqlite:///{(tmp_path / 'marcador.db').resolve()}"


def test_env_override_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARCADOR_API__PORT", "9123")
    monkeypatch.setenv("MARCADOR_REDIS__URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("MARCADOR_TIMEZONE", "America/Lima")
    s = load_settings()
    assert s.api.port == 9123
    assert s.redis.url == "redis://127.0.0.1:6379/3"
    assert s.timezone == "America/Lima"
    assert not s.is_embedded


def test_asterisk_servers_from_json_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MARCADOR_ASTERISK__SERVERS",
        '[{"name": "pbx1", "host": "10.0.0.5", "secret": "s3cr3t-Long", '
        '"trunk": "PJSIP/{number}@claro"}]',
    )
    s = load_settings()
    assert s.asterisk.servers[0].host == "10.0.0.5"
    assert s.asterisk.servers[0].secret.get_secret_value() == "s3cr3t-Long"
    assert not s.asterisk.use_simulator
    assert "s3cr3t-Long" not in str(s.masked())


def test_bad_env_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARCADOR_API__PORT", "not-a-port")
    with pytest.raises(ValidationError, match="port"):
        load_settings()


def test_trunk_template_must_have_number() -> None:
    with pytest.raises(ValidationError, match=r"\{number\}"):
        load_settings(
            asterisk={"servers": [{"name": "a", "host": "h", "secret": "x", "trunk": "PJSIP/x"}]}
        )


def test_placeholder_secrets_refused_in_production() -> None:
    with pytest.raises(ValidationError) as info:
        load_settings(environment=Environment.PRODUCTION)
    message = str(info.value)
    assert "MARCADOR_API__SESSION_SECRET" in message
    assert "MARCADOR_WHATSAPP__APP_SECRET" in message


def test_real_secrets_accepted_in_production() -> None:
    s = load_settings(
        environment="production",
        api={"session_secret": "a" * 40},
        whatsapp={
            "access_token": "EAAG-real-token-value",
            "app_secret": "0123456789abcdef",
            "verify_token": "verify-7f3a9",
        },
        asterisk={"servers": [{"name": "pbx1", "host": "10.0.0.5", "secret": "Tr0ub4dor&3"}]},
    )
    assert s.environment is Environment.PRODUCTION


def test_duplicate_server_names_refused() -> None:
    server = {"name": "pbx", "host": "h", "secret": "x"}
    with pytest.raises(ValidationError, match="unique"):
        load_settings(asterisk={"servers": [server, server]})


def test_masked_hides_secrets_and_url_passwords() -> None:
    s = load_settings(
        database={"url": "postgresql+asyncpg://marcador:hunter2@db/marcador"},
        whatsapp={"access_token": "EAAG-very-secret"},
    )
    shown = str(s.masked())
    assert "hunter2" not in shown
    assert "EAAG-very-secret" not in shown
    assert "marcador:***@db/marcador" in shown
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_unknown_setting_rejected() -> None:
    with pytest.raises(ValidationError):
        load_settings(not_a_setting=1)
