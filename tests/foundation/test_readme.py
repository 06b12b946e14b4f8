from __future__ import annotations

from pathlib import Path

from dialer import cli_doc
from dialer.settings_doc import markdown_table

ROOT = Path(__file__).resolve().parents[2]


def test_readme_lists_every_setting() -> None:
    assert markdown_table() in (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_lists_every_command() -> None:
    assert cli_doc.markdown_table() in (ROOT / "README.md").read_text(encoding="utf-8")


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "```bash\n.venv/bin/python -m pytest\n```" in readme
    assert ".venv/bin/python -m pytest" in ci
