"""The scenario table in use: the YAML file under TOUCHPOINT_CONFIG, with the leads' stored
changes on top. Re-read from the database every so often, so a change made through another
replica shows up without a restart."""

from __future__ import annotations

import time
from pathlib import Path

from aiogram.utils.i18n import gettext as _
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.palette_file import load_config
from bot.views.scenario_texts import REPLIES, TITLES
from crm.scenarios import Scenario, ScenarioError, ScenarioTable, parse_table
from storage import scenario_settings


def load_table(config_dir: Path) -> ScenarioTable:
    return load_config(config_dir, "scenarios.yaml", parse_table, ScenarioError)


class ScenarioBook:
    TTL_SECONDS = 30.0

    def __init__(self, base: ScenarioTable) -> None:
        self.base = base
        self.table = base
        self._loaded_at = float("-inf")

    async def current(self, session: AsyncSession) -> ScenarioTable:
        if time.monotonic() - self._loaded_at > self.TTL_SECONDS:
            await self.reload(session)
        return self.table

    async def reload(self, session: AsyncSession) -> ScenarioTable:
        table = self.base
        for setting in await scenario_settings.overrides(session=session):
            if table.get(setting.scenario) is None:
                continue  # a row dropped from the YAML since: its stored change no longer applies
            table = table.with_override(setting.scenario, minutes=setting.minutes, reply=setting.reply)
        self.table, self._loaded_at = table, time.monotonic()
        return table

    def forget(self) -> None:
        self._loaded_at = float("-inf")

    # Texts, in the current locale (built-in rows from locales/, own rows from their YAML).
    @staticmethod
    def title(row: Scenario, locale: str) -> str:
        if row.key in TITLES:
            return str(TITLES[row.key])
        return row.titles.get(locale) or next(iter(row.titles.values()), row.key)

    @staticmethod
    def reply(row: Scenario, locale: str) -> str:
        if "*" in row.replies:  # a lead's change from the chat: one text for every language
            return row.replies["*"]
        if row.key in REPLIES and not row.replies:
            return str(REPLIES[row.key])
        return row.replies.get(locale) or next(iter(row.replies.values()), "")

    @staticmethod
    def when(row: Scenario) -> str:
        if row.trigger == "restock":
            return _("when restocked")
        if row.minutes is None:
            return _("no follow-up")
        return _("{minutes} min").format(minutes=row.minutes)
