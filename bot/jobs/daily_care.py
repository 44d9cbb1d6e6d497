"""Once a day (09:00 team time): birthdays, N days after purchase, replenishment and parcels over
their normal days become planned care messages; the queue posts them like any other."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.care_engine import CareEngine
from bot.clock import Clock
from storage.care_planner import CarePlanner

log = logging.getLogger(__name__)


async def run_daily_care(
    sessions: async_sessionmaker[AsyncSession], planner: CarePlanner, clock: Clock, engine: CareEngine
) -> int:
    async with sessions() as session:
        planned = await planner.run_daily(session, clock.now())
    log.info("daily care rules planned %d messages", planned)
    engine.kick()
    return planned
