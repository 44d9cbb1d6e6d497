"""Builds the Bot, the Dispatcher and the scheduler, and runs them: long polling, or Telegram's
webhook when WEBHOOK_URL is set (several replicas can then share the work, see bot/replicas.py)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import dataclass

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import BotCommand, BotCommandScopeDefault
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.api_session import JsonBodySession
from bot.card_service import CardService
from bot.care_engine import CareEngine
from bot.care_setup import build_channels, load_care_table, load_templates
from bot.clock import Clock
from bot.config import Settings
from bot.event_intake import EventIntake
from bot.followup_engine import FollowUpEngine, TelegramSender
from bot.handlers import all_routers
from bot.health import Health
from bot.i18n import TeamI18nMiddleware, build_i18n
from bot.jobs.daily_care import run_daily_care
from bot.jobs.recompute import recompute_cuts
from bot.jobs.shift_summary import post_shift_summaries
from bot.metrics import UpdateMetricsMiddleware
from bot.middlewares import AccessMiddleware, DbSessionMiddleware, TeamContextMiddleware
from bot.outbound import SendPacer, install_pacing
from bot.palette_file import load_palette
from bot.replicas import MemoryLedger, RedisLedger, connect_redis, once_per_fire
from bot.routes import Routes
from bot.runtime import freeze_startup_heap
from bot.scenario_book import ScenarioBook, load_table
from bot.team_directory import TeamDirectory
from bot.web import build_web_app, serve
from bot.webhook import TeamWebhookHandler
from storage.care_planner import CarePlanner
from storage.db import create_engine, make_sessionmaker
from storage.migrate import upgrade_async
from storage.stats import load_shop_cuts

log = logging.getLogger(__name__)

COMMAND_NAMES = (
    "card",
    "follow",
    "timers",
    "queue",
    "scenarios",
    "care",
    "optout",
    "route",
    "help",
    "lang",
    "cancel",
    "bind",
    "unbind",
)


def build_pacer(settings: Settings) -> SendPacer:
    return SendPacer(
        per_chat_per_second=settings.send_per_chat_per_second,
        chat_burst=settings.send_chat_burst,
        per_group_per_minute=settings.send_per_group_per_minute,
        global_per_second=settings.send_global_per_second,
    )


def build_bot(settings: Settings) -> Bot:
    if settings.telegram_bot_token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    session = JsonBodySession(api=TelegramAPIServer.from_base(settings.telegram_api_base))
    bot = Bot(
        token=settings.telegram_bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )
    install_pacing(bot, build_pacer(settings), max_retries=settings.send_max_retries)
    return bot


@dataclass
class App:
    settings: Settings
    engine: AsyncEngine
    bot: Bot
    dispatcher: Dispatcher
    scheduler: AsyncIOScheduler
    cards: CardService
    i18n: I18n
    followups: FollowUpEngine
    events: EventIntake
    care: CareEngine
    clock: Clock
    health: Health
    inflight: UpdateMetricsMiddleware
    redis: Redis | None = None


def build_dispatcher(
    settings: Settings,
    engine: AsyncEngine,
    cards: CardService,
    i18n: I18n,
    *,
    storage: BaseStorage | None = None,
    **workflow: object,
) -> Dispatcher:
    dp = Dispatcher(
        storage=storage or MemoryStorage(),
        settings=settings,
        cards=cards,
        i18n=i18n,
        engine=engine,
        team_directory=TeamDirectory(),
        **workflow,
    )
    dp.update.outer_middleware(DbSessionMiddleware(make_sessionmaker(engine)))
    dp.update.outer_middleware(TeamContextMiddleware())
    TeamI18nMiddleware(i18n).setup(dp)
    dp.message.middleware(AccessMiddleware())
    dp.callback_query.middleware(AccessMiddleware())
    dp.include_routers(*all_routers())
    return dp


def command_list() -> list[BotCommand]:
    descriptions = {
        "card": _("customer card: phone, nickname, name, order no."),
        "follow": _("follow up: customer, scenario, [minutes]"),
        "timers": _("my follow-ups (all: the team's)"),
        "scenarios": _("the scenario-response table"),
        "queue": _("care messages waiting for approval"),
        "care": _("care rules; leads: /care auto RULE on|off"),
        "optout": _("no more care messages for a customer"),
        "route": _("send a kind of message to this topic (leads)"),
        "help": _("what I can do"),
        "lang": _("language: zh | en | auto"),
        "cancel": _("stop the current step"),
        "bind": _("bind this group (team leads)"),
        "unbind": _("stop serving this group (team leads)"),
    }
    return [BotCommand(command=name, description=descriptions[name]) for name in COMMAND_NAMES]


async def register_commands(bot: Bot, i18n: I18n) -> None:
    """Telegram's command menu in both languages; the default list is in the default locale."""
    with i18n.context():
        for language, locale in ((None, i18n.default_locale), ("zh", "zh_CN"), ("en", "en")):
            with i18n.use_locale(locale):
                await bot.set_my_commands(
                    command_list(), scope=BotCommandScopeDefault(), language_code=language
                )


async def build_app(settings: Settings) -> App:
    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    i18n = build_i18n(settings.default_locale)
    book = ScenarioBook(load_table(settings.touchpoint_config))
    cards = CardService(settings, load_palette(settings.touchpoint_config), book)
    async with sessions() as session:
        has_cuts = await load_shop_cuts(session) is not None
    if not has_cuts:
        await recompute_cuts(engine, cards)
    bot = build_bot(settings)
    clock = Clock(settings.sandbox_clock_file)
    scheduler = AsyncIOScheduler(timezone=settings.zone)
    routes = Routes(sessions)
    followups = FollowUpEngine(
        sessions=sessions,
        sender=TelegramSender(bot, routes),
        clock=clock,
        settings=settings,
        i18n=i18n,
        book=book,
        scheduler=scheduler,
    )
    care_table = load_care_table(settings.touchpoint_config)
    care = CareEngine(
        sessions=sessions,
        bot=bot,
        clock=clock,
        settings=settings,
        i18n=i18n,
        table=care_table,
        templates=load_templates(settings.touchpoint_config),
        channels=build_channels(settings),
        scheduler=scheduler,
        routes=routes,
    )
    planner = CarePlanner(care_table, settings.zone)
    events = EventIntake(sessions=sessions, engine=followups, care=care, planner=planner)
    redis = connect_redis(settings.redis_url.get_secret_value()) if settings.redis_url else None
    health = Health(engine, redis)
    # Several replicas: a note or an edit started on one finishes on another.
    storage = RedisStorage(redis, key_builder=DefaultKeyBuilder(prefix="touchpoint:fsm")) if redis else None
    dp = build_dispatcher(
        settings,
        engine,
        cards,
        i18n,
        storage=storage,
        clock=clock,
        scenario_book=book,
        followup_engine=followups,
        care_engine=care,
        health=health,
    )
    inflight = UpdateMetricsMiddleware()
    dp.update.outer_middleware.register(inflight)
    # Every replica's scheduler fires these; once_per_fire lets one of them run each.
    jobs = {
        "daily_care": (run_daily_care, {"hour": 9, "minute": 0}, [sessions, planner, clock, care]),
        "recompute_cuts": (recompute_cuts, {"hour": 3, "minute": 0}, [engine, cards]),
        "shift_summary": (
            post_shift_summaries,
            {
                "day_of_week": ",".join(str(d) for d in sorted(settings.hours.days)),
                "hour": settings.hours.start.hour,
                "minute": settings.hours.start.minute,
            },
            [followups],
        ),
    }
    for job_id, (job, when, args) in jobs.items():
        guarded = once_per_fire(redis, job_id, job, bot_id=bot.id)
        scheduler.add_job(guarded, "cron", args=args, id=job_id, **when)
    return App(
        settings, engine, bot, dp, scheduler, cards, i18n, followups, events, care,
        clock, health, inflight, redis,
    )


def _start_workers(app: App) -> None:
    # The event loop shares the GIL with the database worker threads; with the default 5 ms switch
    # interval it waits behind them after every socket call (bench/e2e_throughput.py shows it).
    sys.setswitchinterval(0.0005)
    freeze_startup_heap()
    app.scheduler.start()
    app.followups.start()
    app.care.start()


def _web_app(app: App) -> web.Application:
    return build_web_app(
        app.settings,
        intake=app.events,
        health=app.health,
        sessions=make_sessionmaker(app.engine),
        clock=app.clock,
    )


async def run_polling(app: App, *, handle_signals: bool = True) -> None:
    await register_commands(app.bot, app.i18n)
    await app.bot.delete_webhook(drop_pending_updates=False)
    _start_workers(app)
    # In polling mode the HTTP side is there for the events API (and health, metrics) only.
    runner = await serve(app.settings, _web_app(app)) if app.settings.events_secret else None
    try:
        await app.dispatcher.start_polling(
            app.bot,
            allowed_updates=app.dispatcher.resolve_used_update_types(),
            handle_signals=handle_signals,
            close_bot_session=False,
        )
    finally:
        await shut_down(app, runner)


async def run_webhook(app: App) -> None:
    """Serve Telegram's webhook (with the events API, health and metrics) until SIGTERM or SIGINT."""
    settings = app.settings
    assert settings.webhook_url and settings.webhook_secret
    if app.redis is None and not settings.is_sqlite:
        log.warning(
            "webhook mode without REDIS_URL: fine for one replica; several need REDIS_URL to share "
            "conversations and to handle each update once"
        )
    web_app = _web_app(app)
    TeamWebhookHandler(
        app.dispatcher,
        app.bot,
        secret_token=settings.webhook_secret.get_secret_value(),
        ledger=RedisLedger(app.redis, app.bot.id) if app.redis else MemoryLedger(),
    ).register(web_app, path=settings.webhook_path)
    await register_commands(app.bot, app.i18n)
    _start_workers(app)
    runner = await serve(settings, web_app)
    try:
        # Every replica sets the same webhook at start; Telegram keeps one, so that is harmless.
        await app.bot.set_webhook(
            settings.webhook_url,
            secret_token=settings.webhook_secret.get_secret_value(),
            allowed_updates=app.dispatcher.resolve_used_update_types(),
            max_connections=settings.webhook_max_connections,
            drop_pending_updates=False,
        )
        await app.dispatcher.emit_startup(bot=app.bot)
        log.info("webhook set: Telegram posts updates to %s", settings.webhook_path)
        await _until_signalled()
    finally:
        await shut_down(app, runner)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: finishing the updates and sends under way")


async def shut_down(app: App, runner: web.AppRunner | None) -> None:
    """Nothing half-done: stop taking work, let handlers and sends under way finish, then close."""
    app.health.shutting_down = True  # /readyz turns 503, so the proxy stops sending us updates
    timeout = app.settings.shutdown_timeout_seconds
    if runner is not None:
        await runner.cleanup()  # stops listening, then waits for requests in flight
    if not await app.inflight.drained(timeout):
        log.warning("shutdown: %d updates still running after %ss", app.inflight.inflight, timeout)
    app.scheduler.shutdown(wait=False)
    await app.followups.close()
    await app.care.close()
    app.events.close()
    await app.bot.session.close()
    app.cards.close()
    if app.redis is not None:
        await app.redis.aclose()
    await app.engine.dispose()
