"""Helpers handlers share: replacing a message in place, the current locale, masking rule."""

from __future__ import annotations

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Chat, InlineKeyboardMarkup, Message, User
from aiogram.utils.i18n import get_i18n
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import TeamChat


def _unchanged(exc: TelegramBadRequest) -> bool:
    return "not modified" in exc.message  # a double tap: the message already shows this


def _gone(exc: TelegramBadRequest) -> bool:
    return "can't be edited" in exc.message or "not found" in exc.message  # too old, or deleted


async def replace(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Edit the pressed message; a message too old to edit gets a fresh one instead."""
    message = query.message
    if isinstance(message, Message):
        try:
            await message.edit_text(text, reply_markup=markup)
            return
        except TelegramBadRequest as exc:
            if _unchanged(exc):
                return
            if not _gone(exc):
                raise
    if message is not None and query.bot is not None:
        await query.bot.send_message(message.chat.id, text, reply_markup=markup)


async def replace_markup(query: CallbackQuery, markup: InlineKeyboardMarkup) -> None:
    """Swap the pressed message's buttons; nothing to do when it already has them or is gone."""
    if isinstance(query.message, Message):
        try:
            await query.message.edit_reply_markup(reply_markup=markup)
        except TelegramBadRequest as exc:
            if not (_unchanged(exc) or _gone(exc)):
                raise


def current_locale() -> str:
    return get_i18n().current_locale


def masks_contacts(chat: Chat) -> bool:
    """Phones and e-mails are masked everywhere but a member's private chat with the bot."""
    return chat.type != "private"


async def release(session: AsyncSession) -> None:
    """End the read transaction before talking to Telegram: the connection goes back to the pool
    instead of waiting out a network round trip (loaded objects stay usable)."""
    await session.commit()


def is_lead(user: User, is_admin: bool, team_chat: TeamChat | None) -> bool:
    """ADMIN_IDS, or whoever bound the group."""
    return is_admin or (team_chat is not None and team_chat.bound_by == user.id)
