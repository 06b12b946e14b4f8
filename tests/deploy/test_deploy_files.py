"""deploy/: the compose file, the systemd units and the env example name real commands and
real settings, and the env example lists every setting."""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dialer.cli import app
from dialer.settings_doc import setting_rows

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
ENV_EXAMPLE = DEPLOY / "marcador.env.example"
SETTING = re.compile(r"\bMARCADOR_[A-Z0-9_]+")


@cache
def known_settings() -> frozenset[str]:
    return frozenset(env for env, _, _ in setting_rows())


@cache
def help_text(path: tuple[str, ...]) -> str:
    """``marcador <path> --help``; fails the test when the command does not exist."""
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, f"`marcador {' '.join(path)}` is not a command: {result.output}"
    return result.output


def check_marcador_args(args: list[str], where: str) -> None:
    """Every sub-command in ``args`` exists and every ``--option`` is one it accepts."""
    path: list[str] = []
    for token in args:
        if token.startswith("-"):
            break
        path.append(token)
    assert path, f"{where}: `marcador` without a command"
    text = help_text(tuple(path))
    for token in args[len(path) :]:
        if token.startswith("--"):
            option = token.split("=", 1)[0]
            assert option in text, f"{where}: `marcador {' '.join(path)}` has no {option}"


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def app_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return {n: s for n, s in services.items() if s.get("image", "").startswith("marcador")}


def unit_entries(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) of a systemd unit, continuation lines joined."""
    out: list[tuple[str, str, str]] = []
    section = ""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {line!r}"
        out.append((section, key.strip(), value.strip()))
    return out


# ------------------------------------------------------------------------------ compose


def test_compose_has_the_production_services() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "migrate", "api", "whatsapp"} <= set(services)
    dialers = [n for n, s in app_services().items() if s["command"][0] == "dialer"]
    assert len(dialers) >= 2
    assert not any("asterisk" in name for name in services), "Asterisk stays external"


def test_compose_migration_runs_first() -> None:
    services = app_services()
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name, svc in services.items():
        if name == "migrate":
            continue
        dep = svc["depends_on"]["migrate"]
        assert dep["condition"] == "service_completed_successfully", name


def test_compose_commands_exist() -> None:
    for name, svc in app_services().items():
        command = svc["command"]
        assert isinstance(command, list), f"{name}: use the exec (list) form"
        check_marcador_args([str(c) for c in command], f"compose service {name}")


def test_compose_settings_exist() -> None:
    for name, svc in compose()["services"].items():
        for key in svc.get("environment") or {}:
            if key.startswith("MARCADOR_"):
                assert key in known_settings(), f"compose {name}: {key} is not a setting"


def test_api_publishes_on_loopback_only() -> None:
    for port in app_services()["api"].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), port


# ------------------------------------------------------------------------------ systemd


def test_units_exist() -> None:
    names = {p.name for p in UNITS}
    assert names >= {
        "marcador-api.service",
        "marcador-dialer@.service",
        "marcador-whatsapp.service",
        "marcador-migrate.service",
    }


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_commands_and_settings_exist(unit: Path) -> None:
    entries = unit_entries(unit)
    starts = [v for s, k, v in entries if s == "Service" and k == "ExecStart"]
    assert len(starts) == 1, unit.name
    argv = shlex.split(starts[0])
    assert argv[0].endswith("/marcador"), f"{unit.name}: ExecStart must run marcador"
    check_marcador_args(argv[1:], unit.name)
    for section, key, value in entries:
        if section == "Service" and key == "Environment":
            for assignment in shlex.split(value):
                var = assignment.split("=", 1)[0]
                assert var in known_settings(), f"{unit.name}: {var} is not a setting"
        if section == "Service" and key == "EnvironmentFile":
            assert value.lstrip("-") == "/etc/marcador/marcador.env"


def test_migrate_unit_is_a_oneshot_before_the_others() -> None:
    entries = unit_entries(DEPLOY / "systemd" / "marcador-migrate.service")
    values = {(s, k): v for s, k, v in entries}
    assert values[("Service", "Type")] == "oneshot"
    assert values[("Service", "RemainAfterExit")] == "yes"
    assert "marcador-api.service" in values[("Unit", "Before")]
    for unit in UNITS:
        if unit.name == "marcador-migrate.service":
            continue
        unit_values = {(s, k): v for s, k, v in unit_entries(unit)}
        assert "marcador-migrate.service" in unit_values[("Unit", "After")], unit.name
        assert "marcador-migrate.service" in unit_values[("Unit", "Requires")], unit.name


# ------------------------------------------------------------------------------ env example


def env_example_vars() -> list[str]:
    out = []
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#?\s?(MARCADOR_[A-Z0-9_]+)=", line)
        if m:
            out.append(m.group(1))
    return out


def test_env_example_lists_every_setting_once() -> None:
    listed = env_example_vars()
    missing = sorted(known_settings() - set(listed))
    assert not missing, f"run scripts/gen_env_example.py; missing: {missing}"
    unknown = sorted(set(listed) - known_settings())
    assert not unknown, f"not settings: {unknown}"
    assert len(listed) == len(set(listed)), "a setting is listed twice"


def test_env_example_holds_no_secret() -> None:
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if key.endswith(("_TOKEN", "_SECRET")):
            assert value == "", f"{key} must stay empty in the example"


def test_every_setting_named_anywhere_in_deploy_exists() -> None:
    texts = [p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in (".yaml", ".service")]
    for path in texts:
        for var in SETTING.findall(path.read_text(encoding="utf-8")):
            assert var in known_settings(), f"{path.relative_to(ROOT)}: {var} is not a setting"


def test_the_checks_catch_a_wrong_command_or_option() -> None:
    with pytest.raises(AssertionError, match="is not a command"):
        check_marcador_args(["dialler"], "example")
    with pytest.raises(AssertionError, match="has no --agents"):
        check_marcador_args(["dialer", "--agents", "3"], "example")
    check_marcador_args(["pbx-sim", "--port", "5038", "--agents", "3"], "example")
