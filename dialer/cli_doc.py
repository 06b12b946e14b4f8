"""Render the README's command table from the CLI itself (``tests/foundation/test_readme``).

Every command and sub-command appears with the first paragraph of its own help, so a new
command cannot be left out of the README.
"""

from __future__ import annotations

import click
import typer

from dialer import cli


def _first_paragraph(text: str | None) -> str:
    return " ".join((text or "").split("\n\n")[0].split())


def _usage(command: click.Command, ctx: click.Context) -> str:
    """``[OPTIONS]``-free usage: the arguments only (options are in ``--help``)."""
    args = [p for p in command.get_params(ctx) if isinstance(p, click.Argument)]
    return " ".join(
        p.human_readable_name.upper() if p.required else f"[{p.human_readable_name.upper()}]"
        for p in args
    )


def command_rows() -> list[tuple[str, str]]:
    """(``marcador …`` invocation, help) for every leaf command, in ``--help`` order."""
    root = typer.main.get_group(cli.app)
    assert isinstance(root, cli.LazyGroup)
    ctx = click.Context(root, info_name="marcador")
    rows: list[tuple[str, str]] = []

    def walk(name: str, command: click.Command) -> None:
        if isinstance(command, click.Group):
            if command.invoke_without_command:  # the group runs something by itself too
                rows.append((name, _first_paragraph(command.help)))
            for sub in command.list_commands(ctx):
                child = command.get_command(ctx, sub)
                if child is not None and not child.hidden:
                    walk(f"{name} {sub}", child)
            return
        usage = _usage(command, ctx)
        rows.append((f"{name} {usage}".strip(), _first_paragraph(command.help)))

    for name in root.list_commands(ctx):
        command = root.real_command(name) if name in cli.LAZY_COMMANDS else None
        command = command or root.get_command(ctx, name)
        if command is not None:
            walk(f"marcador {name}", command)
    return rows


def markdown_table() -> str:
    lines = ["| command | what it does |", "|---|---|"]
    lines += [f"| `{cmd}` | {text.replace('|', '/')} |" for cmd, text in command_rows()]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - `python -m dialer.cli_doc` prints the table
    print(markdown_table())
