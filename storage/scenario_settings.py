"""A lead's changes to the scenario table, stored over the YAML defaults, with an audit trail."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import ScenarioChange, ScenarioSetting


async def overrides(*, session: AsyncSession) -> list[ScenarioSetting]:
    return list((await session.exec(select(ScenarioSetting))).all())


async def change(
    *,
    session: AsyncSession,
    scenario: str,
    field: str,
    value: str,
    old_value: str | None,
    user_id: int,
    user_name: str,
    now: datetime,
) -> None:
    """Store the new minutes or reply and record who changed what from what, in one transaction."""
    setting = await session.get(ScenarioSetting, scenario)
    if setting is None:
        setting = ScenarioSetting(scenario=scenario, updated_by=user_id, updated_at=now)
    if field == "minutes":
        setting.minutes = int(value)
    else:
        setting.reply = value
    setting.updated_by, setting.updated_at = user_id, now
    session.add(setting)
    session.add(
        ScenarioChange(
            scenario=scenario,
            field=field,
            old_value=old_value,
            new_value=value,
            changed_by=user_id,
            changed_by_name=user_name[:128],
            changed_at=now,
        )
    )
    await session.commit()


async def changes(*, session: AsyncSession, scenario: str | None = None) -> list[ScenarioChange]:
    stmt = select(ScenarioChange).order_by(ScenarioChange.id)  # type: ignore[arg-type]
    if scenario is not None:
        stmt = stmt.where(ScenarioChange.scenario == scenario)
    return list((await session.exec(stmt)).all())
