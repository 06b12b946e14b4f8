"""AMI credentials and API keys never appear in ``marcador config show``, in error messages or
in the audit log (issue 9, "Security")."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
import sqlalchemy as sa
import structlog
from fastapi import FastAPI
from pydantic import SecretStr
from typer.testing import CliRunner

from ami_bridge.connection import AmiBridge, LinkOptions, ServerSpec
from ami_bridge.errors import AMIError
from ami_bridge.simulator import SimulatorConfig, serve
from dialer.cli import app as cli_app
from dialer.db.models import ApiKey, AuditLog
from dialer.logging import configure_logging
from tests.api.helpers import ApiClient, key_client

AMI_SECRET = "ami-Zq81-kP3x-secret"
PG_PASSWORD = "pgPa55-w0rd-91"
REDIS_PASSWORD = "rdPa55-w0rd-77"
TOKEN = "EAAG-tok-4471-abcdef"
APP_SECRET = "app-secret-9931-xyz"
SESSION_SECRET = "session-secret-1182-q"
ALL_SECRETS = (AMI_SECRET, PG_PASSWORD, REDIS_PASSWORD, TOKEN, APP_SECRET, SESSION_SECRET)

ENV = {
    "COLUMNS": "400",
    "MARCADOR_ASTERISK__SERVERS": json.dumps(
        [{"name": "pbx1", "host": "127.0.0.1", "port": 5038, "secret": AMI_SECRET}]
    ),
    "MARCADOR_DATABASE__URL": f"postgresql+asyncpg://marcador:{PG_PASSWORD}@127.0.0.1/marcador",
    "MARCADOR_REDIS__URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6399/0",
    "MARCADOR_WHATSAPP__ACCESS_TOKEN": TOKEN,
    "MARCADOR_WHATSAPP__APP_SECRET": APP_SECRET,
    "MARCADOR_API__SESSION_SECRET": SESSION_SECRET,
}


def assert_clean(text: str, where: str) -> None:
    leaked = [s[:6] + "…" for s in ALL_SECRETS if s in text]
    assert not leaked, f"{where} shows secrets {leaked}"


@pytest.mark.parametrize("args", [["config", "show"], ["config", "show", "--json"]])
def test_config_show_masks_every_secret(args: list[str]) -> None:
    result = CliRunner().invoke(cli_app, args, env=ENV)
    assert result.exit_code == 0, result.output
    assert "pbx1" in result.output and "marcador" in result.output  # the rest is shown
    assert_clean(result.output, "config show")


def test_configuration_errors_name_the_setting_not_the_value() -> None:
    env = {
        **ENV,
        "MARCADOR_ENVIRONMENT": "production",
        "MARCADOR_WHATSAPP__VERIFY_TOKEN": "dev-verify-token",
        "MARCADOR_ASTERISK__SERVERS": json.dumps(
            [{"name": "pbx1", "host": "10.0.0.5", "secret": AMI_SECRET, "trunk": "PJSIP/trunk"}]
        ),
    }
    result = CliRunner().invoke(cli_app, ["config", "show"], env=env)
    assert result.exit_code == 2
    assert "MARCADOR_ASTERISK__SERVERS" in result.output
    assert_clean(result.output, "the configuration error")


async def test_ami_login_failure_hides_the_secret() -> None:
    sim = await serve("127.0.0.1", 0, SimulatorConfig(speed=50.0))
    buffer = io.StringIO()
    configure_logging("debug", json_logs=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buffer))
    bridge = AmiBridge(
        [ServerSpec("pbx1", "127.0.0.1", sim.port, "dialer", SecretStr(AMI_SECRET))],
        options=LinkOptions(action_timeout=1.0, ping_interval=5.0),
    )
    try:
        await bridge.start()
        with pytest.raises((AMIError, TimeoutError)) as err:
            await bridge.pool.wait_ready(1.5)
        messages = [str(err.value), repr(err.value), buffer.getvalue()]
        status = bridge.pool.statuses()["pbx1"]
        messages.append(json.dumps(status.as_mapping(), default=str))
        messages.append(repr(ServerSpec("x", "h", 1, "u", SecretStr(AMI_SECRET))))
    finally:
        await bridge.close()
        await sim.close()
        structlog.reset_defaults()
    assert "pbx1" in " ".join(messages)  # the failure is reported...
    for text in messages:
        assert_clean(text, "the AMI error/log")  # ...without the secret


async def test_api_keys_never_leak(app: FastAPI, admin: ApiClient) -> None:
    buffer = io.StringIO()
    configure_logging("debug", json_logs=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buffer))
    try:
        r = await admin.post("/api/v1/api-keys", json={"name": "crm", "scopes": ["leads:read"]})
        assert r.status_code == 201, r.text
        key: str = r.json()["key"]
        key_id: int = r.json()["id"]
        assert len(key) >= 24

        listing = await admin.get("/api/v1/api-keys")
        assert listing.status_code == 200 and key not in listing.text

        wrong = key[:-2] + ("aa" if not key.endswith("aa") else "bb")
        async with key_client(app, wrong) as c:
            denied = await c.get("/api/v1/campaigns")
        assert denied.status_code == 401
        assert wrong not in denied.text and key not in denied.text

        revoked = await admin.delete(f"/api/v1/api-keys/{key_id}")
        assert revoked.status_code in (200, 204), revoked.text
        async with key_client(app, key) as c:
            after = await c.get("/api/v1/campaigns")
        assert after.status_code == 401 and key not in after.text

        async with app.state.sessionmaker() as s:
            rows = list(await s.scalars(sa.select(AuditLog)))
            stored = await s.get_one(ApiKey, key_id)
        assert {r.action for r in rows} >= {"apikey.create", "apikey.revoke"}, [
            r.action for r in rows
        ]
        for row in rows:
            text = json.dumps(
                [row.actor, row.action, row.target_type, row.target_id, row.detail], default=str
            )
            assert key not in text and wrong not in text, f"audit row {row.action} holds the key"
        assert key not in stored.key_hash and stored.prefix in key  # only a hash is stored
        await asyncio.sleep(0)
    finally:
        structlog.reset_defaults()
    assert key not in buffer.getvalue() and wrong not in buffer.getvalue()
