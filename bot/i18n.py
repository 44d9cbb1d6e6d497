"""gettext catalogues (locales/) through aiogram's i18n, with the agent's /lang choice on top."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.config import SUPPORTED_LOCALES
from storage.models import Agent

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"


def compile_catalogs(locales_dir: Path = LOCALES_DIR) -> None:
    """Compile each .po to .mo when the .mo is missing or older, so a fresh clone just runs."""
    for po_path in locales_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po"):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=po_path.parent.parent.name)
        with mo_path.open("wb") as mo_file:
            write_mo(mo_file, catalog)


def build_i18n(default_locale: str) -> I18n:
    compile_catalogs()
    return I18n(path=LOCALES_DIR, default_locale=default_locale, domain=DOMAIN)


def locale_from_telegram(language_code: str | None, default: str) -> str:
    if not language_code:
        return default
    code = language_code.lower()
    if code.startswith("zh"):
        return "zh_CN"
    if code.startswith("en"):
        return "en"
    return default


class TeamI18nMiddleware(I18nMiddleware):
    """The agent's stored choice (/lang) wins; else their Telegram language; else the default."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        agent: Agent | None = data.get("agent")
        if agent is not None and agent.locale in SUPPORTED_LOCALES:
            return agent.locale
        user: User | None = data.get("event_from_user")
        return locale_from_telegram(user.language_code if user else None, self.i18n.default_locale)
