"""Look-up and card rendering, composed once for handlers and the benchmark alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiogram.types import InlineKeyboardMarkup
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.keyboards import card_keyboard
from bot.scenario_book import ScenarioBook
from bot.views.card import CardContext, render_card
from crm.lifecycle import Thresholds
from crm.lookup import parse_query
from crm.palette import Palette
from storage.customers import CardData, load_card, load_card_sqlite, look_up, look_up_sqlite
from storage.db import ThreadedReads
from storage.models import Customer
from storage.stats import ShopCuts, load_shop_cuts


@dataclass(frozen=True, slots=True)
class RenderedCard:
    text: str
    keyboard: InlineKeyboardMarkup


class CardService:
    # Cut points change after an import or the nightly job; a few minutes' staleness is harmless.
    CUTS_TTL_SECONDS = 300.0

    def __init__(self, settings: Settings, palette: Palette, book: ScenarioBook | None = None) -> None:
        self.settings = settings
        self.palette = palette
        self.book = book
        self._cuts: ShopCuts | None = None
        self._cuts_loaded_at = float("-inf")
        # SQLite: card reads in one worker-thread call each (see storage.db.ThreadedReads).
        self._reads = ThreadedReads(settings.database_url) if settings.is_sqlite else None

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

    async def look_up(
        self, session: AsyncSession, raw_query: str | None, *, locale: str, mask_contacts: bool
    ) -> tuple[list[Customer], RenderedCard | None]:
        """The customers matching a query, and the card when exactly one does.

        Raises crm.lookup.QueryError for a query that cannot be searched.
        """
        query = parse_query(raw_query)
        if self._reads is not None:
            result = await self._reads.run(lambda conn: look_up_sqlite(conn=conn, query=query))
        else:
            result = await look_up(session=session, query=query)
        if result.card is None:
            return result.customers, None
        return result.customers, await self._render(session, result.card, locale, mask_contacts)

    async def render(
        self, session: AsyncSession, customer_pk: int, *, locale: str, mask_contacts: bool
    ) -> RenderedCard | None:
        if self._reads is not None:
            data = await self._reads.run(lambda conn: load_card_sqlite(conn=conn, customer_pk=customer_pk))
        else:
            data = await load_card(session=session, customer_pk=customer_pk)
        return None if data is None else await self._render(session, data, locale, mask_contacts)

    async def _render(
        self, session: AsyncSession, data: CardData, locale: str, mask_contacts: bool
    ) -> RenderedCard:
        cuts = await self.shop_cuts(session)
        ctx = CardContext(
            now=datetime.now(UTC),
            zone=self.settings.zone,
            thresholds=self.thresholds(cuts),
            cuts=cuts,
            palette=self.palette,
            locale=locale,
            mask_contacts=mask_contacts,
            scenario_title=self._scenario_title(locale),
        )
        assert data.customer.id is not None
        return RenderedCard(render_card(data, ctx), card_keyboard(data.customer.id))

    def _scenario_title(self, locale: str) -> Callable[[str], str]:
        book = self.book
        if book is None:
            return str

        def title(key: str) -> str:
            row = book.table.get(key)
            return book.title(row, locale) if row is not None else key

        return title

    def close(self) -> None:
        if self._reads is not None:
            self._reads.close()
