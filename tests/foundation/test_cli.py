"""The ``marcador`` shell: lazy sub-commands, clean help, and one-line configuration errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from dialer import cli

ROOT = Path(__file__).resolve().parents[2]


def _run_main(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setattr(sys, "argv", ["marcador", *argv])
    try:
        cli.main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_help_imports_no_heavy_module() -> None:
    """``marcador --help`` lists every command without importing their modules."""
    code = (
        "import sys\n"
        "from dialer.cli import main\n"
        "sys.argv = ['marcador', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('sqlalchemy', 'fastapi', 'dialer.engine', 'dialer.settings',"
        " 'pydantic_settings', 'redis', 'openpyxl') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out
    for name in cli.LAZY_COMMANDS:
        assert name in out


def _first_paragraph(text: str | None) -> str:
    return " ".join((text or "").split("\n\n")[0].split())


def test_lazy_help_matches_the_real_commands() -> None:
    """Every command a module registers is listed, with the help its own code gives."""
    modules = {lazy.module for lazy in cli.LAZY_COMMANDS.values()}
    registered: dict[str, click.Command] = {}
    for module in modules:
        registered.update(cli.load_module_commands(module))
    assert set(registered) == set(cli.LAZY_COMMANDS)
    for name, command in registered.items():
        assert cli.LAZY_COMMANDS[name].help == _first_paragraph(command.help), name


def test_help_reads_cleanly() -> None:
    """No ``<bool>`` metavars or ``{file}`` usage (typer >= 0.27 renders help that way)."""
    runner = CliRunner()
    for argv in (["--help"], ["import", "--help"], ["db", "--help"], ["simulate", "--help"]):
        result = runner.invoke(cli.app, argv, terminal_width=120)
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output and "{" not in result.output.split("\n")[1:4][0]
        assert "Usage:" in result.output


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nonsense", "unknown scheme"),
        ("sqlite:///x.db", "sqlite+aiosqlite://"),
        ("postgresql://u@h/db", "postgresql+asyncpg://"),
    ],
)
@pytest.mark.parametrize(
    "argv",
    [[name] for name in cli.LAZY_COMMANDS]
    + [["db", "upgrade"], ["db", "check"], ["config", "show"]],
)
def test_bad_database_url_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    expected: str,
    argv: list[str],
) -> None:
    monkeypatch.setenv("MARCADOR_DATABASE__URL", url)
    assert _run_main(monkeypatch, *argv) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "MARCADOR_DATABASE__URL" in out and expected in out
    assert "Traceback" not in out


def test_settings_that_are_not_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MARCADOR_ASTERISK__SERVERS", "nope")
    assert _run_main(monkeypatch, "config", "show") == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "MARCADOR_ASTERISK" in out and "not valid JSON" in out


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+asyncpg://postgres@127.0.0.1:1/x", "cannot be reached"),
        ("sqlite+aiosqlite:///{tmp}/empty.db", "marcador db upgrade"),
    ],
)
def test_store_errors_are_one_clear_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    url: str,
    expected: str,
) -> None:
    monkeypatch.setenv("MARCADOR_DATABASE__URL", url.format(tmp=tmp_path))
    monkeypatch.setenv("MARCADOR_DATA_DIR", str(tmp_path))
    assert _run_main(monkeypatch, "campaign", "list") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert expected in err and "MARCADOR_DATABASE__URL" in err
    assert "Traceback" not in err


def test_db_check_never_raises(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("MARCADOR_DATABASE__URL", "postgresql+asyncpg://postgres@127.0.0.1:1/x")
    monkeypatch.setenv("MARCADOR_DATA_DIR", str(tmp_path))
    assert _run_main(monkeypatch, "db", "check") == 1
    out = capsys.readouterr().out
    assert "down" in out and "Traceback" not in out


def test_unexpected_errors_keep_their_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only known store/configuration errors are turned into one line: bugs stay visible."""
    assert cli.explain_error(ValueError("a bug")) is None
    assert isinstance(typer.Typer(), typer.Typer)
