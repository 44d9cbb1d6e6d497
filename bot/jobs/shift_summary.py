"""At the start of each shift: one message per team chat with each agent's open follow-ups."""

from __future__ import annotations

import logging

from aiogram.exceptions import TelegramAPIError

from bot.followup_engine import FollowUpEngine
from bot.views.followups import render_summary
from storage import followups, team

log = logging.getLogger(__name__)


async def post_shift_summaries(engine: FollowUpEngine) -> int:
    """Returns how many chats got a summary (chats with nothing open get none)."""
    posted = 0
    async with engine.sessions() as session:
        chat_ids = await team.active_chat_ids(session=session)
    for chat_id in chat_ids:
        async with engine.sessions() as session:
            groups = await followups.open_by_owner(session=session, chat_id=chat_id)
        if not groups:
            continue
        with engine.i18n.context(), engine.i18n.use_locale(engine.settings.default_locale):
            text = render_summary(groups, engine.context(engine.settings.default_locale))
        try:
            await engine.sender.post(chat_id, text, None, [])
            posted += 1
        except TelegramAPIError as exc:  # one chat failing must not keep the others from theirs
            log.warning("shift summary for chat %s not sent: %s", chat_id, exc)
    return posted
