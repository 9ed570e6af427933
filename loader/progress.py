"""A progress line with events/s on a terminal; silence when output is piped or in CI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from loader.pipeline import LoadSummary


@contextmanager
def progress_reporter(enabled: bool = True) -> Iterator[Callable[[LoadSummary], None]]:
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield lambda summary: None
        return
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]loading[/bold] {task.fields[good]:>12,} events"),
        TextColumn("{task.fields[failed]:>8,} failed"),
        TextColumn("{task.fields[rate]:>10,.0f} events/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("load", total=None, good=0, failed=0, rate=0.0)

        def report(summary: LoadSummary) -> None:
            progress.update(task, good=summary.good, failed=summary.failed, rate=summary.rate)

        yield report
