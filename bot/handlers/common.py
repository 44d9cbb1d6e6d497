"""Helpers handlers share: replacing a message in place, the current locale, masking rule."""

from __future__ import annotations

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Chat, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import get_i18n
from sqlmodel.ext.asyncio.session import AsyncSession


async def replace(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Edit the pressed message; a message too old to edit gets a fresh one instead."""
    message = query.message
    if isinstance(message, Message):
        try:
            await message.edit_text(text, reply_markup=markup)
            return
        except TelegramBadRequest as exc:
            if "not modified" in exc.message:
                return
            if "can't be edited" not in exc.message and "not found" not in exc.message:
                raise
    if message is not None and query.bot is not None:
        await query.bot.send_message(message.chat.id, text, reply_markup=markup)


async def replace_markup(query: CallbackQuery, markup: InlineKeyboardMarkup) -> None:
    """Swap the pressed message's buttons; a double tap ("not modified") or an old message is fine."""
    if isinstance(query.message, Message):
        try:
            await query.message.edit_reply_markup(reply_markup=markup)
        except TelegramBadRequest as exc:
            if "not modified" not in exc.message and "can't be edited" not in exc.message:
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
