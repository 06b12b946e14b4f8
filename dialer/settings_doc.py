"""Render the settings reference table (README.md, deploy env example) from the model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from dialer.settings import Settings


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = "[]" if "list" in str(field.annotation) else "(section)"
    else:
        value = field.default
    if value is None:
        return "(empty)"
    if hasattr(value, "get_secret_value"):
        return "(dev placeholder)"
    return f"`{getattr(value, 'value', value)}`"


def setting_rows(
    model: type[BaseModel] = Settings, prefix: str = "MARCADOR_"
) -> list[tuple[str, str, str]]:
    """(env var, default, description) for every leaf setting."""
    rows: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(setting_rows(ann, env + "__"))
            continue
        rows.append((env, _default(field), (field.description or "").replace("|", "\\|")))
    return rows


def markdown_table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    lines += [f"| `{env}` | {default} | {desc} |" for env, default, desc in setting_rows()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
