"""Last router: unknown commands and stale buttons get a clear word, everything else silence."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

router = Router(name="fallback")


@router.message(F.text.startswith("/"))
async def unknown_command(message: Message, bot: Bot) -> None:
    command = (message.text or "").split()[0]
    _name, _at, mention = command.partition("@")
    me = await bot.me()
    if mention and me.username and mention.lower() != me.username.lower():
        return  # addressed to another bot in the group
    await message.answer(_("I don't know that command. /help lists what I can do."))


@router.callback_query()
async def stale_button(query: CallbackQuery) -> None:
    await query.answer(_("This button is no longer valid. Open the card again with /card."), show_alert=True)
