"""The start-of-shift summary: the job the scheduler runs, with a real Bot talking HTTP to the emulator
and a real database (the cron trigger itself is APScheduler's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.app import build_bot
from bot.clock import Clock
from bot.config import Settings
from bot.followup_engine import FollowUpEngine, TelegramSender
from bot.i18n import build_i18n
from bot.jobs.shift_summary import post_shift_summaries
from bot.scenario_book import ScenarioBook, load_table
from storage import followups
from storage.db import create_engine, make_sessionmaker
from storage.migrate import upgrade_async
from storage.models import Customer, TeamChat
from tests.e2e.chat import Emulator

pytestmark = pytest.mark.e2e
TOKEN = "5400000001:AAE-shift-summary-token-0123456789ab"
QUIET, BUSY = -1004000000001, -1004000000002


async def test_each_group_gets_one_summary_of_every_agents_open_follow_ups(
    emulator: Emulator, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shift.db'}"
    await upgrade_async(url)
    engine = create_engine(url)
    now = datetime.now(UTC)
    async with make_sessionmaker(engine)() as session:
        session.add(Customer(external_id="S1", nickname="早班客户"))
        for chat_id in (QUIET, BUSY):
            session.add(TeamChat(chat_id=chat_id, title="t", bound_by=1, bound_at=now))
            emulator.create_chat(chat_id, title="shift")
        await session.commit()
        for owner, due in ((11, now - timedelta(hours=1)), (11, now + timedelta(hours=1)), (12, now)):
            item = followups.NewFollowUp(
                customer_pk=1, chat_id=BUSY, scenario="no_reply", owner_id=owner, owner_name=f"Agent {owner}",
                created_by=owner, due_at=due, fire_at=due + timedelta(days=1),
            )  # fmt: skip
            await followups.create(session=session, item=item, now=now)
    settings = Settings(
        telegram_bot_token=TOKEN, telegram_api_base=emulator.base_url, database_url=url, default_locale="en"
    )  # type: ignore[call-arg]
    bot = build_bot(settings)
    job = FollowUpEngine(
        sessions=make_sessionmaker(engine), sender=TelegramSender(bot), clock=Clock(),
        settings=settings, i18n=build_i18n("en"), book=ScenarioBook(load_table(Path("config"))),
        scheduler=AsyncIOScheduler(),
    )  # fmt: skip
    try:
        assert await post_shift_summaries(job) == 1
    finally:
        await bot.session.close()
        await engine.dispose()
    assert emulator.messages(QUIET) == []  # nothing open there: no message
    (summary,) = emulator.messages(BUSY)
    assert "Start of shift" in summary["text"]
    assert "Agent 11: 2 open, 1 overdue" in summary["text"] and "Agent 12: 1 open" in summary["text"]
    mentioned = {
        e["user"]["id"] if e["type"] == "text_mention" else int(e["url"].rsplit("=", 1)[1])
        for e in summary["entities"]
        if e["type"] == "text_mention" or e.get("url", "").startswith("tg://user?id=")
    }
    assert mentioned == {11, 12}
