"""No traceback reaches a chat: log it, tell the person plainly that nothing was changed."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import ErrorEvent, Update
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from bot.health import Health, is_outage
from bot.i18n import locale_from_telegram
from bot.update_effects import visible_calls_made
from bot.webhook import InfrastructureDown

log = logging.getLogger(__name__)
router = Router(name="errors")


@router.errors()
async def on_error(event: ErrorEvent, i18n: I18n, settings: Settings, health: Health) -> bool:
    update = event.update
    outage = is_outage(event.exception)
    if outage:
        log.warning("update %s hit an outage: %r", update.update_id, event.exception)
    else:
        log.error("update %s failed: %r", update.update_id, event.exception, exc_info=event.exception)
    target = update.callback_query or update.message
    user = target.from_user if target is not None else None
    chat = _chat_id(update)
    # The i18n middleware's context has ended by the time errors propagate, so set it again.
    with (
        i18n.context(),
        i18n.use_locale(locale_from_telegram(user and user.language_code, i18n.default_locale)),
    ):
        if outage and settings.webhook_url and not visible_calls_made():
            # Telegram re-delivers an update its webhook call failed, so this one is kept, not lost;
            # only one that has shown nothing yet, or a second handling would show it twice.
            if chat is not None and health.should_notice(chat):
                await _tell(update, _("⚠️ The bot is degraded (its storage is not answering). "
                                      "Your request is kept and will be done when it is back."))
            raise InfrastructureDown(type(event.exception).__name__) from event.exception
        if outage:
            text = _("⚠️ The bot is degraded (its storage is not answering): what you asked may be "
                     "incomplete. Please check and try again in a minute.")
        else:
            text = _(
                "Something went wrong and nothing was changed. Please try again; if it persists, "
                "tell your lead."
            )
        await _tell(update, text)
    return True


def _chat_id(update: Update) -> int | None:
    query, message = update.callback_query, update.message
    if query is not None and query.message is not None:
        return query.message.chat.id
    return message.chat.id if message is not None else None


async def _tell(update: Update, text: str) -> None:
    """A press gets an alert (or, if it was already answered, a message); in groups only commands
    get an answer, so a failure on a plain message does not make the bot talk over the team."""
    query, message = update.callback_query, update.message
    try:
        if query is not None:
            try:
                await query.answer(text, show_alert=True)
            except TelegramBadRequest:  # answered before the failure: say it in the chat instead
                if query.message is not None and query.bot is not None:
                    await query.bot.send_message(query.message.chat.id, text)
        elif message is not None and (message.chat.type == "private" or (message.text or "").startswith("/")):
            await message.answer(text)
    except TelegramAPIError:
        log.warning("could not report the failure of update %s", update.update_id)
