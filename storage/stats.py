"""Shop-wide cut points (RFM quintiles, learned lifecycle), computed in batch and read by cards.

Only the rows at the cut positions are fetched (ORDER BY an indexed column, OFFSET k), so this
stays cheap at a million customers; it runs after each import and nightly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from crm.lifecycle import LEARNED_SHARES, MIN_BUYERS_TO_LEARN, Thresholds, thresholds_from_cuts
from crm.quantiles import cut_positions
from crm.rfm import QUINTILES, RfmCuts
from storage.db import insert_for
from storage.models import Customer, ShopStat

STATS_KEY = "shop_cuts"


@dataclass(frozen=True, slots=True)
class ShopCuts:
    buyers: int
    rfm: RfmCuts | None
    learned_lifecycle: Thresholds | None
    computed_at: datetime


async def _values_at(
    session: AsyncSession, column: ColumnElement, positions: list[int], *, descending: bool = False
) -> list:
    order = column.desc() if descending else column.asc()
    values = []
    for offset in positions:
        stmt = select(column).where(Customer.purchases > 0).order_by(order).offset(offset).limit(1)
        values.append((await session.exec(stmt)).one())
    return values


def _days(moments: list[datetime], now: datetime) -> list[int]:
    return [max(0, (now - m).days) for m in moments]


async def compute_shop_cuts(session: AsyncSession, now: datetime | None = None) -> ShopCuts:
    now = now or datetime.now(UTC)
    buyers = (await session.exec(select(func.count()).where(Customer.purchases > 0))).one()
    if buyers == 0:
        return ShopCuts(0, None, None, now)
    quintiles = cut_positions(buyers, QUINTILES)
    # Recency ascends in days as the latest purchase descends in time.
    recent = await _values_at(session, Customer.last_purchase_at, quintiles, descending=True)
    rfm = RfmCuts(
        recency_days=tuple(_days(recent, now)),
        frequency=tuple(await _values_at(session, Customer.purchases, quintiles)),
        monetary_cents=tuple(await _values_at(session, Customer.total_spent_cents, quintiles)),
    )
    learned = None
    if buyers >= MIN_BUYERS_TO_LEARN:
        positions = cut_positions(buyers, LEARNED_SHARES)
        moments = await _values_at(session, Customer.last_purchase_at, positions, descending=True)
        learned = thresholds_from_cuts(_days(moments, now))
    return ShopCuts(buyers, rfm, learned, now)


def _encode(cuts: ShopCuts) -> str:
    lifecycle = cuts.learned_lifecycle
    return json.dumps(
        {
            "buyers": cuts.buyers,
            "rfm": cuts.rfm.to_json() if cuts.rfm else None,
            "lifecycle": [lifecycle.active_days, lifecycle.silent_days, lifecycle.sleeping_days]
            if lifecycle
            else None,
        }
    )


def decode_shop_cuts(row: ShopStat | None) -> ShopCuts | None:
    if row is None:
        return None
    data = json.loads(row.value)
    return ShopCuts(
        buyers=data["buyers"],
        rfm=RfmCuts.from_json(data["rfm"]) if data.get("rfm") else None,
        learned_lifecycle=Thresholds(*data["lifecycle"]) if data.get("lifecycle") else None,
        computed_at=row.computed_at,
    )


async def recompute_shop_stats(engine: AsyncEngine, now: datetime | None = None) -> ShopCuts:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        cuts = await compute_shop_cuts(session, now)
        # An upsert: replicas starting together on an empty database each compute the cuts.
        row = {"key": STATS_KEY, "value": _encode(cuts), "computed_at": cuts.computed_at}
        stmt = insert_for(engine.dialect)(ShopStat).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["key"],
            set_={"value": stmt.excluded.value, "computed_at": stmt.excluded.computed_at},
        )
        await (await session.connection()).execute(stmt)
        await session.commit()
        return cuts


async def load_shop_cuts(session: AsyncSession) -> ShopCuts | None:
    return decode_shop_cuts(await session.get(ShopStat, STATS_KEY))
