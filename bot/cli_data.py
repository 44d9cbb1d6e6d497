"""What `python -m bot import …` and `python -m bot demo-data` run: schema upgrade, the import with a
progress bar, a summary table, and an exit code (0 ok, 1 some rows failed, 2 file rejected)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.event_replay import ReplayAborted, replay_file
from storage.columns import FileRejected
from storage.db import create_engine
from storage.importer import TEAM_ZONE, ImportSummary, import_file
from storage.migrate import upgrade

EXIT_OK, EXIT_ROWS_FAILED, EXIT_REJECTED = 0, 1, 2
KINDS = ("customers", "orders")


def import_command(
    database_url: str,
    kind: str,
    path: Path,
    errors_path: Path | None = None,
    *,
    zone: ZoneInfo = TEAM_ZONE,
    console: Console | None = None,
) -> int:
    """Imports one customers or orders file into the database at `database_url`."""
    console = console or Console()
    if kind not in KINDS:
        console.print(f"[red]KIND must be 'customers' or 'orders', not {kind!r}.[/red]")
        return EXIT_REJECTED
    upgrade(database_url)
    return asyncio.run(_import_and_report(database_url, [(kind, path, errors_path)], zone, console))


def demo_data_command(
    database_url: str,
    customers: int,
    seed: int = 7,
    *,
    now: datetime | None = None,
    console: Console | None = None,
) -> int:
    """Generates a realistic demo shop (storage.demo) and imports it: customers, then orders."""
    from storage.demo import write_demo_csv  # Faker loads only for this command

    console = console or Console()
    upgrade(database_url)
    with tempfile.TemporaryDirectory(prefix="touchpoint-demo-") as tmp:
        with console.status(f"Generating a demo shop with {customers:,} customers…"):
            customers_csv, orders_csv = write_demo_csv(Path(tmp), customers, seed=seed, now=now)
        files = [("customers", customers_csv, None), ("orders", orders_csv, None)]
        return asyncio.run(_import_and_report(database_url, files, TEAM_ZONE, console))


async def _import_and_report(
    database_url: str,
    files: list[tuple[str, Path, Path | None]],
    zone: ZoneInfo,
    console: Console,
) -> int:
    engine = create_engine(database_url)
    code = EXIT_OK
    try:
        for kind, path, errors_path in files:
            try:
                summary = await _import_with_progress(engine, kind, path, errors_path, zone, console)
            except FileRejected as exc:
                console.print(f"[red]{path.name} rejected, nothing imported from it: {exc}[/red]")
                return EXIT_REJECTED
            _print_summary(console, kind, path, summary)
            if summary.failed:
                code = EXIT_ROWS_FAILED
        await _recompute_shop_stats(engine, console)
    finally:
        await engine.dispose()
    return code


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


async def _import_with_progress(
    engine: AsyncEngine, kind: str, path: Path, errors_path: Path | None, zone: ZoneInfo, console: Console
) -> ImportSummary:
    with _progress(console) as bar:
        task = bar.add_task(f"Importing {kind} from {path.name}", total=estimate_rows(path))
        report: Callable[[int], None] = lambda rows: bar.update(task, completed=rows)  # noqa: E731
        return await import_file(
            engine=engine,
            kind=kind,  # type: ignore[arg-type]
            path=path,
            errors_path=errors_path,
            progress=report,
            zone=zone,
        )


def estimate_rows(path: Path) -> int | None:
    """Data rows for the progress bar: lines of a CSV (quoted line breaks overcount a little), the
    sheet's declared size of an .xlsx; None when unknown."""
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            from openpyxl import load_workbook

            book = load_workbook(path, read_only=True)
            try:
                rows = book.active.max_row if book.active is not None else None
            finally:
                book.close()
            return rows - 1 if rows else None
        lines = 0
        last = b"\n"
        with path.open("rb") as raw:
            while chunk := raw.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        return max(lines - (1 if last == b"\n" else 0), 0)
    except OSError:
        return None
    except Exception:  # a broken workbook: the import itself will say so
        return None


def _print_summary(console: Console, kind: str, path: Path, summary: ImportSummary) -> None:
    table = Table(title=f"{kind.capitalize()} from {path.name}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rate = summary.rows_read / summary.seconds if summary.seconds else 0.0
    for label, value in (
        ("rows read", f"{summary.rows_read:,}"),
        ("inserted", f"{summary.inserted:,}"),
        ("updated", f"{summary.updated:,}"),
        ("unchanged", f"{summary.unchanged:,}"),
        ("failed", f"[red]{summary.failed:,}[/red]" if summary.failed else "0"),
        ("time", f"{summary.seconds:.1f} s ({rate:,.0f} rows/s)"),
    ):
        table.add_row(label, value)
    console.print(table)
    if summary.errors_path:
        console.print(f"Rows that failed, with line numbers and reasons: [bold]{summary.errors_path}[/bold]")


async def _recompute_shop_stats(engine: AsyncEngine, console: Console) -> None:
    """Shop-wide cut points (RFM, learned lifecycle) follow the new figures."""
    try:
        # Imported lazily: storage.stats belongs to another part of the project; skip when absent.
        from storage.stats import recompute_shop_stats
    except ImportError:
        return
    with console.status("Recomputing shop-wide RFM and lifecycle cut points…"):
        await recompute_shop_stats(engine)


def replay_command(
    settings: Settings, path: Path, errors_path: Path | None, *, console: Console | None = None
) -> int:
    """Replays a JSON Lines file of shop events through the running bot's events API."""
    console = console or Console()
    if settings.events_secret is None:
        console.print("[red]Setting EVENTS_SECRET: missing; the bot's events API is off without it.[/red]")
        return EXIT_REJECTED
    if not path.is_file():
        console.print(f"[red]{path}: no such file.[/red]")
        return EXIT_REJECTED
    url = f"http://{settings.http_host}:{settings.http_port}/api/events"
    errors_path = errors_path or path.with_name(path.name + ".errors.txt")
    total = path.stat().st_size
    try:
        with errors_path.open("w", encoding="utf-8") as errors, _progress(console) as progress:
            task = progress.add_task(f"events from {path.name}", total=None)
            summary = asyncio.run(
                replay_file(
                    path,
                    url=url,
                    secret=settings.events_secret.get_secret_value(),
                    errors=errors,
                    progress=lambda lines: progress.update(task, completed=lines),
                )
            )
    except ReplayAborted as exc:
        console.print(f"[red]{exc}. Is the bot running with this EVENTS_SECRET on {url}?[/red]")
        return EXIT_REJECTED
    table = Table(title=f"events from {path.name} ({total:,} bytes)")
    for column in ("lines", "accepted", "already had", "failed"):
        table.add_column(column, justify="right")
    table.add_row(*(f"{n:,}" for n in (summary.lines, summary.accepted, summary.duplicates, summary.failed)))
    console.print(table)
    if summary.failed:
        for number, reason in summary.errors:
            console.print(f"  line {number}: {reason}")
        console.print(f"[yellow]{summary.failed} bad lines → {errors_path}; the rest landed.[/yellow]")
        return EXIT_ROWS_FAILED
    errors_path.unlink(missing_ok=True)
    return EXIT_OK
