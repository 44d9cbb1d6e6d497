"""Nightly: recompute the shop-wide RFM and lifecycle cut points."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.card_service import CardService
from storage.stats import recompute_shop_stats

log = logging.getLogger(__name__)


async def recompute_cuts(engine: AsyncEngine, cards: CardService) -> None:
    cuts = await recompute_shop_stats(engine)
    cards.forget_cuts()
    log.info("shop cut points recomputed over %s buyers", cuts.buyers)
