"""``marcador pbx check`` against the lab PBX: all green with the production AMI classes, and
a missing sound or trunk is a failed line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dialer.cli import app
from dialer.pbx_check import Status, check_server
from dialer.pbx_lab import LabPbx
from dialer.settings import AsteriskServer


async def test_check_is_green_on_the_lab_with_the_production_classes(lab_pbx: LabPbx) -> None:
    results = await check_server(AsteriskServer(**lab_pbx.server()))
    failed = [r for r in results if r.status is Status.FAIL]
    assert failed == []
    items = {r.item for r in results}
    assert {"read: system", "read: call", "read: dialplan", "write: originate"} <= items
    assert {"module app_amd.so", "context marcador-hold", "trunk"} <= items
    assert {"sound marcador/safe-harbor", "agent endpoints"} <= items


async def test_check_fails_a_missing_sound_and_an_undefined_trunk(lab_pbx: LabPbx) -> None:
    server = AsteriskServer(**{**lab_pbx.server(), "trunk": "PJSIP/{number}@trunk"})
    results = await check_server(server, sounds=("marcador/no-such-sound",))
    status = {r.item: r.status for r in results}
    assert status["sound marcador/no-such-sound"] is Status.FAIL
    assert status["trunk"] is Status.FAIL
    assert status["module app_confbridge.so"] is Status.OK


def test_cli_exit_codes(lab_pbx: LabPbx) -> None:
    env = {"MARCADOR_ASTERISK__SERVERS": lab_pbx.servers_json()}
    ok = CliRunner().invoke(app, ["pbx", "check"], env={**env, "COLUMNS": "200"})
    assert ok.exit_code == 0, ok.output
    assert "All checks passed" in ok.output
    assert lab_pbx.secrets.ami not in ok.output
    bad_server = lab_pbx.server()
    bad_server["secret"] = "wrong-secret"
    bad = CliRunner().invoke(
        app, ["pbx", "check"], env={"MARCADOR_ASTERISK__SERVERS": json.dumps([bad_server])}
    )
    assert bad.exit_code == 1
    assert "AMI login" in bad.output
