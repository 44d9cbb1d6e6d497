"""Look-up and card rendering, composed once for handlers and the benchmark alike."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from aiogram.types import InlineKeyboardMarkup
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.keyboards import card_keyboard
from bot.views.card import CardContext, render_card
from crm.lifecycle import Thresholds
from crm.lookup import parse_query
from crm.palette import Palette
from storage.customers import find_customers, load_card
from storage.models import Customer
from storage.stats import ShopCuts, load_shop_cuts


@dataclass(frozen=True, slots=True)
class RenderedCard:
    text: str
    keyboard: InlineKeyboardMarkup


class CardService:
    # Cut points change after an import or the nightly job; a few minutes' staleness is harmless.
    CUTS_TTL_SECONDS = 300.0

    def __init__(self, settings: Settings, palette: Palette) -> None:
        self.settings = settings
        self.palette = palette
        self._cuts: ShopCuts | None = None
        self._cuts_loaded_at = float("-inf")

    async def shop_cuts(self, session: AsyncSession) -> ShopCuts | None:
        if time.monotonic() - self._cuts_loaded_at > self.CUTS_TTL_SECONDS:
            self._cuts = await load_shop_cuts(session)
            self._cuts_loaded_at = time.monotonic()
        return self._cuts

    def forget_cuts(self) -> None:
        self._cuts_loaded_at = float("-inf")

    def thresholds(self, cuts: ShopCuts | None) -> Thresholds:
        if self.settings.lifecycle_mode == "learned" and cuts and cuts.learned_lifecycle:
            return cuts.learned_lifecycle
        s = self.settings
        return Thresholds(s.lifecycle_active_days, s.lifecycle_silent_days, s.lifecycle_sleeping_days)

    async def lookup(self, session: AsyncSession, raw_query: str | None) -> list[Customer]:
        """Raises crm.lookup.QueryError for a query that cannot be searched."""
        return await find_customers(session=session, query=parse_query(raw_query))

    async def render(
        self, session: AsyncSession, customer_pk: int, *, locale: str, mask_contacts: bool
    ) -> RenderedCard | None:
        data = await load_card(session=session, customer_pk=customer_pk)
        if data is None:
            return None
        cuts = await self.shop_cuts(session)
        ctx = CardContext(
            now=datetime.now(UTC),
            zone=self.settings.zone,
            thresholds=self.thresholds(cuts),
            cuts=cuts,
            palette=self.palette,
            locale=locale,
            mask_contacts=mask_contacts,
        )
        return RenderedCard(render_card(data, ctx), card_keyboard(customer_pk))
