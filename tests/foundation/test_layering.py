"""The layers import downwards only: ami_bridge <- dialer <- api.

* ``ami_bridge`` (the AMI link, the call tracker and the PBX simulator) is the bottom layer: it
  imports neither ``dialer`` nor ``api``;
* ``dialer`` (engine, domain, workers) never imports ``api``: whatever wires every process
  together (the demo) lives in ``api``, the top layer.

Checked on the source (every import statement, lazy ones inside functions included), so the
rule holds whatever a test happens to import first.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Every absolute module named by an import statement of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    for path in files:
        for name in sorted(imported_modules(path)):
            if name.split(".")[0] in forbidden:
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("ami_bridge", ("dialer", "api")), ("dialer", ("api",))],
)
def test_layers_import_downwards_only(package: str, forbidden: tuple[str, ...]) -> None:
    assert violations(package, forbidden) == []


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f() -> None:\n    from api.app import create_app\n    import dialer\n")
    assert imported_modules(source) == {"api.app", "dialer"}
