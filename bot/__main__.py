"""Command line: run · sandbox · migrate · import · demo-data · recompute."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
import uvloop
from rich.console import Console

from bot.config import Settings, SettingsError, load_settings

cli = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Touchpoint: customer care for support teams."
)
console = Console(stderr=True)


def settings_or_exit(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@contextmanager
def start_errors_exit() -> Iterator[None]:
    """A wrong YAML file under TOUCHPOINT_CONFIG, or no Bot API to talk to: one clear line."""
    from aiogram.exceptions import TelegramNetworkError

    from bot.palette_file import CONFIG_ERRORS

    try:
        yield
    except CONFIG_ERRORS as exc:
        console.print(f"[red]Configuration: {exc}[/red]")
        raise typer.Exit(2) from None
    except TelegramNetworkError as exc:
        console.print(f"[red]Cannot reach the Bot API (TELEGRAM_API_BASE): {exc.message}[/red]")
        raise typer.Exit(3) from None


@cli.command()
def run() -> None:
    """Run the bot against Telegram (or TELEGRAM_API_BASE) with the settings it finds: long polling,
    or Telegram's webhook when WEBHOOK_URL is set."""
    from bot.app import build_app, run_polling, run_webhook
    from bot.logs import setup_logging

    settings = settings_or_exit()
    if settings.telegram_bot_token is None:
        console.print(
            "[red]Setting TELEGRAM_BOT_TOKEN: missing. Get one from @BotFather, "
            "or try Touchpoint with no token: python -m bot sandbox[/red]"
        )
        raise typer.Exit(2)
    setup_logging(settings.log_level)

    async def main() -> None:
        app = await build_app(settings)
        await (run_webhook(app) if settings.webhook_url else run_polling(app))

    # uvloop: the same asyncio API on libuv, measurably cheaper per update (bench/e2e_throughput.py).
    with start_errors_exit(), asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


@cli.command()
def sandbox(
    port: Annotated[
        int | None, typer.Option(help="port of the chat page and the Bot API emulator (SANDBOX_PORT)")
    ] = None,
    customers: Annotated[int, typer.Option(help="demo customers loaded on first start")] = 300,
    chat: Annotated[bool, typer.Option(help="a terminal chat as well (needs a terminal)")] = False,
) -> None:
    """Try Touchpoint with no token: a web chat page on 127.0.0.1, backed by a Bot API emulator,
    the bot and demo data."""
    from sandbox.runner import SandboxError, run_sandbox

    settings = settings_or_exit()
    try:
        with start_errors_exit():
            asyncio.run(
                run_sandbox(settings, port=port or settings.sandbox_port, customers=customers, chat=chat)
            )
    except SandboxError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@cli.command()
def migrate() -> None:
    """Upgrade the database schema to the latest version."""
    from storage.migrate import upgrade

    settings = settings_or_exit()
    upgrade(settings.database_url)
    console.print("[green]Database schema is up to date.[/green]")


@cli.command("import")
def import_(
    kind: Annotated[str, typer.Argument(help="customers, orders, or events")],
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8 or GBK) or .xlsx file; events: JSON Lines")],
    errors: Annotated[Path | None, typer.Option(help="where bad rows are written")] = None,
) -> None:
    """Import customers or orders, or replay shop events into the running bot; bad rows go to an
    error file, good rows land."""
    from bot.cli_data import import_command

    if kind not in ("customers", "orders", "events"):
        console.print("[red]KIND must be 'customers', 'orders' or 'events'.[/red]")
        raise typer.Exit(2)
    settings = settings_or_exit()
    if kind == "events":
        from bot.cli_data import replay_command

        raise typer.Exit(replay_command(settings, file, errors))
    raise typer.Exit(import_command(settings.database_url, kind, file, errors, zone=settings.zone))


@cli.command("demo-data")
def demo_data(
    customers: Annotated[int, typer.Option(min=1, help="how many customers to generate")] = 300,
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
) -> None:
    """Generate and import a realistic demo shop."""
    from bot.cli_data import demo_data_command

    settings = settings_or_exit()
    raise typer.Exit(demo_data_command(settings.database_url, customers, seed))


@cli.command()
def recompute() -> None:
    """Recompute the shop-wide RFM and lifecycle cut points now."""
    from storage.db import create_engine
    from storage.migrate import upgrade
    from storage.stats import recompute_shop_stats

    settings = settings_or_exit()
    upgrade(settings.database_url)

    async def main() -> None:
        engine = create_engine(settings.database_url)
        cuts = await recompute_shop_stats(engine)
        await engine.dispose()
        console.print(f"Cut points recomputed over {cuts.buyers} buyers.")

    asyncio.run(main())


@cli.command()
def check() -> None:
    """Health check: settings load and the database answers (exit 0), else exit 1."""
    from sqlalchemy import text

    from storage.db import create_engine

    settings = settings_or_exit()

    async def main() -> None:
        engine = create_engine(settings.database_url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(main())
    except Exception as exc:
        console.print(f"[red]Database not reachable: {type(exc).__name__}[/red]")
        raise typer.Exit(1) from None
    console.print("ok")


if __name__ == "__main__":
    cli()
