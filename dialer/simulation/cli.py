"""``marcador simulate``: run a scenario (or a campaign's fitted history) under several policies."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from dialer.simulation.baselines import PolicySpec, parse_policy
from dialer.simulation.compare import DEFAULT_POLICIES, ScenarioReport, compare, runs_needed
from dialer.simulation.history import CampaignHistory, db_history
from dialer.simulation.metrics import Estimate
from dialer.simulation.replay import AttemptRecord, scenario_from_history
from dialer.simulation.scenario import Scenario, ScenarioError, load_scenario

# campaign id/name -> its recorded attempts (the default reads the configured database)
HistoryLoader = Callable[[str], Sequence[AttemptRecord] | CampaignHistory]

_PERCENT = {"occupancy", "utilization", "abandon_30d", "abandon_worst_day"}
_COLUMNS = (
    ("occupancy", "occupancy"),
    ("utilization", "utilization"),
    ("abandon_30d", "abandon 30d"),
    ("abandon_worst_day", "worst day"),
    ("idle_wait_mean", "idle mean s"),
    ("idle_wait_p90", "idle p90 s"),
    ("connects_per_agent_hour", "connects/agent-h"),
    ("dials_per_connect", "dials/connect"),
    ("peak_lines_per_agent", "peak lines/agent"),
)


def fmt(name: str, e: Estimate, seeds: int) -> str:
    """Mean and 95% CI half-width; with one seed there is no interval (the title says n/a)."""
    scale, unit = (100, "%") if name in _PERCENT else (1, "")
    ci = f" ±{scale * e.ci95:.2f}" if seeds > 1 else ""
    return f"{scale * e.mean:.2f}{unit}{ci}"


def report_table(report: ScenarioReport) -> Table:
    sc = report.scenario
    names = [r.policy for r in report.results]
    width = max([len("ceiling talk/(talk+wrap)"), *map(len, names)])
    table = Table(
        Column("policy", no_wrap=True, min_width=width),  # never shortened to "progress…"
        *(title for _, title in _COLUMNS),
        title=f"{sc.name}: {len(sc.seeds)} seeds x {sc.shifts} shifts of {sc.shift_hours:g} h "
        + ("(mean ±95% CI)" if len(sc.seeds) > 1 else "(mean; 95% CI: n/a with 1 seed)"),
    )
    for r in report.results:
        table.add_row(r.policy, *(fmt(k, r.summary[k], len(sc.seeds)) for k, _ in _COLUMNS))
    table.add_row("ceiling talk/(talk+wrap)", f"{100 * report.ceiling:.2f}%", *[""] * 8)
    return table


def simulate(
    scenario: Path | None,
    policies: Sequence[str] = (),
    seeds: int | None = None,
    shifts: int | None = None,
    json_out: bool = False,
    processes: int = 1,
    from_campaign: str | None = None,
    history_loader: HistoryLoader | None = None,
    console: Console | None = None,
) -> ScenarioReport:
    """Load or fit the scenario, run the policies, print the table (or JSON), return the report.

    Raises :class:`ScenarioError` (bad file, bad policy name, missing history).
    """
    console = console or Console()
    sc: Scenario
    if from_campaign is not None:
        if history_loader is None:
            raise ScenarioError("--from-campaign needs a campaign history loader")
        hist = history_loader(from_campaign)
        if isinstance(hist, CampaignHistory):
            sc = hist.scenario()
        else:
            sc = scenario_from_history(hist, name=f"campaign-{from_campaign}")
    elif scenario is not None:
        sc = load_scenario(scenario)
    else:
        raise ScenarioError("give a scenario file or --from-campaign ID")
    if seeds is not None:
        if seeds < 1:
            raise ScenarioError("--seeds must be >= 1")
        sc = sc.with_overrides(seeds=tuple(range(1, seeds + 1)))
    if shifts is not None:
        if shifts < 1:
            raise ScenarioError("--shifts must be >= 1")
        sc = sc.with_overrides(shifts=shifts)
    try:
        specs: tuple[PolicySpec, ...] = (
            tuple(parse_policy(p) for p in policies) if policies else DEFAULT_POLICIES
        )
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None

    total = runs_needed(sc, specs)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=total < 2,
    ) as bar:
        task = bar.add_task(f"simulating {sc.name}", total=total)
        report = compare(sc, specs, processes, lambda n: bar.advance(task, n))
    if json_out:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        console.print(report_table(report))
    return report


def _settings_loader(ctx: typer.Context) -> HistoryLoader:
    """The default history loader: the database of the settings the root command loaded."""
    from dialer.settings import Settings

    settings = ctx.find_root().obj

    def load(ref: str) -> CampaignHistory:
        if not isinstance(settings, Settings):
            raise ScenarioError("--from-campaign needs the marcador settings (run via marcador)")
        return db_history(settings, ref)

    return load


def register(app: typer.Typer, history_loader: HistoryLoader | None = None) -> None:
    """Add the ``simulate`` command to ``app``.

    ``history_loader`` replaces the database loader of ``--from-campaign`` (tests, exports).
    """

    @app.command("simulate")
    def simulate_cmd(
        ctx: typer.Context,
        scenario: Annotated[
            Path | None, typer.Argument(help="Scenario JSON file (see docs/simulation.md).")
        ] = None,
        policy: Annotated[
            list[str] | None,
            typer.Option(
                "--policy",
                "-p",
                help="predictive, progressive, vicidial, fixed_ratio (bisected), ratio:X or "
                "oracle_supply (predictive told exact agent free times: a bound). "
                "Repeat for several; default: all four.",
            ),
        ] = None,
        seeds: Annotated[int | None, typer.Option(help="Override the number of seeds.")] = None,
        shifts: Annotated[int | None, typer.Option(help="Override the number of shifts.")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        processes: Annotated[
            int, typer.Option(help="Worker processes (at most 2).", min=1, max=2)
        ] = 1,
        from_campaign: Annotated[
            str | None,
            typer.Option("--from-campaign", help="Replay a campaign's recorded history (what-if)."),
        ] = None,
    ) -> None:
        """Simulate a campaign on a virtual clock and compare pacing policies."""
        try:
            simulate(
                scenario,
                policy or (),
                seeds,
                shifts,
                json_out,
                processes,
                from_campaign,
                history_loader or _settings_loader(ctx),
            )
        except ScenarioError as exc:
            Console(stderr=True).print(f"[bold red]Error:[/] {exc}")
            raise typer.Exit(2) from None
