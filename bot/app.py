"""Builds the Bot, the Dispatcher and the scheduler, and runs them (long polling)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import BotCommand, BotCommandScopeDefault
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.card_service import CardService
from bot.care_engine import CareEngine
from bot.care_setup import build_channels, load_care_table, load_templates
from bot.clock import Clock
from bot.config import Settings
from bot.event_intake import EventIntake
from bot.followup_engine import FollowUpEngine, TelegramSender
from bot.handlers import all_routers
from bot.i18n import TeamI18nMiddleware, build_i18n
from bot.jobs.daily_care import run_daily_care
from bot.jobs.recompute import recompute_cuts
from bot.jobs.shift_summary import post_shift_summaries
from bot.middlewares import AccessMiddleware, DbSessionMiddleware, TeamContextMiddleware
from bot.outbound import SendPacer, install_pacing
from bot.palette_file import load_palette
from bot.routes import Routes
from bot.scenario_book import ScenarioBook, load_table
from bot.team_directory import TeamDirectory
from bot.web import start_event_api
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
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base))
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


def build_dispatcher(
    settings: Settings, engine: AsyncEngine, cards: CardService, i18n: I18n, **workflow: object
) -> Dispatcher:
    dp = Dispatcher(
        storage=MemoryStorage(),
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
    dp = build_dispatcher(
        settings,
        engine,
        cards,
        i18n,
        clock=clock,
        scenario_book=book,
        followup_engine=followups,
        care_engine=care,
    )
    scheduler.add_job(
        run_daily_care, "cron", hour=9, minute=0, args=[sessions, planner, clock, care], id="daily_care"
    )
    scheduler.add_job(recompute_cuts, "cron", hour=3, minute=0, args=[engine, cards], id="recompute_cuts")
    hours = settings.hours
    scheduler.add_job(
        post_shift_summaries,
        "cron",
        day_of_week=",".join(str(d) for d in sorted(hours.days)),
        hour=hours.start.hour,
        minute=hours.start.minute,
        args=[followups],
        id="shift_summary",
    )
    return App(settings, engine, bot, dp, scheduler, cards, i18n, followups, events, care)


async def run_polling(app: App, *, handle_signals: bool = True) -> None:
    # The event loop shares the GIL with the database worker threads; with the default 5 ms switch
    # interval it waits behind them after every socket call (bench/e2e_throughput.py shows it).
    sys.setswitchinterval(0.0005)
    await register_commands(app.bot, app.i18n)
    await app.bot.delete_webhook(drop_pending_updates=False)
    app.scheduler.start()
    app.followups.start()
    app.care.start()
    web = await start_event_api(app.settings, app.events)
    try:
        await app.dispatcher.start_polling(
            app.bot,
            allowed_updates=app.dispatcher.resolve_used_update_types(),
            handle_signals=handle_signals,
            close_bot_session=False,
        )
    finally:
        app.scheduler.shutdown(wait=False)
        if web is not None:
            await web.cleanup()
        await app.followups.close()
        await app.care.close()
        app.events.close()
        await app.bot.session.close()
        app.cards.close()
        await app.engine.dispose()
