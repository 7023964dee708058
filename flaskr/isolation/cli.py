"""``flask isolation``: this process's report, or two saved ones side by side.

``flask isolation compare`` puts two saved reports side by side. The same group runs without the app
as ``python -m flaskr.isolation``: no database, no configuration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from flaskr.isolation.formatting import format_compare, format_report, without_commands
from flaskr.isolation.probe import collect


@click.group("isolation", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-commands", is_flag=True, help="Leave out the command lines of other processes.")
@click.pass_context
def isolation_command(ctx: click.Context, as_json: bool, no_commands: bool) -> None:
    """Report what this process can see: dependencies, processes, container, privileges."""
    if ctx.invoked_subcommand is not None:
        return
    report = collect()
    if no_commands:
        report = without_commands(report)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


def _load(path: str) -> dict[str, Any]:
    """A saved JSON report, or a clear error naming the file instead of a traceback."""
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        raise click.ClickException(f"cannot read the report {path}: {e}") from e
    if not isinstance(report, dict):
        raise click.ClickException(f"{path} does not hold an isolation report")
    return report


@isolation_command.command("compare")
@click.argument("first", type=click.Path(dir_okay=False))
@click.argument("second", type=click.Path(dir_okay=False))
@click.option("--labels", help="Column titles as A,B (default: the files' names).")
@click.option("--markdown", is_flag=True, help="Print a Markdown table.")
def compare_command(first: str, second: str, labels: str | None, markdown: bool) -> None:
    """Put two JSON reports side by side, the differences first."""
    if labels is None:
        pair = (Path(first).stem, Path(second).stem)
    else:
        names = labels.split(",")
        if len(names) != 2:
            raise click.BadParameter("give two labels separated by a comma", param_hint="--labels")
        pair = (names[0].strip(), names[1].strip())
    click.echo(format_compare(_load(first), _load(second), pair, markdown=markdown))
